"""A run's detector: the one path from images to anomaly map, image score and decision.

Every command runs it: `evaluate` and calibration (on images the reader has already resized),
`predict --run`, `bench`, `compare`, the notebooks, and `export`, which saves it as it is. Inside,
in order:

1. resizing to the model's size S, as the reader resizes (`cae_keras.resizing`: OpenCV's area
   averaging when shrinking, its bicubic otherwise), after scaling uint8 to [0, 1];
2. the network (a registered model of `cae_keras.models`);
3. the error map between input and reconstruction (l1, l2, ssim, msgms or a combination,
   `cae_keras.graph_scoring`), or the model's own map;
4. the Gaussian blur, the image score (max or top-k mean) and the threshold;
5. the anomaly map resized back to the input's own size.

Entry points, `tf.function`s of one `tf.Module` (`export` saves it, `detect` as its signature):
- `detect(images)`: `[N, H, W, 3] uint8`, any size -> `anomaly_map [N, H, W] float32`,
  `score [N] float32`, `defective [N] bool`. What an export runs.
- `detect_resized(x)`: steps 2-4 for `[N, S, S, 3] float32 in [0, 1]` images already at the model's
  size -> `anomaly_map [N, S, S]`, `score`, `defective`, and the network's `output`.
- `from_outputs(x, y)`: steps 3-4 for network outputs already computed (a `runs.Run` caches them).

`infer` and `infer_outputs` run the last two over NumPy arrays in batches.
"""

from __future__ import annotations

import functools

import numpy as np

from cae_keras.scoring import Inference, ScoringMethod


def build(model, reconstructs: bool, image_size: int, method: ScoringMethod, threshold: float | None = None):
    """A detector for one network and scoring method.

    Args:
        model: the Keras network, `[N, S, S, 3] float32 in [0, 1]` -> x̂ `[N, S, S, 3]` (when
            `reconstructs`) or a map `[N, S, S]`; None for a detector that only scores outputs
            (`from_outputs`, `infer_outputs`).
        image_size: the model's size S.
        method: error map, blur, image score and map scales (`ScoringMethod.of(config, calibration)`).
        threshold: image scores above it are decided defective; None (before calibration) decides
            nothing is.

    Raises:
        ConfigError: an unknown map component, or a combination without its validation scales.
    """
    return _detector_class()(model, reconstructs, image_size, method, threshold)


@functools.cache
def _detector_class():
    """Defined lazily so that importing this module does not import TensorFlow."""
    import tensorflow as tf

    from cae_keras import resizing
    from cae_keras.graph_scoring import GraphScoring

    class Detector(tf.Module):
        def __init__(self, model, reconstructs, image_size, method, threshold):
            super().__init__(name="detector")
            self.model, self.reconstructs, self.image_size = model, bool(reconstructs), int(image_size)
            self.scoring = GraphScoring(self.image_size, method)
            self.threshold = tf.constant(np.inf if threshold is None else threshold, tf.float32)

        def _score(self, x, y):
            raw = self.scoring.error_map(x, y) if self.reconstructs else y
            maps = self.scoring.anomaly_map(raw)
            scores = self.scoring.image_score(maps)
            return maps, scores, scores > self.threshold

        def _network(self, x):
            return tf.cast(self.model(x, training=False), tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def detect(self, images):
            height, width = tf.shape(images)[1], tf.shape(images)[2]
            x = resizing.resize(tf.cast(images, tf.float32) / 255.0, self.image_size, self.image_size, 0.0, 1.0)
            maps, scores, defective = self._score(x, self._network(x))
            return {"anomaly_map": resizing.resize(maps, height, width), "score": scores, "defective": defective}

        @tf.function(reduce_retracing=True)  # one trace for any batch size
        def detect_resized(self, x):
            y = self._network(x)
            maps, scores, defective = self._score(x, y)
            return {"anomaly_map": maps, "score": scores, "defective": defective, "output": y}

        @tf.function(reduce_retracing=True)
        def from_outputs(self, x, y):
            maps, scores, defective = self._score(x, y)
            return {"anomaly_map": maps, "score": scores, "defective": defective}

        def infer(self, images: np.ndarray, batch_size: int = 32) -> Inference:
            """`detect_resized` over `[N, S, S, 3] float32 in [0, 1]` images, `batch_size` at a time."""
            return self._batched(lambda i: self.detect_resized(tf.constant(images[i:i + batch_size])),
                                 len(images), batch_size)

        def infer_outputs(self, images: np.ndarray, outputs: np.ndarray, batch_size: int = 32) -> Inference:
            """`from_outputs` over images and the network's outputs for them, `batch_size` at a time."""
            return self._batched(lambda i: self.from_outputs(
                tf.constant(images[i:i + batch_size]), tf.constant(np.asarray(outputs[i:i + batch_size],
                                                                              np.float32))),
                len(images), batch_size, outputs if self.reconstructs else None)

        def score_maps(self, maps: np.ndarray) -> np.ndarray:
            """The image score of each of `[N, S, S]` anomaly maps: `[N] float32`."""
            return self.scoring.image_score(tf.constant(np.asarray(maps, np.float32))).numpy()

        def _batched(self, call, n: int, batch_size: int, reconstructions=None) -> Inference:
            size = self.image_size
            parts = [{k: v.numpy() for k, v in call(i).items()} for i in range(0, n, max(1, batch_size))]
            maps = np.concatenate([p["anomaly_map"] for p in parts]) if parts else np.zeros((0, size, size), np.float32)
            scores = np.concatenate([p["score"] for p in parts]) if parts else np.zeros(0, np.float32)
            if reconstructions is None and self.reconstructs and parts and "output" in parts[0]:
                reconstructions = np.concatenate([p["output"] for p in parts])
            return Inference(maps=maps, scores=scores, reconstructions=reconstructions)

    return Detector
