"""From images to anomaly maps and image scores, the same way for every caller.

- reconstruction error map: |x - x̂| averaged over the 3 channels, `[N, H, W]`;
- anomaly map: that error map (or a model's own map) after a Gaussian blur (the config's sigma);
- image score: the maximum of the anomaly map.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


def error_maps(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """|x - x̂| averaged over channels. `[N, H, W, 3]` x2 -> `[N, H, W] float32 >= 0`."""
    return np.abs(images - reconstructions).mean(axis=-1).astype(np.float32)


def blur_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each `[H, W]` map (sigma in px; 0 leaves them as they are)."""
    if sigma <= 0:
        return maps.astype(np.float32)
    return np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma) for m in maps])


def image_scores(maps: np.ndarray) -> np.ndarray:
    """Image score = maximum of each anomaly map. `[N, H, W]` -> `[N]`."""
    return maps.reshape(len(maps), -1).max(axis=1)


@dataclasses.dataclass
class Inference:
    """What a model says about a batch of images."""

    maps: np.ndarray  # [N, H, W] float32: the blurred anomaly maps
    scores: np.ndarray  # [N] float32: image scores
    reconstructions: np.ndarray | None  # [N, H, W, 3] in [0, 1], None for models that do not reconstruct


def predict_batches(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Model outputs for `[N, ...]` inputs, in batches of one fixed shape.

    The last batch is padded to full size, so the model is traced once whatever N is.
    """
    batch_size = max(1, min(batch_size, len(images)))
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        outputs.append(np.asarray(model.predict_on_batch(batch), dtype=np.float32)[:n])
    return np.concatenate(outputs)


def infer(model, output: str, images: np.ndarray, blur_sigma: float, batch_size: int = 32) -> Inference:
    """Runs a model over `[N, S, S, 3] float32 in [0, 1]` images and scores them.

    Args:
        output: the model's `ModelSpec.output`: "reconstruction" or "anomaly_map".
    """
    predictions = predict_batches(model, images, batch_size)
    if output == "reconstruction":
        reconstructions, raw = predictions, error_maps(images, predictions)
    else:
        reconstructions, raw = None, predictions
    maps = blur_maps(raw, blur_sigma)
    return Inference(maps=maps, scores=image_scores(maps), reconstructions=reconstructions)
