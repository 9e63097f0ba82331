"""Training and evaluating several models on one category, side by side."""

from __future__ import annotations

import json
from pathlib import Path

from cae_keras import plots
from cae_keras.config import TrainConfig
from cae_keras.evaluation import evaluate_run
from cae_keras.files import write_text_atomic
from cae_keras.models import get_spec
from cae_keras.reports import comparison_table, write_report
from cae_keras.training import train

COMPARISON_KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1", "mse_all", "psnr_all",
                   "ssim_good", "train_seconds", "parameters")


def _short(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def compare(data: Path, category: str, model_names: list[str], out: Path, verbose: int | str = 2,
            model_epochs: dict[str, int] | None = None, allow_empty_masks: bool = False, **training) -> list[dict]:
    """Trains (or resumes) and evaluates each model into `out/<model>`, then writes
    `out/comparison.md`, `out/comparison.json` and `out/comparison.png`.

    One progress line per model is printed whatever `verbose` (Keras' verbosity) says.

    Args:
        model_epochs: epochs for some models, instead of `training["epochs"]` or their own recipe.
        allow_empty_masks: as `evaluation.evaluate_run`'s.
        training: TrainConfig fields shared by every model (epochs, image_size, batch_size, seed, ...).

    Returns:
        each model's metrics, in the order given.
    """
    for name in model_names:
        get_spec(name)  # unknown names fail before any training
    out = Path(out)
    rows = []
    for number, name in enumerate(model_names, 1):
        print(f"[compare {number}/{len(model_names)}] {name}", flush=True)
        settings = {**training, **({"epochs": model_epochs[name]} if name in (model_epochs or {}) else {})}
        config = TrainConfig(data=str(data), category=category, model=name, **settings)
        train(config, out / name, verbose=verbose)
        evaluation = evaluate_run(out / name, progress=bool(verbose), allow_empty_masks=allow_empty_masks)
        write_report(evaluation, out / name)
        rows.append(evaluation.metrics)
        m = evaluation.metrics
        trained = "fitted" if get_spec(name).fitted_in_one_pass else f"{m['epochs']} epochs"
        print(f"    {trained} in {m['train_seconds']:.0f} s; image AUROC {_short(m['image_auroc'])}, "
              f"pixel AUROC {_short(m['pixel_auroc'])}, AU-PRO {_short(m['aupro'])}", flush=True)
    table = comparison_table(rows, COMPARISON_KEYS)
    write_text_atomic(out / "comparison.md", f"# {category}: {', '.join(model_names)}\n\n{table}\n")
    write_text_atomic(out / "comparison.json", json.dumps(rows, indent=2) + "\n")
    plots.save(plots.comparison_bars(rows), out / "comparison.png")
    return rows
