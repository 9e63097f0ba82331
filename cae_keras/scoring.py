"""From images to anomaly maps and image scores, the same way for every caller.

- reconstruction error map: |x - x̂| averaged over the 3 channels by default, or another map of
  `cae_keras.maps` (SSIM, gradient similarity, combinations), `[N, H, W]`;
- anomaly map: that error map (or a model's own map) after a Gaussian blur (the config's sigma);
- image score: the maximum of the anomaly map, or the mean of its top-k pixels.

Maps, blur and scores are computed by `cae_keras.detector`, the module exported models are, so
that `evaluate`, `predict --run` and an exported model cannot drift apart. `image_scores` here is
the readable NumPy version the notebooks and patch_nn's selection use (a test holds the two
together).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cae_keras import maps as error_map_components
from cae_keras.config import IMAGE_SCORES, ScoringConfig
from cae_keras.errors import ConfigError

__all__ = ["IMAGE_SCORES", "ScoringMethod", "Inference", "error_maps", "blur_maps", "image_scores", "predict_batches",
           "score_outputs", "infer"]



def error_maps(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """|x - x̂| averaged over channels. `[N, H, W, 3]` x2 -> `[N, H, W] float32 >= 0`."""
    return error_map_components.error_maps(images, reconstructions, "l1")


def blur_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each `[H, W]` map (sigma in px; 0 leaves them as they are): OpenCV's
    `GaussianBlur`, computed as exported graphs compute it (`graph_scoring.blur`)."""
    from cae_keras import graph_scoring

    return graph_scoring.blur(maps, sigma)


def image_scores(maps: np.ndarray, method: str = ScoringConfig().image_score,
                 top_k_fraction: float = ScoringConfig().top_k_fraction) -> np.ndarray:
    """Image score of each anomaly map. `[N, H, W]` -> `[N]`.

    Args:
        method: "max", or "top_k_mean": the mean of the `top_k_fraction` highest pixels (at least
            one), which a single hot pixel moves less than the maximum.
    """
    flat = maps.reshape(len(maps), -1)
    if method == "max":
        return flat.max(axis=1)
    k = max(1, round(top_k_fraction * flat.shape[1]))
    return np.partition(flat, -k, axis=1)[:, -k:].mean(axis=1)


@dataclasses.dataclass
class ScoringMethod(ScoringConfig):
    """How model outputs become maps and scores: a run's `ScoringConfig` (map, blur, image score,
    threshold quantile) plus what its calibration measured on the validation normals.

    Raises:
        ConfigError: no blur sigma (the config fills it in from the image size; here it must be given).
    """

    map_scales: dict | None = None  # each component's validation mean, for combined maps

    def __post_init__(self) -> None:
        if self.blur_sigma is None:
            raise ConfigError("a scoring method needs its blur sigma (0 for none)")

    @classmethod
    def of(cls, config, calibration: dict | None = None) -> "ScoringMethod":
        """The method a run was configured with (`TrainConfig`, `calibration.json` contents)."""
        return cls(**dataclasses.asdict(config.scoring), map_scales=(calibration or {}).get("map_scales"))


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


def score_outputs(images: np.ndarray, predictions: np.ndarray, output: str, method: ScoringMethod) -> Inference:
    """Maps and scores from a model's outputs (reconstructions or maps) for those images, by the
    detector's own steps (`cae_keras.detector`)."""
    from cae_keras import detector

    return detector.build(None, output == "reconstruction", images.shape[1], method).infer_outputs(images, predictions)


def infer(model, output: str, images: np.ndarray, method: ScoringMethod | float, batch_size: int = 32) -> Inference:
    """Runs a model over `[N, S, S, 3] float32 in [0, 1]` images and scores them, by the detector
    every command runs (`cae_keras.detector`).

    Args:
        output: the model's `ModelSpec.output`: "reconstruction" or "anomaly_map".
        method: how to score; a number is a blur sigma with the default L1 map and maximum.
    """
    from cae_keras import detector

    if not isinstance(method, ScoringMethod):
        method = ScoringMethod(blur_sigma=float(method))
    return detector.build(model, output == "reconstruction", images.shape[1], method).infer(images, batch_size)
