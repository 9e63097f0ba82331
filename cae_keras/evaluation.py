"""Evaluating a trained run on the test split, with the protocol of `evaluation.md`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cae_keras import data, metrics, models, scoring
from cae_keras.runs import open_run, read_calibration, read_history, train_seconds


@dataclasses.dataclass
class Evaluation:
    """Everything an evaluation computed: the figures of the contract and what they came from."""

    metrics: dict
    test: data.TestSet
    inference: scoring.Inference
    history: list[dict]


def summarize(test: data.TestSet, inference: scoring.Inference, threshold: float) -> dict:
    """The detection and reconstruction figures of the contract (no run metadata).

    Reconstruction figures are None for models that do not reconstruct.
    """
    labels = test.labels
    good = labels == 0
    ranked = metrics.RankedPixels.build(test.masks, inference.maps)  # one sort for every pixel metric
    figures = {
        "image_auroc": metrics.image_auroc(labels, inference.scores),
        "pixel_auroc": metrics.pixel_auroc(test.masks, inference.maps, ranked),
        "aupro": metrics.aupro(test.masks, inference.maps, ranked=ranked),
        "pixel_ap": metrics.pixel_ap(test.masks, inference.maps, ranked),
        "image_f1": metrics.image_f1(labels, inference.scores, threshold),
        "mse_good": None, "psnr_good": None, "mse_all": None, "psnr_all": None, "ssim_good": None,
    }
    recon = inference.reconstructions
    if recon is not None:
        mse = metrics.mse_per_image(test.images, recon)
        psnr = metrics.psnr_per_image(test.images, recon)
        figures.update(
            mse_good=metrics.mean_or_none(mse[good]), psnr_good=metrics.mean_or_none(psnr[good]),
            mse_all=metrics.mean_or_none(mse), psnr_all=metrics.mean_or_none(psnr),
            ssim_good=metrics.mean_or_none(metrics.ssim_per_image(test.images[good], recon[good])),
        )
    figures["per_defect"] = metrics.per_defect(test.defect_types, inference.scores, test.masks, inference.maps,
                                               ranked)
    return figures


def evaluate_run(run_dir: Path, data_root: Path | None = None, category: str | None = None,
                 progress: bool = True) -> Evaluation:
    """Scores the test split of a run's category (or another root/category) with its model.

    The threshold is the one chosen at training time from validation normals.
    """
    paths, config = open_run(run_dir)
    spec = models.get_spec(config.model)
    model = models.load_model(paths.model)
    calibration = read_calibration(paths)
    threshold = float(calibration["threshold"])
    chosen = data.read_category(Path(data_root or config.data), category or config.category)
    test = data.load_test_set(chosen, config.image_size, progress=progress)
    inference = scoring.infer(model, spec.output, test.images, config.blur_sigma, config.batch_size)
    history = read_history(paths.history)
    figures = summarize(test, inference, threshold)
    figures.update(
        model=config.model, category=chosen.name, image_size=config.image_size,
        epochs=history[-1]["epoch"] if history else 0, train_seconds=train_seconds(history),
        threshold=threshold, threshold_rule=calibration["rule"], parameters=int(model.count_params()),
        n_test_good=int((test.labels == 0).sum()), n_test_defective=int(test.labels.sum()),
    )
    return Evaluation(metrics=_plain(figures), test=test, inference=inference, history=history)


def _plain(value):
    """Plain JSON numbers: numpy scalars to Python, NaN / inf to None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
