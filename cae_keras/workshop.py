"""Helpers that let every notebook run on its own, in any order, from a fresh kernel.

`ensure_dataset()` and `load_or_train()` are idempotent and cache under `CAE_KERAS_CACHE`
(default `~/.cache/cae_keras`), so a notebook that needs a trained model trains it once and later
notebooks reuse it. `CAE_KERAS_FAST=1` shrinks data, image size and epochs for CI and quick looks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from cae_keras.calibration import FewValidationNormals
from cae_keras.config import RecipeConfig, TrainConfig, field_defaults
from cae_keras.models import get_spec
from cae_keras.quiet import quiet_tensorflow
from cae_keras.runs import RunPaths
from cae_keras.synth import SynthConfig

# Every notebook imports this module first: TensorFlow's start-up lines (`E0000 ... cuInit` on a
# CPU machine) and retracing notes would read like failures in a student's output.
quiet_tensorflow(verbose=os.environ.get("CAE_KERAS_VERBOSE", "") not in ("", "0"))
# The notebooks' small data hold out a handful of validation normals by design; `train` prints the
# false-alarm rate that implies and notebook 05 explains it, so the warning would only repeat it.
warnings.filterwarnings("ignore", category=FewValidationNormals)

FIGURES = Path(__file__).resolve().parent.parent / "notebooks" / "figures"
"""Key figures of full-mode runs, committed so that fast mode (and readers) can show them."""

FAST_SYNTH = SynthConfig(image_size=64, n_train=48, n_test_good=8, n_per_defect=6)
FULL_SYNTH = SynthConfig()
FAST_TRAINING = {"image_size": 64, "epochs": 60, "batch_size": 16}
"""60 epochs, not 3: three leave every autoencoder at a flat grey output, whose error map is the
image itself, and every figure built on it teaches the wrong thing (issue 12's measurement: about
11 s more per model at 64 px)."""
FULL_TRAINING = {"image_size": RecipeConfig().image_size, "epochs": get_spec("seed_cae").default_epochs,
                 "batch_size": RecipeConfig().batch_size}
"""The seed's recipe: the config's defaults and the seed's CAE's own epochs (200)."""
FULL_COMPARISON = {"image_size": 128, "epochs": 60, "batch_size": 32}
"""Every registered model with the same budget (847 s on 2 cores for the eight before patch_nn;
each model's own recipe would take hours)."""


def fast_mode() -> bool:
    """True when `CAE_KERAS_FAST` is set to anything but '', '0' or 'false'."""
    return os.environ.get("CAE_KERAS_FAST", "").strip().lower() not in ("", "0", "false")


def mode_banner() -> str:
    """One line saying what the figures below were made with; notebooks print it before results."""
    if fast_mode():
        return (f"FAST MODE (CAE_KERAS_FAST=1): {FAST_SYNTH.image_size} px, {FAST_SYNTH.n_train} training "
                f"images, {FAST_TRAINING['epochs']} epochs. A quick look: figures differ from the full "
                f"recipe ({FULL_TRAINING['image_size']} px, {FULL_SYNTH.n_train} images, "
                f"{FULL_TRAINING['epochs']} epochs).")
    return (f"FULL MODE: {FULL_TRAINING['image_size']} px, {FULL_SYNTH.n_train} training images, "
            f"{FULL_TRAINING['epochs']} epochs (the seed's recipe).")


def cache_dir() -> Path:
    """Where datasets and trained runs are cached: `$CAE_KERAS_CACHE` or `~/.cache/cae_keras`."""
    return Path(os.environ.get("CAE_KERAS_CACHE", "~/.cache/cae_keras")).expanduser()


def ensure_dataset(fast: bool | None = None) -> Path:
    """Writes the synthetic bottle once (fast or full size) and returns its dataset root."""
    return synthetic_dataset(FAST_SYNTH if (fast_mode() if fast is None else fast) else FULL_SYNTH)


def synthetic_dataset(config: SynthConfig) -> Path:
    """Writes the synthetic bottle of `config` once under the cache; returns its dataset root.

    A `.complete` marker is written last, so an interrupted generation is redone.
    """
    from cae_keras.synth import VERSION, write_dataset

    # The generator's version is part of the name: a bottle cached by an older generator is not reused.
    key = _digest({**config.__dict__, "version": VERSION}, {**_field_defaults(SynthConfig), "version": 1})
    root = cache_dir() / "data" / f"synthetic_{key}"
    if not (root / ".complete").is_file():
        write_dataset(root, "bottle", config)
        (root / ".complete").write_text(json.dumps(config.__dict__) + "\n")
    return root


def training_config(model: str = "seed_cae", fast: bool | None = None, **overrides) -> TrainConfig:
    """The notebooks' training config for the synthetic bottle (fast or the seed's full recipe)."""
    fast = fast_mode() if fast is None else fast
    values = dict(FAST_TRAINING if fast else FULL_TRAINING)
    values.update(overrides)
    return TrainConfig(data=str(ensure_dataset(fast)), category="bottle", model=model, **values)


def load_or_train(config: TrainConfig, verbose: int | str = "auto") -> RunPaths:
    """Trains `config` into a cached run folder named by the config's hash, or reuses it."""
    from cae_keras.training import train

    # Keyed by the fields by name (not by group), so that regrouping the config kept the cache.
    run = cache_dir() / "runs" / f"{config.recipe.model}_{_digest(config.flat(), field_defaults())}"
    return train(config, run, verbose=verbose)


def compare_models(model_names: list[str], fast: bool | None = None, verbose: int | str = 0,
                   **overrides) -> tuple[Path, list[dict]]:
    """Trains (or reuses) and evaluates each model on the synthetic bottle with the same settings.

    Returns:
        (the comparison folder, with a run folder per model; each model's metrics, in order).
    """
    from cae_keras.compare import compare

    fast = fast_mode() if fast is None else fast
    values = dict(FAST_TRAINING if fast else FULL_COMPARISON)
    values.update(overrides)
    root = ensure_dataset(fast)
    out = cache_dir() / "comparisons" / _digest({"data": str(root), **values})
    return out, compare(root, "bottle", list(model_names), out, verbose=verbose, **values)


REAL_FIGURE = "05_real_vs_synthetic.png"
"""Made by `make real-figure REAL=<root of real MVTec-layout sets>`; notebook 05 shows it."""


def real_vs_synthetic(real_root: Path, categories: tuple[str, ...] = ("screw", "tire"),
                      model_names: tuple[str, ...] = ("pixel_stats", "patch_nn"),
                      image_size: int = RecipeConfig().image_size,
                      synthetic: SynthConfig = FULL_SYNTH, verbose: int | str = 0):
    """The synthetic bottle beside real categories: each model trained and evaluated on each set.

    For every set, each model is trained (or reused from the cache) at `image_size` with its own
    recipe and evaluated on the whole test split. The example drawn is the first defective test
    image in file order (not picked by score), with each model's anomaly map divided by that
    model's threshold.

    Args:
        real_root: a dataset root holding `categories` in a layout `cae_keras.layouts` reads
            (e.g. MVTec AD screw, MVTec 3D-AD tire); never needed by tests or notebooks.

    Returns:
        (the figure of `plots.sets_side_by_side`, one dict per set and model: set, model,
        image_auroc, pixel_auroc, aupro).

    Raises:
        DataError: a category cannot be read.
    """
    from cae_keras import plots
    from cae_keras.evaluation import evaluate_run

    sets = [("synthetic bottle", synthetic_dataset(synthetic), "bottle")]
    sets += [(f"real {name}", Path(real_root), name) for name in categories]
    rows, figures = [], []
    for label, root, category in sets:
        maps, figure_of = {}, {}
        for name in model_names:
            config = TrainConfig(data=str(root), category=category, model=name, image_size=image_size)
            run = load_or_train(config, verbose=verbose)
            evaluation = evaluate_run(run.root, progress=bool(verbose))
            test, metrics = evaluation.test, evaluation.metrics
            example = int(np.flatnonzero(test.labels)[0])
            maps[name] = evaluation.inference.maps[example] / metrics["threshold"]
            figure_of[name] = (metrics["image_auroc"], metrics["pixel_auroc"])
            figures.append({"set": label, "model": name, **{k: metrics[k] for k in
                                                            ("image_auroc", "pixel_auroc", "aupro")}})
        rows.append({"set": label, "image": test.images[example], "mask": test.masks[example],
                     "defect": test.defect_types[example], "maps": maps, "figures": figure_of})
    return plots.sets_side_by_side(rows), figures


def save_real_figure(real_root: Path) -> Path:
    """`make real-figure`: draws `real_vs_synthetic` at the full recipe into `notebooks/figures/`,
    prints each set's figures, and returns the path written."""
    from cae_keras import plots

    figure, rows = real_vs_synthetic(Path(real_root), verbose=2)
    plots.save(figure, FIGURES / REAL_FIGURE)
    for row in rows:
        figures = "  ".join(f"{name} {'n/a' if row[key] is None else format(row[key], '.3f')}" for key, name in
                            (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AU-PRO")))
        print(f"{row['set']:18s} {row['model']:12s} {figures}")
    return FIGURES / REAL_FIGURE


def _digest(values: dict, defaults: dict | None = None) -> str:
    """A short hash of the values that differ from their defaults, so that a field added later
    with a default does not change the names of folders cached before it existed."""
    if defaults:
        values = {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def _field_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def save_figure(figure, name: str) -> Path | None:
    """Saves a full-mode figure under `notebooks/figures/` (in fast mode nothing is written).

    Returns the path written, or None in fast mode.
    """
    if fast_mode():
        return None
    from cae_keras.plots import save

    path = FIGURES / name
    save(figure, path)
    return path
