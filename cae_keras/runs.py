"""The run folder: where a trained model lives, and how every command reads it back.

    RUN/config.json          the TrainConfig it was trained with
    RUN/history.csv          one row per completed epoch: epoch, loss, val_loss, seconds
    RUN/checkpoints/         the last complete epoch, with optimizer state, for resuming
    RUN/model.keras          the trained model (written when training completes)
    RUN/calibration.json     the threshold from validation normals, and their scores
    RUN/metrics.json, RUN/report.md, RUN/figures/   written by `cae-keras evaluate`
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import re
from pathlib import Path

from cae_keras.config import TrainConfig, load_config
from cae_keras.errors import ConfigError
from cae_keras.files import write_text_atomic

HISTORY_FIELDS = ("epoch", "loss", "val_loss", "seconds")
_CHECKPOINT = re.compile(r"^epoch_(\d{4,})\.keras$")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def calibration(self) -> Path:
        return self.root / "calibration.json"

    @property
    def selection(self) -> Path:
        """What a model that chooses its own form at fit (patch_nn) scored and kept."""
        return self.root / "selection.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.keras"

    def last_checkpoint(self) -> tuple[int, Path] | None:
        """The highest complete checkpoint (temporary files never match the name pattern)."""
        if not self.checkpoints.is_dir():
            return None
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir() if (m := _CHECKPOINT.match(p.name))]
        return max(found) if found else None


def read_history(path: Path) -> list[dict]:
    """Rows of history.csv as dicts of floats (epoch as int); [] if there is none yet."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        return [
            {k: (int(v) if k == "epoch" else (float(v) if v else None)) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def write_history(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in HISTORY_FIELDS})
    write_text_atomic(path, buffer.getvalue())


def train_seconds(history: list[dict]) -> float:
    """Wall time of training, summed over epochs (so resumed runs count each epoch once)."""
    return float(sum(row["seconds"] or 0.0 for row in history))


def read_calibration(paths: RunPaths) -> dict:
    if not paths.calibration.is_file():
        raise ConfigError(f"{paths.calibration}: missing; training did not complete, rerun `cae-keras train`")
    return json.loads(paths.calibration.read_text())


def open_run(run_dir: Path) -> tuple[RunPaths, TrainConfig]:
    """Checks that a run folder holds a completed training and returns its paths and config.

    Raises:
        ConfigError: not a run folder, another config version, or training not completed.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise ConfigError(f"{paths.root}: run folder not found")
    config = load_config(paths.config)
    if not paths.model.is_file():
        raise ConfigError(f"{paths.model}: missing; training did not complete, rerun `cae-keras train`")
    return paths, config


class Run:
    """A completed run folder, opened once per command.

    Holds its paths, config, model spec and calibration; the model, the validation normals and
    the model's outputs on them are loaded on first use and kept, so that a command that
    evaluates, compares scoring methods and decision rules loads the model once and decodes the
    validation images once.

    Raises (on opening):
        ConfigError: not a run folder, another config version, or training not completed.
    """

    def __init__(self, run_dir: Path):
        self.paths, self.config = open_run(run_dir)

    @property
    def root(self) -> Path:
        return self.paths.root

    @functools.cached_property
    def spec(self):
        """The model's `models.ModelSpec`."""
        from cae_keras import models

        return models.get_spec(self.config.recipe.model)

    @functools.cached_property
    def calibration(self) -> dict:
        """`calibration.json`: threshold, rule, validation scores, map scales."""
        return read_calibration(self.paths)

    @property
    def threshold(self) -> float:
        return float(self.calibration["threshold"])

    @functools.cached_property
    def model(self):
        """The trained Keras model, loaded on first use."""
        from cae_keras import models

        return models.load_model(self.paths.model)

    @functools.cached_property
    def detector(self):
        """The run's `cae_keras.detector`: its network, scoring method and threshold, built once."""
        from cae_keras import detector, scoring

        return detector.build(self.model, self.spec.reconstructs, self.config.recipe.image_size,
                              scoring.ScoringMethod.of(self.config, self.calibration), self.threshold)

    @functools.cached_property
    def validation_images(self):
        """The validation normals at the run's image size, `[V, S, S, 3] float32 in [0, 1]`."""
        from cae_keras import data

        _, paths, _ = data.validation_split(data.category_of(self.config), self.config.dataset.val_fraction,
                                            self.config.recipe.seed)
        return data.load_images(paths, self.config.recipe.image_size)

    @functools.cached_property
    def validation_outputs(self):
        """The model's outputs (reconstructions or maps) for `validation_images`."""
        from cae_keras import scoring

        return scoring.predict_batches(self.model, self.validation_images, self.config.recipe.batch_size)


def as_run(run: "Run | Path | str") -> Run:
    """A `Run` as it is, or a run folder opened."""
    return run if isinstance(run, Run) else Run(Path(run))
