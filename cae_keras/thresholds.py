"""The decision threshold, chosen from validation normals only (never from test labels)."""

from __future__ import annotations

import numpy as np

from cae_keras.config import ScoringConfig
from cae_keras.errors import ConfigError


def quantile_threshold(validation_scores: np.ndarray, quantile: float = ScoringConfig().threshold_quantile) -> float:
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


def expected_false_alarm_rate(n_validation: int, quantile: float) -> float:
    """The share of new normal images expected above the `quantile` of `n_validation` normals' scores.

    Distribution-free (order statistics of exchangeable scores): a threshold at the k-th smallest
    of n scores is exceeded by a new normal with probability (n + 1 - k) / (n + 1). `np.quantile`
    puts the quantile at 0-based position q (n - 1), so the rate is (n - q (n - 1)) / (n + 1):
    34 % for 2 scores at q = 0.99, 5.7 % for 20, 2.0 % for 100, 1.1 % for 1000.

    Raises:
        ConfigError: no validation normals, or a quantile outside (0, 1].
    """
    if n_validation < 1:
        raise ConfigError("no validation normals to choose a threshold from")
    if not 0.0 < quantile <= 1.0:
        raise ConfigError(f"threshold quantile must be in (0, 1], got {quantile}")
    return float((n_validation - quantile * (n_validation - 1)) / (n_validation + 1))


def mean_std_threshold(validation_scores: np.ndarray, k: float = 3.0) -> float:
    """mean + k * std of the validation normals' image scores (std with ddof=1 when possible)."""
    scores = np.asarray(validation_scores, dtype=np.float64)
    if scores.size == 0:
        raise ConfigError("no validation scores to choose a threshold from")
    std = scores.std(ddof=1) if scores.size > 1 else 0.0
    return float(scores.mean() + k * std)


def max_area_threshold(validation_maps: np.ndarray, min_defect_area: int, steps: int = 40) -> float:
    """The MVTec paper's rule: the lowest pixel threshold at which no validation normal has a
    flagged region (8-connected) as large as `min_defect_area` pixels.

    The minimum defect area is the user's requirement (the smallest defect worth finding), never
    measured on test masks. Found by bisection: the largest region shrinks as the threshold rises.

    Raises:
        ConfigError: no validation maps, or a minimum area below 1.
    """
    from cae_keras.postprocess import largest_region

    maps = np.asarray(validation_maps)
    if maps.size == 0:
        raise ConfigError("no validation maps to choose a threshold from")
    if min_defect_area < 1:
        raise ConfigError(f"min_defect_area must be at least 1 pixel, got {min_defect_area}")

    def acceptable(threshold: float) -> bool:
        return all(largest_region(m > threshold) < min_defect_area for m in maps)

    low, high = float(maps.min()), float(maps.max())
    if acceptable(low):
        return low
    for _ in range(steps):  # invariant: low is not acceptable, high is
        middle = (low + high) / 2
        if acceptable(middle):
            high = middle
        else:
            low = middle
    return high
