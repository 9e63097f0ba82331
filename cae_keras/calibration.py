"""Choosing a run's threshold (and the scales of combined maps) from its validation normals only.

Test labels never enter here: the threshold is the configured quantile of the image scores of
normal images the model did not train on.
"""

from __future__ import annotations

import numpy as np

from cae_keras import detector, graph_scoring, scoring, thresholds
from cae_keras.errors import ConfigError


def calibrate(model, spec, config, val_images: np.ndarray, predictions: np.ndarray | None = None) -> dict:
    """Scores the validation normals with the config's scoring method.

    Args:
        predictions: the model's outputs for `val_images` if already computed (a `runs.Run` keeps them).

    Returns:
        the contents of `calibration.json` (without the image paths): threshold, rule, the
        validation scores, and for reconstruction models each map component's validation mean.
    """
    if predictions is None:
        predictions = scoring.predict_batches(model, val_images, config.recipe.batch_size)
    map_scales = None
    if spec.reconstructs:
        map_scales = graph_scoring.component_scales(val_images, predictions, config.scoring.anomaly_map)
    method = scoring.ScoringMethod.of(config, {"map_scales": map_scales})
    result = detector.build(None, spec.reconstructs, config.recipe.image_size, method).infer_outputs(
        val_images, predictions, config.recipe.batch_size)
    n = len(result.scores)
    return {
        "threshold": thresholds.quantile_threshold(result.scores, config.scoring.threshold_quantile),
        "rule": f"quantile {config.scoring.threshold_quantile} of {n} validation-normal image scores",
        "expected_false_alarm_rate": thresholds.expected_false_alarm_rate(n, config.scoring.threshold_quantile),
        "anomaly_map": config.scoring.anomaly_map if spec.reconstructs else "the model's own map",
        "image_score": config.scoring.image_score,
        "map_scales": map_scales,
        "validation_scores": [float(s) for s in result.scores],
    }


class FewValidationNormals(UserWarning):
    """The validation normals are too few for the threshold's quantile."""


def warn_if_few(n_validation: int, quantile: float, from_folder: bool = False) -> float:
    """Warns when `n_validation` normals cannot resolve the `quantile`; returns the expected
    false-alarm rate of the threshold (see `thresholds.expected_false_alarm_rate`).

    Args:
        from_folder: the validation normals are the layout's own folder (the advice differs).
    """
    import warnings

    expected = thresholds.expected_false_alarm_rate(n_validation, quantile)
    if expected > 1.5 * (1.0 - quantile):
        advice = ("add images to the validation folder" if from_folder else
                  "raise --val-fraction, or add a validation/good folder")
        warnings.warn(
            f"only {n_validation} validation normals: their {quantile} quantile is close to their maximum, so "
            f"expect about {expected:.1%} of new normal images to be flagged, not {1 - quantile:.1%}. For a "
            f"tighter rule, {advice}.", FewValidationNormals, stacklevel=2)
    return expected


def check_scoring(spec, config) -> None:
    """Refuses map choices for models that output their own anomaly map."""
    if not spec.reconstructs and config.scoring.anomaly_map != "l1":
        raise ConfigError(f"model '{spec.name}' outputs its own anomaly map; --anomaly-map "
                          f"{config.scoring.anomaly_map!r} applies to reconstruction models only")
