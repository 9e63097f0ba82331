"""Reconstruction error maps: where, and how much, x̂ differs from x.

Each component maps a pair of images `[H, W, 3]` to `[H, W]`, 0 where they agree:
- `l1`: |x - x̂| averaged over channels (the seed's map);
- `l2`: (x - x̂)² averaged over channels: large errors count more;
- `ssim`: (1 - SSIM) / 2 with an 11 px Gaussian window: differences of local structure and
  contrast, not of brightness (Bergmann et al. 2019);
- `msgms`: 1 - gradient magnitude similarity at 4 scales, averaged (RIAD, Zavrtanik et al. 2021):
  edges that appear, vanish or move, however small the pixel difference.

A combination such as `l1+ssim` divides each component by its mean over the validation normals
(stored in `calibration.json`) before averaging them, so that no component wins by its units.
"""

from __future__ import annotations

import cv2
import numpy as np

from cae_keras.errors import ConfigError

COMPONENTS = ("l1", "l2", "ssim", "msgms")
GMS_CONSTANT = 0.0026  # GMSD's c for images in [0, 1] and Prewitt filters divided by 3
GMS_SCALES = 4


def parse(anomaly_map: str) -> tuple[str, ...]:
    """`"l1+ssim"` -> `("l1", "ssim")`. Raises ConfigError for an unknown or repeated component."""
    parts = tuple(part.strip() for part in anomaly_map.split("+"))
    for part in parts:
        if part not in COMPONENTS:
            raise ConfigError(f"unknown anomaly map component {part!r} in {anomaly_map!r}; "
                              f"use one of {', '.join(COMPONENTS)}, or several joined by '+'")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"anomaly map {anomaly_map!r} repeats a component")
    return parts


def _ssim_error(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from cae_keras.metrics import ssim_map

    return (1.0 - ssim_map(x, y)) / 2.0


def _gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    kernel = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32) / 3.0  # Prewitt
    gx = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(gray, -1, kernel.T, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx**2 + gy**2)


def _msgms_error(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    height, width = x.shape[:2]
    a, b = x.mean(axis=-1).astype(np.float32), y.mean(axis=-1).astype(np.float32)
    total = np.zeros((height, width), np.float32)
    for scale in range(GMS_SCALES):
        if scale:
            a, b = cv2.pyrDown(a), cv2.pyrDown(b)  # halves the size after a small blur
        ga, gb = _gradient_magnitude(a), _gradient_magnitude(b)
        gms = (2 * ga * gb + GMS_CONSTANT) / (ga**2 + gb**2 + GMS_CONSTANT)
        total += cv2.resize(1.0 - gms, (width, height), interpolation=cv2.INTER_LINEAR)
    return total / GMS_SCALES


_FUNCTIONS = {
    "l1": lambda x, y: np.abs(x - y).mean(axis=-1),
    "l2": lambda x, y: ((x - y) ** 2).mean(axis=-1),
    "ssim": _ssim_error,
    "msgms": _msgms_error,
}


def component_maps(images: np.ndarray, reconstructions: np.ndarray, component: str) -> np.ndarray:
    """One component for a batch: `[N, H, W, 3]` x2 -> `[N, H, W] float32 >= 0`."""
    if component in ("l1", "l2"):  # vectorised over the batch
        return _FUNCTIONS[component](images, reconstructions).astype(np.float32)
    return np.stack([_FUNCTIONS[component](x, y) for x, y in zip(images, reconstructions)]).astype(np.float32)


def component_scales(images: np.ndarray, reconstructions: np.ndarray, anomaly_map: str) -> dict[str, float]:
    """Each component's mean over these (validation-normal) images: what a combination divides by."""
    return {c: float(component_maps(images, reconstructions, c).mean()) for c in parse(anomaly_map)}


def check_scales(anomaly_map: str, scales: dict[str, float] | None) -> tuple[str, ...]:
    """The map's components; raises ConfigError if a combination lacks a component's validation scale."""
    parts = parse(anomaly_map)
    missing = [c for c in parts if len(parts) > 1 and not (scales or {}).get(c)]
    if missing:
        raise ConfigError(f"anomaly map {anomaly_map!r} needs the validation scale of {missing}; "
                          "it is computed at calibration (train or evaluate with this map)")
    return parts


def error_maps(images: np.ndarray, reconstructions: np.ndarray, anomaly_map: str = "l1",
               scales: dict[str, float] | None = None) -> np.ndarray:
    """The anomaly map of each pair before blurring. `[N, H, W, 3]` x2 -> `[N, H, W] float32`.

    Args:
        anomaly_map: a component, or several joined by '+'.
        scales: for a combination, each component's mean over validation normals.
    """
    parts = check_scales(anomaly_map, scales)
    if len(parts) == 1:
        return component_maps(images, reconstructions, parts[0])
    total = sum(component_maps(images, reconstructions, c) / scales[c] for c in parts)
    return (total / len(parts)).astype(np.float32)
