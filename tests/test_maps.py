"""Error-map components, their combination, and image scores."""

from __future__ import annotations

import numpy as np
import pytest

from cae_keras import maps, scoring
from cae_keras.config import TrainConfig
from cae_keras.errors import ConfigError


def _pair(size: int = 48, seed: int = 0):
    """A textured image and a copy with a 6x6 square changed at (20, 20)."""
    rng = np.random.default_rng(seed)
    x = np.clip(0.5 + 0.2 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
    y = x.copy()
    y[20:26, 20:26] = 1.0 - y[20:26, 20:26]
    return x[None], y[None]


@pytest.mark.parametrize("component", maps.COMPONENTS)
def test_each_component_is_zero_for_equal_images_and_peaks_at_the_change(component):
    x, y = _pair()
    same = maps.component_maps(x, x, component)
    assert same.shape == (1, 48, 48) and same.dtype == np.float32
    assert np.allclose(same, 0.0, atol=1e-5)
    changed = maps.component_maps(x, y, component)[0]
    assert changed.min() >= -1e-6
    peak = np.unravel_index(np.argmax(changed), changed.shape)
    assert 16 <= peak[0] <= 30 and 16 <= peak[1] <= 30, peak
    assert changed[20:26, 20:26].mean() > 5 * changed[:10, :10].mean() + 1e-6


def test_l2_is_the_square_of_a_uniform_l1():
    x = np.full((1, 8, 8, 3), 0.2, np.float32)
    y = x + 0.3
    assert np.allclose(maps.component_maps(x, y, "l2"), maps.component_maps(x, y, "l1") ** 2)


def test_gradient_similarity_sees_a_faint_edge_that_l1_barely_sees():
    x = np.full((1, 64, 64, 3), 0.5, np.float32)
    y = x.copy()
    y[:, :, 32:] += 0.05  # a faint step: 0.05 in L1, a new edge for gradients
    msgms = maps.component_maps(x, y, "msgms")[0]
    assert msgms[:, 30:34].mean() > 5 * 0.05 and msgms[:, :20].max() < 0.01


def test_combination_averages_components_divided_by_their_validation_means():
    x, y = _pair()
    scales = maps.component_scales(x, y, "l1+ssim")
    assert set(scales) == {"l1", "ssim"}
    combined = maps.error_maps(x, y, "l1+ssim", scales)
    expected = (maps.component_maps(x, y, "l1") / scales["l1"] + maps.component_maps(x, y, "ssim") / scales["ssim"]) / 2
    assert np.allclose(combined, expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="validation scale"):
        maps.error_maps(x, y, "l1+ssim")


@pytest.mark.parametrize("bad", ["l3", "l1+l1", "ssim+", ""])
def test_unknown_or_repeated_components_are_refused(bad):
    with pytest.raises(ConfigError, match="anomaly map"):
        maps.parse(bad)
    with pytest.raises(ConfigError):
        TrainConfig(data="d", category="c", anomaly_map=bad)


def test_top_k_mean_and_max_scores():
    m = np.zeros((2, 10, 10), np.float32)
    m[0, 0, :5] = [5, 4, 3, 2, 1]
    m[1, 5, 5] = 7
    assert scoring.image_scores(m).tolist() == [5, 7]
    assert np.allclose(scoring.image_scores(m, "top_k_mean", 0.03), [4.0, 7 / 3])
    assert np.allclose(scoring.image_scores(m, "top_k_mean", 1e-6), [5, 7])  # at least one pixel
    with pytest.raises(ConfigError, match="image_score"):
        TrainConfig(data="d", category="c", image_score="median")


def test_the_default_method_is_the_seeds_l1_and_max():
    x, y = _pair()
    default = scoring.score_outputs(x, y, "reconstruction", scoring.ScoringMethod(blur_sigma=1.0))
    assert np.allclose(default.maps, scoring.blur_maps(np.abs(x - y).mean(-1), 1.0))
    assert default.scores[0] == default.maps.max()
