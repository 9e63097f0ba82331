"""The training configuration, by concern, stored by a run folder as `config.json`.

- `DataConfig`: where the normals are (root, category, layout, validation share);
- `RecipeConfig`: the model and how it is fitted (size, epochs, batch, learning rate, seed);
- `AugmentationConfig`: what training varies (rotation, brightness, flips);
- `ScoringConfig`: how maps become scores and decisions (map, blur, image score, threshold);
- `RuntimeConfig`: how the machine computes it (precision, XLA).

Each field's default is stated once, here; the command line's flags are made from these fields
(`add_arguments`), and `workshop`, `bench` and `gpu_check` read their defaults from them
(e.g. `RecipeConfig().image_size`). Evaluation
and prediction read the config back from the run folder, so they never guess the image size,
the model or the scoring that a model was trained with.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from cae_keras import maps
from cae_keras.errors import ConfigError
from cae_keras.layouts import LAYOUTS

CONFIG_VERSION = 2
"""Bumped whenever a field's meaning or place changes. Version 1 (every field at the top level)
is read and regrouped; other versions are refused."""

DEFAULT_MODEL = "patch_nn"
"""What `cae-keras train` trains when no --model is given."""

IMAGE_SCORES = ("max", "top_k_mean")
"""Image scores from an anomaly map: its maximum, or the mean of its top `top_k_fraction` pixels."""
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies: bfloat16 pays on CPUs with AVX-512 BF16 / AMX, float16 on GPUs."""
JIT_CHOICES = ("auto", "on", "off")
"""XLA compilation of the training step; 'auto' is Keras' choice (off on CPU-only machines)."""


MIN_IMAGE_SIZE = 16
"""The smallest `image_size` a config takes, px."""


def _field(default, help: str, choices=None, flag: str | None = None, kind: str | None = None):
    """A config field with its default and what its command-line flag says (`kind`: 'positive',
    'image_size' or 'fraction', checked as the flag is parsed)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "flag": flag,
                                                        "kind": kind})


def default_blur_sigma(image_size: int) -> float:
    """The evaluation protocol's Gaussian blur: sigma 4 px at 256x256, scaled with the image size."""
    return 4.0 * image_size / 256.0


@dataclasses.dataclass
class DataConfig:
    """Where the training and validation normals come from."""

    data: str = dataclasses.field(metadata={"help": "dataset root (MVTec AD layout)"})
    category: str = dataclasses.field(metadata={"help": "category folder under the root"})
    layout: str = _field("auto", "dataset layout, auto: detected (see the README)", choices=("auto",) + LAYOUTS)
    val_fraction: float = _field(0.1, "share of the training normals held out as validation normals, which choose "
                                      "the threshold (not used where the layout has a validation folder)",
                                 kind="fraction")


@dataclasses.dataclass
class RecipeConfig:
    """The model and how it is fitted. The defaults are the seed's recipe: 256 px, batch 32, Adam
    2e-4; epochs are the model's own (`ModelSpec.default_epochs`: 200 for the seed's CAE)."""

    model: str = _field(DEFAULT_MODEL, f"registered model (default: {DEFAULT_MODEL})")
    image_size: int = _field(256, "square size the images are resized to, px", kind="image_size")
    epochs: int | None = _field(None, "default: the model's recipe (200; draem 40); patch_nn and pixel_stats are "
                                      "fitted in one pass, epochs do not apply", kind="positive")
    batch_size: int = _field(32, "images per training step", kind="positive")
    learning_rate: float = _field(2e-4, "Adam's learning rate")
    seed: int = _field(0, "seeds the validation split, augmentation, synthetic anomalies and weights")


@dataclasses.dataclass
class AugmentationConfig:
    """What training varies in the normals (the seed's rotations, flips and brightness)."""

    augment: bool = _field(True, "train without augmentation", flag="--no-augment")
    rotation_degrees: float = _field(10.0, "largest random rotation, degrees")
    brightness_delta: float = _field(0.1, "largest random brightness change, on [0, 1] images")
    horizontal_flip: bool = _field(True, "random horizontal flips")


@dataclasses.dataclass
class ScoringConfig:
    """How a model's outputs become anomaly maps, image scores and decisions."""

    anomaly_map: str = _field("l1", f"reconstruction error map: {', '.join(maps.COMPONENTS)}, or several "
                                    "joined by '+'")
    image_score: str = _field("max", "image score from the blurred map: its maximum or the mean of its top "
                                     "0.1%%", choices=IMAGE_SCORES)
    top_k_fraction: float = _field(0.001, "share of pixels top_k_mean averages")
    blur_sigma: float | None = _field(None, "Gaussian blur of the maps, px (default: 4 px at 256, scaled)")
    threshold_quantile: float = _field(0.99, "quantile of the validation normals' scores taken as threshold")


@dataclasses.dataclass
class RuntimeConfig:
    """How the machine computes: results do not depend on it beyond rounding."""

    precision: str = _field("float32", "mixed_bfloat16 on CPUs with bf16 support, mixed_float16 on GPUs",
                            choices=PRECISIONS)
    jit_compile: str = _field("auto", "XLA compilation of the training step", choices=JIT_CHOICES, flag="--jit")


GROUPS = {"dataset": DataConfig, "recipe": RecipeConfig, "augmentation": AugmentationConfig,
          "scoring": ScoringConfig, "runtime": RuntimeConfig}
"""The config's groups by their name in `config.json`."""


def field_defaults() -> dict:
    """Every field's default by name (fields without one, data and category, left out)."""
    return {field.name: field.default for group in GROUPS.values() for field in dataclasses.fields(group)
            if field.default is not dataclasses.MISSING}


def _group_of(name: str) -> str:
    for group, cls in GROUPS.items():
        if name in {field.name for field in dataclasses.fields(cls)}:
            return group
    raise ConfigError(f"unknown config field '{name}'")


class TrainConfig:
    """Everything that decides how a model is trained and scored, by concern: `dataset`, `recipe`,
    `augmentation`, `scoring` and `runtime`, each a dataclass above.

    Built from fields by name, each put in its group: `TrainConfig(data=..., category=...,
    model="seed_cae", image_size=128)`; the others keep their defaults. Unset epochs become the
    model's own recipe; an unset blur sigma is the protocol's for the image size.

    Raises:
        ConfigError: an unknown or missing field, or a value that cannot work (naming the field).
    """

    def __init__(self, **fields):
        grouped: dict[str, dict] = {name: {} for name in GROUPS}
        for name, value in fields.items():
            grouped[_group_of(name)][name] = value
        missing = [name for name in ("data", "category") if name not in fields]
        if missing:
            raise ConfigError(f"a config needs {' and '.join(missing)}")
        self.dataset = DataConfig(**grouped["dataset"])
        self.recipe = RecipeConfig(**grouped["recipe"])
        self.augmentation = AugmentationConfig(**grouped["augmentation"])
        self.scoring = ScoringConfig(**grouped["scoring"])
        self.runtime = RuntimeConfig(**grouped["runtime"])
        self.config_version = CONFIG_VERSION
        self._complete()

    def __eq__(self, other) -> bool:
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self.flat().items())})"

    def _complete(self) -> None:
        from cae_keras.models import get_spec  # models imports Keras lazily; this stays light

        spec = get_spec(self.recipe.model)
        if spec.fitted_in_one_pass:
            self.recipe.epochs = 1  # fitted in one pass over the normals: there are no epochs to choose
        elif self.recipe.epochs is None:
            self.recipe.epochs = spec.default_epochs
        if self.scoring.blur_sigma is None:
            self.scoring.blur_sigma = default_blur_sigma(self.recipe.image_size)
        self.validate()

    def validate(self) -> None:
        """Raises ConfigError naming the first field whose value cannot work."""
        d, r, a, s, rt = self.dataset, self.recipe, self.augmentation, self.scoring, self.runtime
        checks = [
            (r.image_size >= MIN_IMAGE_SIZE, f"image_size must be at least {MIN_IMAGE_SIZE} px, got {r.image_size}"),
            (r.epochs >= 1, f"epochs must be at least 1, got {r.epochs}"),
            (r.batch_size >= 1, f"batch_size must be at least 1, got {r.batch_size}"),
            (r.learning_rate > 0, f"learning_rate must be positive, got {r.learning_rate}"),
            (0.0 < d.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {d.val_fraction}"),
            (0.0 < s.threshold_quantile <= 1.0, f"threshold_quantile must be in (0, 1], got {s.threshold_quantile}"),
            (s.blur_sigma is not None and s.blur_sigma >= 0, f"blur_sigma must be >= 0, got {s.blur_sigma}"),
            (a.rotation_degrees >= 0, f"rotation_degrees must be >= 0, got {a.rotation_degrees}"),
            (a.brightness_delta >= 0, f"brightness_delta must be >= 0, got {a.brightness_delta}"),
            (d.layout in ("auto",) + LAYOUTS, f"layout must be auto or one of {LAYOUTS}, got {d.layout!r}"),
            (s.image_score in IMAGE_SCORES, f"image_score must be one of {IMAGE_SCORES}, got {s.image_score!r}"),
            (0.0 < s.top_k_fraction <= 1.0, f"top_k_fraction must be in (0, 1], got {s.top_k_fraction}"),
            (rt.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {rt.precision!r}"),
            (rt.jit_compile in JIT_CHOICES, f"jit_compile must be one of {JIT_CHOICES}, got {rt.jit_compile!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        maps.parse(s.anomaly_map)

    def replace(self, **fields) -> "TrainConfig":
        """A copy with these fields (by name, in any group) changed, validated again."""
        return TrainConfig(**{**self.flat(), **fields})

    def flat(self) -> dict:
        """Every field by name, without the groups (and without the version)."""
        return {name: value for group in GROUPS for name, value in dataclasses.asdict(getattr(self, group)).items()}

    def to_dict(self) -> dict:
        """What `config.json` holds: each group's fields under its name, and the version."""
        return {**{group: dataclasses.asdict(getattr(self, group)) for group in GROUPS},
                "config_version": self.config_version}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        """Builds a config from `config.json`'s contents: this version, or version 1 (flat) regrouped.

        Raises:
            ConfigError: another version, or unknown groups or fields.
        """
        version = values.get("config_version")
        if version == 1:  # every field at the top level: the same fields, regrouped
            flat = {k: v for k, v in values.items() if k != "config_version"}
        elif version == CONFIG_VERSION:
            unknown = sorted(set(values) - set(GROUPS) - {"config_version"})
            missing = [group for group in GROUPS if not isinstance(values.get(group), dict)]
            if unknown or missing:
                raise ConfigError(f"{source} has unknown groups {unknown}" if unknown else
                                  f"{source} lacks the group(s) {missing}; every version-2 config.json has "
                                  f"{', '.join(GROUPS)}")
            flat = {}
            for group in GROUPS:
                fields = values[group]
                known = {field.name for field in dataclasses.fields(GROUPS[group])}
                if set(fields) - known:
                    raise ConfigError(f"{source} has unknown fields {sorted(set(fields) - known)} in '{group}'")
                flat.update(fields)
        else:
            raise ConfigError(
                f"{source} was written with config version {version!r}; this cae_keras reads versions 1 and "
                f"{CONFIG_VERSION}. Retrain into a new run folder, or use the cae_keras that wrote it."
            )
        try:
            return cls(**flat)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    def differences(self, other: "TrainConfig", ignore: tuple[str, ...] = ()) -> list[str]:
        """Names the fields whose values differ, as 'field: mine != theirs'."""
        mine, theirs = self.flat(), other.flat()
        return [
            f"{name}: {mine[name]!r} != {theirs[name]!r}"
            for name in mine
            if name not in ignore and mine[name] != theirs[name]
        ]


def add_arguments(parser, group: type, names: tuple[str, ...], kinds: dict | None = None,
                  keep_run: bool = False) -> None:
    """Adds a `--flag` for each of a config group's fields in `names`, with the field's default,
    type, choices and help, so that no flag restates a default.

    Args:
        kinds: argparse types for the fields' kinds ('positive', 'image_size', 'fraction'), which check the value
            as it is parsed.
        keep_run: no default (None): the run's own value is kept unless the flag is given.
    """
    fields = {field.name: field for field in dataclasses.fields(group)}
    for name in names:
        field, meta = fields[name], fields[name].metadata
        flag = meta.get("flag") or "--" + name.replace("_", "-")
        if isinstance(field.default, bool):  # a flag that turns a default-on behaviour off, or on
            parser.add_argument(flag, dest=name, action="store_false" if field.default else "store_true",
                                help=meta["help"])
            continue
        kind = (kinds or {}).get(meta.get("kind")) or (int if "int" in str(field.type) else
                                                       float if "float" in str(field.type) else str)
        if keep_run:
            help_text = meta["help"] + " (default: the run's own; another choice recalibrates on validation normals)"
        else:
            help_text = meta["help"] + ("" if field.default is None else f" (default: {field.default})")
        parser.add_argument(flag, dest=name, type=kind, default=None if keep_run else field.default,
                            choices=meta.get("choices"), help=help_text)


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
