"""Shared fixtures: small datasets that the tests make themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A synthetic bottle at 48 px: 24 train, 4 good and 3 of each defect type in test. Returns the root."""
    from cae_keras.synth import SynthConfig, write_dataset

    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root, "bottle", SynthConfig(image_size=48, n_train=24, n_test_good=4, n_per_defect=3),
                  progress=False)
    return root
