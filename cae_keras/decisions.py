"""Comparing decision rules on a run's test split: what each threshold and post-processing does
to image F1, false positives and the defect masks.

Every rule takes its numbers from the validation normals (or from each map alone); test labels
only score the outcome.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cae_keras import metrics, postprocess, thresholds
from cae_keras.evaluation import Evaluation
from cae_keras.runs import Run, as_run


def validation_maps(run: Run | Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's validation normals, scored again: (maps `[V, S, S]`, scores `[V]`)."""
    run = as_run(run)
    inference = run.detector.infer_outputs(run.validation_images, run.validation_outputs, run.config.recipe.batch_size)
    return inference.maps, inference.scores


def _counts(labels: np.ndarray, flagged: np.ndarray) -> dict:
    labels = labels.astype(bool)
    fp, fn = int(np.sum(flagged & ~labels)), int(np.sum(~flagged & labels))
    return {"image_f1": metrics.image_f1(labels, flagged.astype(np.float32), 0.5), "false_positives": fp,
            "missed": fn}


def _pixel_f1(masks: np.ndarray, predicted: np.ndarray) -> float | None:
    """F1 over all pixels; None without any defect pixel (undefined)."""
    if not masks.any():
        return None
    tp = np.sum(predicted & masks)
    return float(2 * tp / (2 * tp + np.sum(predicted & ~masks) + np.sum(~predicted & masks)))


def compare_rules(evaluation: Evaluation, val_maps: np.ndarray, val_scores: np.ndarray,
                  min_defect_area: int, quantile: float, k: float = 3.0) -> list[dict]:
    """One row per rule: its threshold, image F1, false positives, missed defects, pixel F1.

    Args:
        min_defect_area: the smallest defect worth finding, in pixels at the evaluation size
            (the user's requirement, not measured on the test masks).
        quantile: the run's threshold quantile (`TrainConfig.threshold_quantile`) for the
            quantile rule.
        k: sigmas above the validation mean for the mean + k sigma rule.
    """
    test, maps, scores = evaluation.test, evaluation.inference.maps, evaluation.inference.scores
    labels = test.labels
    rows = []
    for name, threshold in (
        (f"image score > quantile {quantile} of validation scores", thresholds.quantile_threshold(val_scores, quantile)),
        (f"image score > mean + {k:g} sigma of validation scores", thresholds.mean_std_threshold(val_scores, k)),
    ):
        flagged = scores > threshold
        masks = maps > threshold
        rows.append({"rule": name, "threshold": threshold, **_counts(labels, flagged),
                     "pixel_f1": _pixel_f1(test.masks, masks)})
    pixel_threshold = thresholds.max_area_threshold(val_maps, min_defect_area)
    for name, morphology in (
        (f"max-area rule ({min_defect_area} px), regions >= {min_defect_area} px", {"min_area": min_defect_area}),
        ("same + opening 1 px, closing 2 px, holes filled",
         {"open_px": 1, "close_px": 2, "min_area": min_defect_area, "fill_holes": True}),
    ):
        masks = postprocess.segment(maps, pixel_threshold, **morphology)
        rows.append({"rule": name, "threshold": pixel_threshold, **_counts(labels, postprocess.decide(masks)),
                     "pixel_f1": _pixel_f1(test.masks, masks)})
    for name, per_map in (("Otsu per map, regions >= min area", lambda m: m > postprocess.otsu_threshold(m)),
                          ("adaptive per map, regions >= min area", postprocess.adaptive_mask)):
        masks = np.stack([postprocess.clean_mask(per_map(m), min_area=min_defect_area) for m in maps])
        rows.append({"rule": name, "threshold": None, **_counts(labels, postprocess.decide(masks)),
                     "pixel_f1": _pixel_f1(test.masks, masks)})
    return rows


def rules_table(rows: list[dict]) -> str:
    lines = ["| rule | threshold | image F1 | false positives | missed | pixel F1 |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        threshold = "per map" if r["threshold"] is None else f"{r['threshold']:.4g}"
        f1, pixel_f1 = (("n/a" if v is None else f"{v:.3f}") for v in (r["image_f1"], r["pixel_f1"]))
        lines.append(f"| {r['rule']} | {threshold} | {f1} | {r['false_positives']} | {r['missed']} | {pixel_f1} |")
    return "\n".join(lines)
