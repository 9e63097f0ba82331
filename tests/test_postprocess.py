"""Thresholds from validation normals and the morphology of defect masks, on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from cae_keras import postprocess, thresholds


def test_mean_std_threshold_by_hand():
    assert thresholds.mean_std_threshold(np.array([1.0, 2.0, 3.0]), k=2.0) == pytest.approx(2.0 + 2.0 * 1.0)


def test_max_area_threshold_keeps_validation_regions_below_the_area():
    maps = np.zeros((2, 20, 20))
    maps[0, 2:5, 2:5] = 0.8  # a 9-pixel bright patch on one validation normal
    maps[1, 10, 10] = 0.9  # a single hot pixel on the other
    threshold = thresholds.max_area_threshold(maps, min_defect_area=5)
    # the 9-pixel patch must not be flagged (t >= 0.8); the 1-pixel hot spot may be
    assert threshold == pytest.approx(0.8, abs=1e-6)
    assert all(postprocess.largest_region(m > threshold) < 5 for m in maps)
    strict = thresholds.max_area_threshold(maps, min_defect_area=1)
    assert strict >= 0.9 - 1e-6, "area 1: nothing may be flagged"


def test_otsu_splits_a_bimodal_map():
    anomaly_map = np.full((10, 10), 0.1)
    anomaly_map[:3] = 0.9
    level = postprocess.otsu_threshold(anomaly_map)
    assert 0.1 <= level < 0.9
    assert ((anomaly_map > level) == (anomaly_map == 0.9)).all()


def test_morphology_removes_specks_joins_fragments_and_fills_holes():
    mask = np.zeros((30, 30), bool)
    mask[2, 2] = True  # a speck
    mask[10:20, 10:20] = True
    mask[14:16, 14:16] = False  # a hole
    assert not postprocess.clean_mask(mask, min_area=4)[2, 2]
    assert postprocess.clean_mask(mask, fill_holes=True)[15, 15]
    assert not postprocess.clean_mask(mask, open_px=1)[2, 2]
    split = np.zeros((20, 20), bool)
    split[5:15, 5:9] = True
    split[5:15, 10:14] = True  # one column apart
    assert postprocess.largest_region(postprocess.clean_mask(split, close_px=1)) > 80


def test_decisions_from_masks():
    maps = np.zeros((3, 10, 10))
    maps[1, 4:7, 4:7] = 1.0
    maps[2, 0, 0] = 1.0
    masks = postprocess.segment(maps, 0.5, min_area=4)
    assert list(postprocess.decide(masks)) == [False, True, False]
