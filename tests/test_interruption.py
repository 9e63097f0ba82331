"""Training killed at any moment resumes at the last complete epoch with its optimizer state."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import pytest

from cae_keras import models, runs

EPOCHS = 12


def _train_command(root, run):
    return [sys.executable, "-m", "cae_keras", "train", "--data", str(root), "--category", "bottle",
            "--model", "seed_cae", "--run", str(run), "--epochs", str(EPOCHS), "--image-size", "32",
            "--batch-size", "8"]


def _epochs_in(history_path) -> list[int]:
    if not history_path.is_file():
        return []
    with open(history_path) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_training_resumes(tiny_dataset, tmp_path, signum):
    run = tmp_path / "run"
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps
    # it ignored; the child gets the default back, so the test does not depend on how it was run.
    process = subprocess.Popen(_train_command(tiny_dataset, run), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while len(_epochs_in(run / "history.csv")) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be interrupted"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130 and "rerun the same command to resume" in stderr
        assert "Traceback" not in stderr

    paths = runs.RunPaths(run)
    epoch, checkpoint = paths.last_checkpoint()
    assert 1 <= epoch < EPOCHS and not paths.model.exists()
    history = _epochs_in(paths.history)
    assert history[: epoch] == list(range(1, epoch + 1)) and len(history) <= epoch + 1
    steps = -(-22 // 8)  # 22 training images after the validation hold-out, batches of 8
    assert int(models.load_model(checkpoint).optimizer.iterations) == epoch * steps

    resumed = subprocess.run(_train_command(tiny_dataset, run), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from epoch {epoch}" in resumed.stdout
    assert _epochs_in(paths.history) == list(range(1, EPOCHS + 1))
    final = paths.last_checkpoint()
    assert final[0] == EPOCHS and int(models.load_model(final[1]).optimizer.iterations) == EPOCHS * steps
    assert models.load_model(paths.model).output_shape == (None, 32, 32, 3)
    assert not list(paths.checkpoints.glob(".*.tmp*"))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    from cae_keras.training import TrainingError, _epoch_checkpoint_callback

    paths = runs.RunPaths(tmp_path)
    history = [{"epoch": 3, "loss": 0.1, "val_loss": 0.1, "seconds": 1.0}]
    callback = _epoch_checkpoint_callback(paths, history)
    callback.set_model(models.build_model("seed_cae", 16))
    callback.on_epoch_begin(3)
    with pytest.raises(TrainingError, match="loss became nan at epoch 4.*last good checkpoint is epoch 3"):
        callback.on_epoch_end(3, {"loss": float("nan")})
    assert not paths.checkpoints.exists() and len(history) == 1
