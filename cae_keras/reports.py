"""Writing an evaluation to a run folder: `metrics.json`, `report.md` and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cae_keras import plots
from cae_keras.evaluation import Evaluation
from cae_keras.files import write_text_atomic
from cae_keras.runs import RunPaths

TABLE_KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1", "mse_all", "psnr_all",
              "train_seconds")


def write_report(evaluation: Evaluation, run_dir: Path) -> RunPaths:
    """Writes metrics.json, the figures and report.md into the run folder; returns its paths."""
    paths = RunPaths(Path(run_dir))
    m = evaluation.metrics
    write_text_atomic(paths.metrics, json.dumps(m, indent=2) + "\n")
    test, inference = evaluation.test, evaluation.inference
    vmax = float(np.percentile(inference.maps, 99.9))
    figures = {
        "loss_curve.png": plots.loss_curve(evaluation.history, f"{m['model']}: training loss"),
        "roc_curve.png": plots.roc_curve(test.labels, inference.scores, m["image_auroc"], f"{m['model']}: image ROC"),
        "score_histogram.png": plots.score_histogram(inference.scores, test.defect_types, m["threshold"],
                                                     f"{m['model']}: image scores"),
        "gallery.png": plots.gallery(test.images, inference.maps, test.masks, test.defect_types,
                                     inference.scores, inference.reconstructions, vmax),
    }
    for name, figure in figures.items():
        plots.save(figure, paths.figures / name)
    write_text_atomic(paths.root / "report.md", _report_markdown(m, list(figures)))
    return paths


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _report_markdown(m: dict, figure_names: list[str]) -> str:
    lines = [
        f"# {m['model']} on {m['category']}",
        "",
        f"{m['image_size']} px, {m['epochs']} epochs, trained in {m['train_seconds']:.0f} s. "
        f"Test: {m['n_test_good']} good, {m['n_test_defective']} defective images. "
        f"Threshold {m['threshold']:.4g} ({m['threshold_rule']}).",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    reasons = m.get("null_reasons", {})
    for key in ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1", "false_alarm_rate", "miss_rate",
                "mse_good", "psnr_good", "mse_all", "psnr_all", "ssim_good"):
        value = _fmt(m.get(key), 4) if m.get(key) is not None else f"n/a: {reasons.get(key, 'not computed')}"
        lines.append(f"| {key} | {value} |")
    if m.get("expected_false_alarm_rate") is not None:
        lines += ["", f"Expected false-alarm rate of the threshold on new normal images: "
                      f"{m['expected_false_alarm_rate']:.1%} (from the number of validation normals)."]
    if m.get("empty_masks"):
        lines += ["", f"Defective test images whose mask has no defect pixel: {len(m['empty_masks'])} (defective for "
                      "the image figures, their pixels normal for the pixel figures): " + ", ".join(m["empty_masks"])]
    if m.get("masks_lost_at_size"):
        lines += ["", f"Defective test images whose defect vanished in the resize to {m['image_size']} px: "
                      f"{len(m['masks_lost_at_size'])} (their pixels count as normal): "
                      + ", ".join(m["masks_lost_at_size"])]
    if m["per_defect"]:
        lines += ["", "| defect type | image AUROC | pixel AUROC | miss rate |", "| --- | --- | --- | --- |"]
    for defect, values in m["per_defect"].items():
        lines.append(f"| {defect} | {_fmt(values['image_auroc'])} | {_fmt(values['pixel_auroc'])} | "
                     f"{_fmt(values.get('miss_rate'))} |")
    lines += [""] + [f"![{name}](figures/{name})" for name in figure_names] + [""]
    return "\n".join(lines)


def comparison_table(rows: list[dict], keys: tuple[str, ...] = TABLE_KEYS, label: str = "model") -> str:
    """A Markdown table of several runs' metrics, one row each, named by their `label` key."""
    header = f"| {label} | " + " | ".join(keys) + " |"
    lines = [header, "|" + " --- |" * (len(keys) + 1)]
    for m in rows:
        lines.append(f"| {m[label]} | " + " | ".join(_fmt(m.get(k), 1 if k == "train_seconds" else 4)
                                                      for k in keys) + " |")
    return "\n".join(lines)
