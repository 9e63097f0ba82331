"""The command line, end to end on tiny data: synth -> train -> evaluate -> predict."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from cae_keras.cli import main

CONTRACT_KEYS = {"image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1", "mse_good", "psnr_good",
                 "mse_all", "psnr_all", "ssim_good", "per_defect", "model", "category", "image_size", "epochs",
                 "train_seconds", "threshold"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthesises a tiny set and trains both models through the CLI; returns (root, {model: run})."""
    base = tmp_path_factory.mktemp("cli")
    root = base / "data"
    assert main(["synth", "--out", str(root), "--image-size", "40", "--n-train", "20", "--n-test-good", "4",
                 "--n-per-defect", "2"]) == 0
    runs = {}
    for model in ("seed_cae", "pixel_stats"):
        runs[model] = base / model
        assert main(["train", "--data", str(root), "--category", "bottle", "--model", model, "--run",
                     str(runs[model]), "--epochs", "2", "--image-size", "32", "--batch-size", "8"]) == 0
    return root, runs


@pytest.mark.parametrize("model", ["seed_cae", "pixel_stats"])
def test_evaluate_writes_every_contract_key(trained, model):
    _, runs = trained
    assert main(["evaluate", "--run", str(runs[model])]) == 0
    m = json.loads((runs[model] / "metrics.json").read_text())
    assert CONTRACT_KEYS <= set(m)
    assert m["model"] == model and m["image_size"] == 32 and m["category"] == "bottle"
    assert m["epochs"] == (2 if model == "seed_cae" else 1)
    for key in ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1"):
        assert 0.0 <= m[key] <= 1.0, key
    reconstructs = model == "seed_cae"
    for key in ("mse_good", "psnr_good", "mse_all", "psnr_all", "ssim_good"):
        assert (m[key] is not None) == reconstructs, key
        if reconstructs:
            assert math.isfinite(m[key])
    assert set(m["per_defect"]) == {"broken_large", "broken_small", "contamination"}
    for name in ("loss_curve", "roc_curve", "score_histogram", "gallery"):
        assert (runs[model] / "figures" / f"{name}.png").stat().st_size > 1000
    assert "image_auroc" in (runs[model] / "report.md").read_text()


def test_predict_writes_maps_overlays_and_a_table(trained, tmp_path, capsys):
    root, runs = trained
    good = root / "bottle" / "test" / "good"
    broken = root / "bottle" / "test" / "broken_large"
    out = tmp_path / "pred"
    assert main(["predict", "--run", str(runs["seed_cae"]), str(good), str(broken / "000.png"), "--out", str(out),
                 "--save-maps"]) == 0
    table = capsys.readouterr().out
    assert "flagged as defective" in table
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 5
    # good/000.png and broken_large/000.png share a stem: both kept, under distinct names
    assert (out / "good_000_map.png").is_file() and (out / "broken_large_000_overlay.png").is_file()
    anomaly = np.load(out / "good_000_map.npy")
    assert anomaly.dtype == np.float32 and anomaly.shape == (40, 40)  # the input's size, not the model's 32


def test_bad_input_is_one_line_and_exit_code_2(trained, tmp_path, capsys):
    root, _ = trained
    assert main(["train", "--data", str(root), "--category", "cable", "--run", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "unknown category 'cable'" in error and "Traceback" not in error
    assert main(["train", "--data", str(root), "--category", "bottle", "--run", str(tmp_path / "r"),
                 "--model", "draem", "--image-size", "36"]) == 2
    assert "not a multiple of 16" in capsys.readouterr().err  # draem halves the size 4 times
    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage line and exit code 2
        main(["train", "--data", str(root), "--category", "bottle", "--run", str(tmp_path / "r"), "--model", "resnet"])
    assert exit_info.value.code == 2 and "invalid choice: 'resnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(root), "--category", "bottle", "--run", str(tmp_path / "r"), "--epochs", "-1"])
    error = capsys.readouterr().err
    assert "must be at least 1" in error and error.count("\n") == 1  # one line, not the usage block
    with pytest.raises(SystemExit):  # the flag says the config's own minimum, not 1
        main(["train", "--data", str(root), "--category", "bottle", "--run", str(tmp_path / "r"), "--image-size", "8"])
    assert "--image-size: must be at least 16, got 8" in capsys.readouterr().err


def test_a_wrong_data_path_leaves_nothing_that_blocks_the_corrected_command(trained, tmp_path, capsys):
    root, _ = trained
    run = tmp_path / "run"
    args = ["--category", "bottle", "--model", "pixel_stats", "--run", str(run), "--image-size", "32"]
    assert main(["train", "--data", str(tmp_path / "typo"), *args]) == 2
    assert "dataset root not found" in capsys.readouterr().err
    assert not (run / "config.json").exists()
    assert main(["train", "--data", str(root), *args]) == 0


def test_console_entry_point_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "cae_keras", "models"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split()[0] == "seed_cae" and "pixel_stats" in result.stdout.split()
    result = subprocess.run([sys.executable, "-m", "cae_keras", "train", "--epochs", "-3"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_unwritable_output_is_one_line_and_exit_code_1(trained, tmp_path, capsys):
    root, runs = trained
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["predict", "--run", str(runs["pixel_stats"]), str(root / "bottle" / "test" / "good"),
                 "--out", str(blocker / "out")])
    error = capsys.readouterr().err
    assert code == 1 and "a_file" in error and "Traceback" not in error


def test_compare_writes_a_table_json_and_figure(trained, tmp_path, capsys):
    root, _ = trained
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(root), "--category", "bottle", "--models", "pixel_stats,conv_cae,draem",
                 "--out", str(out), "--epochs", "1", "--image-size", "32", "--batch-size", "8"]) == 0
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["model"] for r in rows] == ["pixel_stats", "conv_cae", "draem"]
    assert all(CONTRACT_KEYS <= set(r) and r["parameters"] > 0 for r in rows)
    assert "parameters" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").stat().st_size > 1000
    assert main(["compare", "--data", str(root), "--category", "bottle", "--models", "nope",
                 "--out", str(out)]) == 2


def test_decision_rules_table(trained, capsys):
    _, runs = trained
    assert main(["evaluate", "--run", str(runs["pixel_stats"]), "--min-defect-area", "4"]) == 0
    table = (runs["pixel_stats"] / "decision_rules.md").read_text()
    assert table.count("\n") == 2 + 6 and "max-area rule (4 px)" in table and "Otsu per map" in table


def test_evaluate_with_another_scoring_recalibrates_and_keeps_the_runs_metrics(trained, capsys):
    _, runs = trained
    run = runs["seed_cae"]
    assert main(["evaluate", "--run", str(run)]) == 0
    own = (run / "metrics.json").read_text()
    assert main(["evaluate", "--run", str(run), "--anomaly-map", "l1+ssim", "--image-score", "top_k_mean",
                 "--compare-scoring"]) == 0
    assert (run / "metrics.json").read_text() == own
    other = json.loads((run / "scoring" / "l1-ssim_top_k_mean" / "metrics.json").read_text())
    assert other["anomaly_map"] == "l1+ssim" and other["image_score"] == "top_k_mean"
    assert other["threshold"] != json.loads(own)["threshold"]
    table = (run / "scoring" / "l1-ssim_top_k_mean" / "scoring_methods.md").read_text()
    assert table.count("\n") == 2 + 12 and "| msgms, top_k_mean |" in table
    capsys.readouterr()
    assert main(["evaluate", "--run", str(runs["pixel_stats"]), "--anomaly-map", "ssim"]) == 2
    assert "own anomaly map" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(runs["pixel_stats"]), "--compare-scoring"]) == 2
    captured = capsys.readouterr()
    assert "own anomaly map" in captured.err and "image AUROC" not in captured.out  # refused before evaluating


def test_evaluate_loads_the_model_and_the_validation_normals_once(trained, monkeypatch, capsys):
    """evaluate with every table (scoring methods, decision rules) opens the run once."""
    from cae_keras import data, models

    _, runs = trained
    loads, decoded = [], []
    load_model, load_images = models.load_model, data.load_images
    monkeypatch.setattr(models, "load_model", lambda path: loads.append(path) or load_model(path))
    monkeypatch.setattr(data, "load_images", lambda paths, *a, **k: decoded.append(len(paths))
                        or load_images(paths, *a, **k))
    assert main(["evaluate", "--run", str(runs["seed_cae"]), "--compare-scoring", "--min-defect-area", "4"]) == 0
    assert len(loads) == 1
    assert len(decoded) == 1  # the validation normals; test images are read by load_test_set


def test_train_flags_take_their_defaults_from_the_config():
    """No flag restates a default: `train` with none given builds the config's own defaults."""
    from cae_keras.cli import _parser, _train_config
    from cae_keras.config import TrainConfig

    args = _parser().parse_args(["train", "--data", "d", "--category", "c", "--run", "r"])
    assert _train_config(args) == TrainConfig(data="d", category="c")
    args = _parser().parse_args(["train", "--data", "d", "--category", "c", "--run", "r", "--no-augment",
                                 "--jit", "off", "--image-size", "64", "--anomaly-map", "ssim"])
    changed = _train_config(args).differences(TrainConfig(data="d", category="c"))
    assert sorted(line.split(":")[0] for line in changed) == ["anomaly_map", "augment", "blur_sigma", "image_size",
                                                             "jit_compile"]


def test_demo_refuses_runs_made_on_another_synthetic_bottle(tmp_path, monkeypatch):
    from cae_keras import synth
    from cae_keras.cli import _claim_demo_runs
    from cae_keras.errors import ConfigError

    runs = tmp_path / "runs"
    _claim_demo_runs(runs)  # a new folder is claimed
    (runs / "pixel_stats").mkdir()
    _claim_demo_runs(runs)  # the same bottle: its runs are reused
    monkeypatch.setattr(synth, "VERSION", synth.VERSION + 1)
    with pytest.raises(ConfigError, match=f"version {synth.VERSION - 1}, not {synth.VERSION}"):
        _claim_demo_runs(runs)
    (runs / "synth_version").unlink()
    with pytest.raises(ConfigError, match="version unrecorded"):
        _claim_demo_runs(runs)
