"""The notebooks' cache keys and fast mode."""

from __future__ import annotations

import dataclasses

from cae_keras import workshop
from cae_keras.config import TrainConfig, field_defaults


def test_cache_key_ignores_fields_left_at_their_defaults():
    defaults = field_defaults()
    config = TrainConfig(data="d", category="c", model="seed_cae", epochs=3)
    without_new_fields = {k: v for k, v in config.flat().items() if k not in ("precision", "jit_compile")}
    # a field added later with its default does not move cached runs
    assert workshop._digest(config.flat(), defaults) == workshop._digest(without_new_fields, defaults)
    assert workshop._digest(config.flat(), defaults) != workshop._digest(
        TrainConfig(data="d", category="c", model="seed_cae", epochs=4).flat(), defaults)


def test_fast_mode_flag(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv("CAE_KERAS_FAST", value)
        assert workshop.fast_mode() is expected


def test_synthetic_cache_follows_the_generator_version(tmp_path, monkeypatch):
    from cae_keras import synth

    monkeypatch.setenv("CAE_KERAS_CACHE", str(tmp_path))
    small = synth.SynthConfig(image_size=32, n_train=2, n_test_good=1, n_per_defect=1)
    first = workshop.synthetic_dataset(small)
    assert (first / "bottle" / "train" / "good" / "000.png").is_file()
    assert workshop.synthetic_dataset(small) == first  # reused
    monkeypatch.setattr(synth, "VERSION", synth.VERSION + 1)
    assert workshop.synthetic_dataset(small) != first  # an image change is not served from the old cache


def test_real_vs_synthetic_draws_each_set_with_each_model(tmp_path, monkeypatch):
    from cae_keras import synth

    monkeypatch.setenv("CAE_KERAS_CACHE", str(tmp_path / "cache"))
    small = synth.SynthConfig(image_size=32, n_train=12, n_test_good=2, n_per_defect=1)
    other = synth.write_dataset(tmp_path / "other", "bottle", dataclasses.replace(small, seed=5), progress=False)
    figure, rows = workshop.real_vs_synthetic(other.parent, categories=("bottle",),
                                              model_names=("pixel_stats",), image_size=32, synthetic=small)
    assert [(row["set"], row["model"]) for row in rows] == [("synthetic bottle", "pixel_stats"),
                                                           ("real bottle", "pixel_stats")]
    assert all(0.0 <= row["image_auroc"] <= 1.0 for row in rows)
    assert len(figure.axes) == 2 * 3 + 1  # two sets x (input, ground truth, one map) + the colour bar
    assert "image AUROC" in figure.axes[2].get_title()
