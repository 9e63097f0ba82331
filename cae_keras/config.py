"""The training configuration: a small dataclass that a run folder stores as `config.json`.

Evaluation and prediction read the config back from the run folder, so they never guess the
image size, the model or the scoring that a model was trained with.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from cae_keras import maps
from cae_keras.errors import ConfigError
from cae_keras.layouts import LAYOUTS
from cae_keras.scoring import IMAGE_SCORES

CONFIG_VERSION = 1
"""Bumped whenever a field's meaning changes; a run folder with another version is refused."""


DEFAULT_MODEL = "patch_nn"
"""What `cae-keras train` trains when no --model is given."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies: bfloat16 pays on CPUs with AVX-512 BF16 / AMX, float16 on GPUs."""
JIT_CHOICES = ("auto", "on", "off")
"""XLA compilation of the training step; 'auto' is Keras' choice (off on CPU-only machines)."""


def default_blur_sigma(image_size: int) -> float:
    """The evaluation protocol's Gaussian blur: sigma 4 px at 256x256, scaled with the image size."""
    return 4.0 * image_size / 256.0


@dataclasses.dataclass
class TrainConfig:
    """Everything that decides how a model is trained and scored.

    The defaults are the seed's recipe: 256 px, batch 32, Adam 2e-4, 200 epochs, MSE loss,
    rotations / horizontal flips / brightness as augmentation.
    """

    data: str
    category: str
    model: str = DEFAULT_MODEL
    image_size: int = 256
    epochs: int | None = None  # None: the model's recipe (`ModelSpec.default_epochs`); always 1 for
    # models fitted in one pass (pixel_stats, patch_nn)
    batch_size: int = 32
    learning_rate: float = 2e-4
    seed: int = 0
    val_fraction: float = 0.1  # used only where the layout has no validation folder
    layout: str = "auto"  # a `cae_keras.layouts.LAYOUTS` name, or detected
    augment: bool = True
    rotation_degrees: float = 10.0
    brightness_delta: float = 0.1
    horizontal_flip: bool = True
    blur_sigma: float | None = None
    threshold_quantile: float = 0.99
    anomaly_map: str = "l1"
    image_score: str = "max"
    top_k_fraction: float = 0.001
    precision: str = "float32"
    jit_compile: str = "auto"
    config_version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        from cae_keras.models import get_spec  # models imports Keras lazily; this stays light

        spec = get_spec(self.model)
        if spec.fitted_in_one_pass:
            self.epochs = 1  # fitted in one pass over the normals: there are no epochs to choose
        elif self.epochs is None:
            self.epochs = spec.default_epochs
        if self.blur_sigma is None:
            self.blur_sigma = default_blur_sigma(self.image_size)
        self.validate()

    def validate(self) -> None:
        """Raises ConfigError naming the first field whose value cannot work."""
        checks = [
            (self.image_size >= 16, f"image_size must be at least 16 px, got {self.image_size}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}"),
            (0.0 < self.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
            (0.0 < self.threshold_quantile <= 1.0,
             f"threshold_quantile must be in (0, 1], got {self.threshold_quantile}"),
            (self.blur_sigma is not None and self.blur_sigma >= 0,
             f"blur_sigma must be >= 0, got {self.blur_sigma}"),
            (self.rotation_degrees >= 0, f"rotation_degrees must be >= 0, got {self.rotation_degrees}"),
            (self.brightness_delta >= 0, f"brightness_delta must be >= 0, got {self.brightness_delta}"),
            (self.layout in ("auto",) + LAYOUTS, f"layout must be auto or one of {LAYOUTS}, got {self.layout!r}"),
            (self.image_score in IMAGE_SCORES, f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}"),
            (0.0 < self.top_k_fraction <= 1.0, f"top_k_fraction must be in (0, 1], got {self.top_k_fraction}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.jit_compile in JIT_CHOICES, f"jit_compile must be one of {JIT_CHOICES}, got {self.jit_compile!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        maps.parse(self.anomaly_map)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        """Builds a config from a dict, refusing other config versions and unknown fields."""
        version = values.get("config_version")
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"{source} was written with config version {version}; this cae_keras reads version "
                f"{CONFIG_VERSION}. Retrain into a new run folder, or use the cae_keras that wrote it."
            )
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source} has unknown fields {unknown}")
        return cls(**values)

    def differences(self, other: "TrainConfig", ignore: tuple[str, ...] = ()) -> list[str]:
        """Names the fields whose values differ, as 'field: mine != theirs'."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {mine[name]!r} != {theirs[name]!r}"
            for name in mine
            if name not in ignore and mine[name] != theirs[name]
        ]


def save_config(config: TrainConfig, path: Path) -> None:
    from cae_keras.files import write_text_atomic

    write_text_atomic(path, json.dumps(config.to_dict(), indent=2) + "\n")


def load_config(path: Path) -> TrainConfig:
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no config.json; is this a run folder written by `cae-keras train`?") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    return TrainConfig.from_dict(values, source=str(path))
