"""Training into a run folder: files written, images decoded once, resuming, config checks."""

from __future__ import annotations

import json
import shutil

import pytest

from cae_keras import data, runs
from cae_keras.config import TrainConfig
from cae_keras.errors import ConfigError
from cae_keras.training import train


def _config(root, **overrides):
    values = dict(data=str(root), category="bottle", model="seed_cae", image_size=32, epochs=1, batch_size=8)
    values.update(overrides)
    return TrainConfig(**values)


def test_run_folder_contents_and_single_decode(tiny_dataset, tmp_path, monkeypatch):
    calls = []
    original = data.load_image
    monkeypatch.setattr(data, "load_image", lambda path, size=None: calls.append(path) or original(path, size))
    paths = train(_config(tiny_dataset, epochs=2), tmp_path / "run", verbose=0)
    assert len(calls) == 24, "each training image is decoded once, not once per epoch"
    for name in ("config.json", "history.csv", "model.keras", "calibration.json"):
        assert (paths.root / name).is_file()
    assert [row["epoch"] for row in runs.read_history(paths.history)] == [1, 2]
    assert paths.last_checkpoint()[0] == 2
    calibration = json.loads(paths.calibration.read_text())
    assert len(calibration["validation_scores"]) == 2  # 10 % of 24 images
    assert calibration["threshold"] >= min(calibration["validation_scores"])


def test_rerun_resumes_from_the_last_complete_epoch(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    train(_config(tiny_dataset, epochs=1), run, verbose=0)
    paths = runs.RunPaths(run)
    # as if the process died during epoch 2: a checkpoint of epoch 1, no final model
    paths.model.unlink()
    paths.calibration.unlink()
    (paths.checkpoints / ".epoch_0002.tmp.keras").write_bytes(b"half written")
    train(_config(tiny_dataset, epochs=2), run, verbose=1)
    assert "resuming" in capsys.readouterr().out
    assert [row["epoch"] for row in runs.read_history(paths.history)] == [1, 2]
    assert paths.model.is_file() and paths.last_checkpoint()[0] == 2
    train(_config(tiny_dataset, epochs=2), run, verbose=1)
    assert "nothing to do" in capsys.readouterr().out


def test_a_run_folder_refuses_another_config(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_dataset, model="pixel_stats"), run, verbose=0)
    with pytest.raises(ConfigError, match="model: 'seed_cae' != 'pixel_stats'"):
        train(_config(tiny_dataset), run, verbose=0)


def test_another_config_version_is_refused(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_dataset, model="pixel_stats"), run, verbose=0)
    config = json.loads((run / "config.json").read_text())
    config["config_version"] = 999
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="config version 999.*reads versions 1 and 2"):
        runs.open_run(run)


def test_a_run_written_before_the_config_was_grouped_still_opens(tiny_dataset, tmp_path):
    """Version 1 kept every field at the top level; it is read and regrouped, values unchanged."""
    run = tmp_path / "run"
    train(_config(tiny_dataset, model="pixel_stats"), run, verbose=0)
    grouped = json.loads((run / "config.json").read_text())
    flat = {name: value for group, fields in grouped.items() if group != "config_version"
            for name, value in fields.items()}
    (run / "config.json").write_text(json.dumps({**flat, "config_version": 1}))
    reopened = runs.Run(run)
    assert reopened.config.to_dict() == grouped and reopened.config.recipe.model == "pixel_stats"
    (run / "config.json").write_text(json.dumps({**flat, "colour": "red", "config_version": 1}))
    with pytest.raises(ConfigError, match="unknown config field 'colour'"):
        runs.open_run(run)
    without_group = {k: v for k, v in grouped.items() if k != "augmentation"}
    (run / "config.json").write_text(json.dumps(without_group))
    with pytest.raises(ConfigError, match=r"lacks the group\(s\) \['augmentation'\]"):
        runs.open_run(run)


def test_threshold_never_depends_on_test_labels(tiny_dataset, tmp_path):
    """Training never reads test/: the threshold is the same with the test split gone."""
    without_test = tmp_path / "root"
    shutil.copytree(tiny_dataset, without_test)
    shutil.rmtree(without_test / "bottle" / "test")
    shutil.rmtree(without_test / "bottle" / "ground_truth")
    a = train(_config(tiny_dataset, model="pixel_stats"), tmp_path / "a", verbose=0)
    b = train(_config(without_test, model="pixel_stats"), tmp_path / "b", verbose=0)
    threshold = json.loads(a.calibration.read_text())["threshold"]
    assert threshold == json.loads(b.calibration.read_text())["threshold"]


@pytest.mark.parametrize("precision,jit", [("mixed_bfloat16", "off"), ("float32", "on")])
def test_mixed_precision_and_xla_train_and_save_float32_outputs(tiny_dataset, tmp_path, precision, jit):
    from cae_keras import models

    paths = train(_config(tiny_dataset, precision=precision, jit_compile=jit), tmp_path / "run", verbose=0)
    model = models.load_model(paths.model)
    assert model.output.dtype == "float32"
    assert json.loads(paths.calibration.read_text())["threshold"] > 0


def test_bad_precision_is_refused(tiny_dataset):
    with pytest.raises(ConfigError, match="precision must be one of"):
        _config(tiny_dataset, precision="int4")


def test_each_model_has_its_own_default_recipe_length():
    assert TrainConfig(data="d", category="c", model="seed_cae").recipe.epochs == 200
    assert TrainConfig(data="d", category="c", model="draem").recipe.epochs == 40  # fits 15 min at 256 px on 2 cores
    assert TrainConfig(data="d", category="c", model="draem", epochs=3).recipe.epochs == 3
    for name in ("pixel_stats", "patch_nn"):  # fitted in one pass: a shared --epochs does not apply
        assert TrainConfig(data="d", category="c", model=name, epochs=10).recipe.epochs == 1
    with pytest.raises(ConfigError, match="unknown model"):
        TrainConfig(data="d", category="c", model="nope")


def test_map_choices_are_refused_for_models_with_their_own_map(tiny_dataset, tmp_path):
    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="pixel_stats", image_size=32,
                         anomaly_map="ssim")
    with pytest.raises(ConfigError, match="own anomaly map"):
        train(config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()
