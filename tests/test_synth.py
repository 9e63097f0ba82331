"""The synthetic bottle: deterministic, exact masks, hard enough."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cae_keras import metrics, scoring, synth
from cae_keras.errors import ConfigError


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    config = synth.SynthConfig(image_size=32, n_train=3, n_test_good=1, n_per_defect=1)
    a = synth.write_dataset(tmp_path / "a", config=config, progress=False)
    b = synth.write_dataset(tmp_path / "b", config=config, progress=False)
    c = synth.write_dataset(tmp_path / "c", config=synth.SynthConfig(
        image_size=32, n_train=3, n_test_good=1, n_per_defect=1, seed=1), progress=False)
    assert _digest(a) == _digest(b) != _digest(c)


def test_layout_and_counts(tmp_path):
    config = synth.SynthConfig(image_size=32, n_train=5, n_test_good=2, n_per_defect=3)
    folder = synth.write_dataset(tmp_path, config=config, progress=False)
    assert len(list((folder / "train" / "good").glob("*.png"))) == 5
    assert len(list((folder / "test" / "good").glob("*.png"))) == 2
    for defect in synth.DEFECT_TYPES:
        images = sorted((folder / "test" / defect).glob("*.png"))
        masks = sorted((folder / "ground_truth" / defect).glob("*_mask.png"))
        assert len(images) == len(masks) == 3


@pytest.mark.parametrize("defect", synth.DEFECT_TYPES)
def test_mask_covers_exactly_what_the_defect_changed(defect):
    config = synth.SynthConfig(image_size=128)
    for index in range(5):
        defective, mask = synth.make_sample(config, defect, index, with_noise=False)
        rng = np.random.default_rng([config.seed, synth._SPLIT_CODES[defect], index])
        clean = synth.render_bottle(synth.random_pose(rng, 128), 128)
        changed = np.abs(defective - clean).max(axis=-1) > 1e-6
        assert mask.any()
        assert not (changed & ~mask).any(), "a pixel outside the mask changed"
        assert changed[mask].mean() > 0.9, "the mask marks pixels the defect did not change"


def test_per_pixel_statistics_are_good_but_not_perfect():
    config = synth.SynthConfig(image_size=64)
    train = np.stack([synth.make_sample(config, "train", i)[0] for i in range(100)])
    mean, std = train.mean(0), train.std(0)
    images, labels = [], []
    for split in ("test_good", *synth.DEFECT_TYPES):
        for i in range(15):
            images.append(synth.make_sample(config, split, i)[0])
            labels.append(int(split != "test_good"))
    maps = scoring.blur_maps((np.abs(np.stack(images) - mean) / (std + 0.01)).mean(-1), 1.0)
    auroc = metrics.image_auroc(np.array(labels), scoring.image_scores(maps))
    assert 0.7 < auroc < 1.0


def test_bad_config():
    with pytest.raises(ConfigError):
        synth.SynthConfig(image_size=8)
    with pytest.raises(ConfigError, match="unknown defect type"):
        synth.add_defect(np.zeros((32, 32, 3), np.float32), synth.random_pose(np.random.default_rng(0), 32),
                         "scratch", np.random.default_rng(0))
