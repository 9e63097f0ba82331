"""The decision threshold, chosen from validation normals only (never from test labels)."""

from __future__ import annotations

import numpy as np

from cae_keras.errors import ConfigError


def quantile_threshold(validation_scores: np.ndarray, quantile: float = 0.99) -> float:
    """The `quantile` of the validation normals' image scores (linear interpolation).

    With quantile q, about (1 - q) of normal images are expected above the threshold.

    Raises:
        ConfigError: no validation scores, or a quantile outside (0, 1].
    """
    scores = np.asarray(validation_scores, dtype=np.float64)
    if scores.size == 0:
        raise ConfigError("no validation scores to choose a threshold from")
    if not 0.0 < quantile <= 1.0:
        raise ConfigError(f"threshold quantile must be in (0, 1], got {quantile}")
    return float(np.quantile(scores, quantile))
