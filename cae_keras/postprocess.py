"""From anomaly maps to defect masks and decisions: pixel thresholds and morphology.

Thresholds come from validation normals only (`cae_keras.thresholds`) or from each map alone
(Otsu, adaptive); morphology then cleans the binary mask: opening removes specks, closing joins
fragments, small regions are dropped, holes are filled.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def largest_region(mask: np.ndarray) -> int:
    """Area in pixels of the largest 8-connected region of a `[H, W] bool` mask (0 if empty)."""
    labelled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return int(np.bincount(labelled.ravel())[1:].max()) if n else 0


def otsu_threshold(anomaly_map: np.ndarray) -> float:
    """Otsu's threshold of one map (computed on the map scaled to 8 bit over its own range)."""
    low, high = float(anomaly_map.min()), float(anomaly_map.max())
    if high <= low:
        return high
    scaled = np.round((anomaly_map - low) / (high - low) * 255).astype(np.uint8)
    level, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return low + level / 255.0 * (high - low)


def adaptive_mask(anomaly_map: np.ndarray, block: int = 31, offset: float = 0.1) -> np.ndarray:
    """Pixels above their neighbourhood's mean by more than `offset` of the map's range (`[H, W] bool`)."""
    low, high = float(anomaly_map.min()), float(anomaly_map.max())
    if high <= low:
        return np.zeros(anomaly_map.shape, bool)
    scaled = (anomaly_map - low) / (high - low)
    local_mean = cv2.blur(scaled.astype(np.float32), (block, block))
    return scaled > local_mean + offset


def clean_mask(mask: np.ndarray, open_px: int = 0, close_px: int = 0, min_area: int = 0,
               fill_holes: bool = False) -> np.ndarray:
    """Morphological post-processing of one `[H, W] bool` mask, in this order:
    opening (a disc of radius `open_px`), closing (radius `close_px`), dropping regions smaller
    than `min_area` pixels, filling holes."""
    out = mask.astype(np.uint8)
    if open_px > 0:
        out = cv2.morphologyEx(out, cv2.MORPH_OPEN, _disc(open_px))
    if close_px > 0:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disc(close_px))
    out = out.astype(bool)
    if min_area > 1:
        labelled, n = ndimage.label(out, structure=EIGHT_CONNECTED)
        if n:
            sizes = np.bincount(labelled.ravel())
            keep = sizes >= min_area
            keep[0] = False
            out = keep[labelled]
    if fill_holes:
        out = ndimage.binary_fill_holes(out)
    return out


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def segment(maps: np.ndarray, pixel_threshold: float, **morphology) -> np.ndarray:
    """Binary defect masks `[N, H, W] bool`: map > threshold, then `clean_mask(**morphology)`."""
    return np.stack([clean_mask(m > pixel_threshold, **morphology) for m in maps])


def decide(masks: np.ndarray) -> np.ndarray:
    """An image is defective when its cleaned mask keeps any pixel. `[N, H, W]` -> `[N] bool`."""
    return masks.reshape(len(masks), -1).any(axis=1)
