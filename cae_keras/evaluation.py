"""Evaluating a trained run on the test split, with the protocol of `evaluation.md`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cae_keras import data, detector, graph_scoring, metrics, scoring, thresholds
from cae_keras.calibration import calibrate, check_scoring
from cae_keras.errors import ConfigError
from cae_keras.runs import Run, as_run, read_history, train_seconds


@dataclasses.dataclass
class Evaluation:
    """Everything an evaluation computed: the figures of the contract and what they came from."""

    metrics: dict
    test: data.TestSet
    inference: scoring.Inference
    history: list[dict]


PIXEL_KEYS = ("pixel_auroc", "aupro", "pixel_ap")
RECONSTRUCTION_KEYS = ("mse_good", "psnr_good", "mse_all", "psnr_all", "ssim_good")


def summarize(test: data.TestSet, inference: scoring.Inference, threshold: float) -> dict:
    """The detection and reconstruction figures of the contract (no run metadata).

    Besides the AUROCs and F1: `false_alarm_rate` (share of test/good flagged) and `miss_rate`
    (share of defective images not flagged), overall and per defect type. A figure that cannot be
    computed is None, and `null_reasons` says why for each (e.g. image F1 without defective images).
    Pixel figures are None when any defective image has no mask (a layout without masks).
    """
    labels = test.labels
    good = labels == 0
    with_masks = not test.without_masks
    ranked = metrics.RankedPixels.build(test.masks, inference.maps)  # one sort for every pixel metric
    figures = {
        "image_auroc": metrics.image_auroc(labels, inference.scores),
        "pixel_auroc": metrics.pixel_auroc(test.masks, inference.maps, ranked) if with_masks else None,
        "aupro": metrics.aupro(test.masks, inference.maps, ranked=ranked) if with_masks else None,
        "pixel_ap": metrics.pixel_ap(test.masks, inference.maps, ranked) if with_masks else None,
        "image_f1": metrics.image_f1(labels, inference.scores, threshold),
        "false_alarm_rate": metrics.flagged_share(inference.scores[good], threshold),
        "miss_rate": None if good.all() else 1.0 - metrics.flagged_share(inference.scores[~good], threshold),
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
                                               ranked, threshold)
    if not with_masks:
        for values in figures["per_defect"].values():
            values["pixel_auroc"] = None
    figures["null_reasons"] = null_reasons(figures, test, recon is not None)
    return figures


def null_reasons(figures: dict, test: data.TestSet, reconstructs: bool) -> dict[str, str]:
    """Why each top-level figure that is None could not be computed."""
    n_good, n_defective = int((test.labels == 0).sum()), int(test.labels.sum())
    causes = []
    if not n_defective:
        causes.append((("image_auroc", "image_f1", "miss_rate") + PIXEL_KEYS, "no defective test images"))
    if not n_good:
        causes.append((("image_auroc", "false_alarm_rate", "mse_good", "psnr_good", "ssim_good"),
                       "no good test images"))
    if test.without_masks:
        causes.append((PIXEL_KEYS, f"{test.without_masks} defective test images have no mask in this layout"))
    elif n_defective and not test.masks.any():
        causes.append((PIXEL_KEYS, "no defect pixel in any mask at the evaluation size"))
    if not reconstructs:
        causes.append((RECONSTRUCTION_KEYS, "the model does not reconstruct its input"))
    reasons = {}
    for keys, cause in causes:
        for key in keys:
            if figures.get(key) is None and key not in reasons:
                reasons[key] = cause
    for key, value in figures.items():
        if value is None and key not in reasons:
            reasons[key] = "undefined on this test set"
    return reasons


def evaluate_run(run: Run | Path, data_root: Path | None = None, category: str | None = None,
                 progress: bool = True, scoring_overrides: dict | None = None,
                 allow_empty_masks: bool = False) -> Evaluation:
    """Scores the test split of a run's category (or another root/category) with its model.

    The threshold is the one chosen at training time from validation normals. With
    `scoring_overrides` (e.g. `{"anomaly_map": "ssim", "image_score": "top_k_mean"}`) the run is
    scored another way, and threshold and map scales are chosen again from its validation normals.
    With `allow_empty_masks`, defective test images whose mask holds no defect pixel are kept:
    defective for the image figures, their pixels normal (as the mask says) for the pixel figures;
    they are listed in `metrics.json`, `empty_masks`. Otherwise they are an error.
    """
    run = as_run(run)
    config, spec, model, calibration, scorer = run.config, run.spec, run.model, run.calibration, run.detector
    if scoring_overrides:
        config = config.replace(**scoring_overrides)  # validated again
        check_scoring(spec, config)
        calibration = calibrate(model, spec, config, run.validation_images, run.validation_outputs)
        scorer = detector.build(model, spec.reconstructs, config.recipe.image_size,
                                scoring.ScoringMethod.of(config, calibration), calibration["threshold"])
    threshold = float(calibration["threshold"])
    if data_root is None and category is None:
        chosen = data.category_of(config, with_test=True)
    else:  # another root's layout is detected; the run's own layout applies to its own root
        chosen = data.read_category(Path(data_root or config.dataset.data), category or config.dataset.category,
                                    layout=config.dataset.layout if data_root is None else None)
    test = data.load_test_set(chosen, config.recipe.image_size, progress=progress, allow_empty_masks=allow_empty_masks)
    # The images are at the model's size already (the reader's resize, which the detector's own
    # resize equals within 1e-5): the detector runs from its network on.
    inference = scorer.infer(test.images, config.recipe.batch_size)
    history = read_history(run.paths.history)
    figures = summarize(test, inference, threshold)
    figures.update(
        model=config.recipe.model, category=chosen.name, image_size=config.recipe.image_size,
        epochs=history[-1]["epoch"] if history else 0, train_seconds=train_seconds(history),
        threshold=threshold, threshold_rule=calibration["rule"], parameters=int(model.count_params()),
        anomaly_map=config.scoring.anomaly_map if spec.reconstructs else None,
        image_score=config.scoring.image_score,
        n_test_good=int((test.labels == 0).sum()), n_test_defective=int(test.labels.sum()),
        empty_masks=[str(path) for path in test.empty_masks], layout=chosen.layout,
        masks_lost_at_size=[str(path) for path in test.lost_at_size],
        expected_false_alarm_rate=calibration.get("expected_false_alarm_rate"),
    )
    return Evaluation(metrics=_plain(figures), test=test, inference=inference, history=history)


SCORING_KEYS = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "image_f1")


def check_compare_scoring(run: Run) -> None:
    """Raises ConfigError for a model with its own map: map choices apply to reconstruction models."""
    if not run.spec.reconstructs:
        raise ConfigError(f"{run.config.recipe.model} produces its own anomaly map; --compare-scoring compares the "
                          "maps of reconstruction models")


def compare_scoring(run: Run | Path, anomaly_maps=("l1", "l2", "ssim", "msgms", "l1+ssim", "msgms+ssim"),
                    image_scores=scoring.IMAGE_SCORES, progress: bool = True,
                    evaluation: Evaluation | None = None) -> list[dict]:
    """Scores one reconstruction run with every map and image score: one row each.

    The model runs once over the validation and test images (not again over the test images when
    `evaluation`, this run's, already holds their reconstructions); each method then gets its own
    map scales and threshold from the validation normals, and is measured on the test split.
    """
    run = as_run(run)
    config = run.config
    check_compare_scoring(run)
    model = run.model
    val_images, val_recon = run.validation_images, run.validation_outputs
    if evaluation is not None and evaluation.inference.reconstructions is not None:
        test, test_recon = evaluation.test, evaluation.inference.reconstructions
    else:
        test = data.load_test_set(data.category_of(config, with_test=True), config.recipe.image_size, progress=progress)
        test_recon = scoring.predict_batches(model, test.images, config.recipe.batch_size)
    rows = []
    for anomaly_map in anomaly_maps:
        # Maps and pixel metrics depend on the map only: computed once, then each image score.
        method = dataclasses.replace(scoring.ScoringMethod.of(config), anomaly_map=anomaly_map,
                                     map_scales=graph_scoring.component_scales(val_images, val_recon, anomaly_map))
        by_map = detector.build(None, True, config.recipe.image_size, method)
        val_maps = by_map.infer_outputs(val_images, val_recon, config.recipe.batch_size).maps
        test_result = by_map.infer_outputs(test.images, test_recon, config.recipe.batch_size)
        pixel_figures = None
        for image_score in image_scores:
            by_score = detector.build(None, True, config.recipe.image_size, dataclasses.replace(
                method, image_score=image_score))
            val_scores, test_scores = by_score.score_maps(val_maps), by_score.score_maps(test_result.maps)
            threshold = thresholds.quantile_threshold(val_scores, config.scoring.threshold_quantile)
            if pixel_figures is None:
                pixel_figures = summarize(test, dataclasses.replace(test_result, scores=test_scores), threshold)
            figures = {**pixel_figures, "image_auroc": metrics.image_auroc(test.labels, test_scores),
                       "image_f1": metrics.image_f1(test.labels, test_scores, threshold)}
            rows.append(_plain({"method": f"{anomaly_map}, {image_score}", "anomaly_map": anomaly_map,
                                "image_score": image_score, **{k: figures[k] for k in SCORING_KEYS}}))
    return rows


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
