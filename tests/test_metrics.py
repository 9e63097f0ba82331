"""Each metric against a hand-computed or library value on small cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from cae_keras import metrics, scoring, thresholds
from cae_keras.errors import ConfigError


def test_image_auroc_by_hand():
    # pairs (defect, good): (0.8>0.1) (0.8>0.4) (0.35<0.4) (0.35>0.1) -> 3 of 4
    assert metrics.image_auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert metrics.image_auroc(np.array([1, 1]), np.array([0.1, 0.2])) is None


@pytest.mark.parametrize("decimals", [None, 1])  # 1 decimal: many tied scores
def test_pixel_auroc_and_ap_match_sklearn(decimals):
    rng = np.random.default_rng(0)
    masks = rng.random((3, 8, 8)) > 0.8
    maps = rng.random((3, 8, 8)) + masks * 0.3
    if decimals:
        maps = np.round(maps, decimals)
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert metrics.pixel_ap(masks, maps) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()))
    assert metrics.pixel_ap(np.zeros_like(masks), maps) is None


def test_aupro_known_answers():
    mask = np.array([[[1, 1, 0, 0]]], bool)
    anomaly = np.array([[[0.9, 0.5, 0.7, 0.1]]])
    # PRO is 0.5 for every FPR in (0, 0.5), 1.0 after: area to 0.3 = 0.15, to 1.0 = 0.75
    assert metrics.aupro(mask, anomaly) == pytest.approx(0.5)
    assert metrics.aupro(mask, anomaly, fpr_limit=1.0) == pytest.approx(0.75)
    # Two regions (sizes 1 and 3): PRO averages regions, not pixels. The small region is found only
    # after the one good pixel, so PRO = 0.5 (pixel overlap would say 0.75) for every FPR < 1.
    mask = np.array([[[1, 0, 1, 1, 1]]], bool)
    anomaly = np.array([[[0.05, 0.1, 0.9, 0.8, 0.7]]])
    assert metrics.aupro(mask, anomaly) == pytest.approx(0.5)
    perfect = np.array([[[1, 0, 1, 1, 1]]], float)
    assert metrics.aupro(mask, perfect) == pytest.approx(1.0)


def _pro_by_definition(masks, maps, limit=0.3):
    """PRO computed threshold by threshold, straight from the definition."""
    labelled = [ndimage.label(m, np.ones((3, 3)))[0] for m in masks]
    regions = [(i, labelled[i] == k) for i in range(len(masks)) for k in range(1, labelled[i].max() + 1)]
    good = ~masks
    points = [(0.0, 0.0)]
    for t in np.sort(np.unique(maps))[::-1]:
        flagged = maps >= t
        fpr = (flagged & good).sum() / good.sum()
        pro = np.mean([flagged[i][region].mean() for i, region in regions])
        points.append((fpr, pro))
    points.append((1.0, 1.0))
    x, y = map(np.array, zip(*points))
    keep = x <= limit
    xs, ys = np.append(x[keep], limit), np.append(y[keep], np.interp(limit, x, y))
    return np.trapezoid(ys, xs) / limit


def test_aupro_matches_the_definition_on_random_maps():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 12, 12), bool)
    masks[0, 2:5, 2:6] = True
    masks[0, 8:10, 8:11] = True
    masks[1, 5:9, 1:3] = True
    maps = np.round(rng.random(masks.shape) + 0.4 * masks, 2)  # rounding makes ties
    assert metrics.aupro(masks, maps) == pytest.approx(_pro_by_definition(masks, maps), abs=1e-9)


def test_image_f1_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.2, 0.6, 0.7, 0.4, 0.9])
    # threshold 0.5: flagged = [0,1,1,0,1] -> tp 2, fp 1, fn 1 -> F1 = 4 / 6
    assert metrics.image_f1(labels, scores, 0.5) == pytest.approx(4 / 6)
    assert metrics.image_f1(labels, scores, 1.0) == 0.0


def test_mse_and_psnr_by_hand():
    x = np.zeros((2, 4, 4, 3), np.float32)
    y = x.copy()
    y[0] += 0.1
    y[1] += 0.01
    assert metrics.mse_per_image(x, y) == pytest.approx([0.01, 0.0001])
    assert metrics.psnr_per_image(x, y) == pytest.approx([20.0, 40.0])


def test_ssim_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x = rng.random((2, 32, 32, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    expected = tf.image.ssim(tf.constant(x), tf.constant(y), max_val=1.0).numpy()
    assert metrics.ssim_per_image(x, y) == pytest.approx(expected, abs=1e-4)
    assert metrics.ssim_map(x[0], x[0]) == pytest.approx(np.ones((32, 32)), abs=1e-6)


def test_per_defect_separates_types():
    types = ["good", "good", "a", "a", "b"]
    scores = np.array([0.1, 0.2, 0.9, 0.8, 0.15])
    masks = np.zeros((5, 2, 2), bool)
    masks[2:, 0, 0] = True
    maps = np.zeros((5, 2, 2))
    maps[2:4, 0, 0] = 1.0
    result = metrics.per_defect(types, scores, masks, maps)
    assert result["a"]["image_auroc"] == 1.0 and result["b"]["image_auroc"] == 0.5
    assert result["a"]["pixel_auroc"] == 1.0 and result["b"]["pixel_auroc"] == 0.5


def test_error_maps_blur_and_scores():
    x = np.zeros((1, 16, 16, 3), np.float32)
    y = x.copy()
    y[0, 8, 8] = [0.3, 0.6, 0.9]
    error = scoring.error_maps(x, y)
    assert error.shape == (1, 16, 16) and error[0, 8, 8] == pytest.approx(0.6)
    blurred = scoring.blur_maps(error, 1.0)
    assert blurred.sum() == pytest.approx(error.sum(), rel=1e-3) and blurred.max() < error.max()
    assert scoring.image_scores(blurred)[0] == blurred.max()


def test_quantile_threshold():
    assert thresholds.quantile_threshold(np.arange(11.0), 0.9) == pytest.approx(9.0)
    assert thresholds.quantile_threshold(np.arange(11.0), 1.0) == 10.0
    with pytest.raises(ConfigError):
        thresholds.quantile_threshold(np.array([]), 0.9)


def test_per_defect_pixel_auroc_matches_sklearn_on_subsets():
    rng = np.random.default_rng(3)
    types = ["good"] * 3 + ["a"] * 2 + ["b"] * 2
    masks = np.zeros((7, 6, 6), bool)
    masks[3:, 1:4, 2:5] = True
    maps = np.round(rng.random((7, 6, 6)) + masks * 0.4, 2)
    result = metrics.per_defect(types, maps.reshape(7, -1).max(1), masks, maps)
    for defect, chosen in (("a", [0, 1, 2, 3, 4]), ("b", [0, 1, 2, 5, 6])):
        expected = roc_auc_score(masks[chosen].ravel(), maps[chosen].ravel())
        assert result[defect]["pixel_auroc"] == pytest.approx(expected)
