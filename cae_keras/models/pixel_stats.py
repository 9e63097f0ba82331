"""`pixel_stats`: per-pixel mean and standard deviation of the training normals, the baseline every
deep model must beat (on the held-out MVTec bottle: 0.984 image AUROC, `findings.md`)."""

from __future__ import annotations

import functools

from cae_keras.models.spec import ModelSpec


def pixel_statistics_map(images, mean, std, epsilon: float = 0.01):
    """`pixel_stats`' anomaly map: mean over channels of |x - mean| / (std + epsilon).

    `[B, S, S, 3]` images and `[S, S, 3]` statistics -> `[B, S, S]` (any backend tensors).
    """
    from keras import ops

    return ops.mean(ops.abs(images - mean) / (std + epsilon), axis=-1)


@functools.cache
def _pixel_statistics_layer():
    """Defined lazily so that importing this module does not import Keras."""
    import keras

    @keras.saving.register_keras_serializable(package="cae_keras")
    class PixelStatistics(keras.layers.Layer):
        """Per-pixel mean and std of the training normals; returns mean_c |x - mean| / (std + eps).

        The weights are set by `fit_pixel_statistics`, not by gradient descent.
        """

        def __init__(self, epsilon: float = 0.01, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            shape = tuple(input_shape[1:])
            self.mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
            self.std = self.add_weight(shape=shape, initializer="ones", trainable=False, name="std")

        def call(self, x):
            return pixel_statistics_map(x, self.mean, self.std, self.epsilon)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    return PixelStatistics


def build_pixel_stats(image_size: int):
    """The per-pixel statistics baseline: anomaly map = |x - mean| / std, averaged over channels.

    It is the honest reference every deep model must beat: on aligned objects such as MVTec's
    bottle it is already strong, and it costs one pass over the training images.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = _pixel_statistics_layer()(name="pixel_statistics")(inputs)
    return keras.Model(inputs, outputs, name="pixel_stats")


def pixel_statistics(batches) -> tuple["np.ndarray", "np.ndarray"]:  # noqa: F821
    """Per-pixel mean and std over an iterable of `[B, H, W, 3]` batches (one pass, float64 sums).

    Returns:
        (mean, std), each `[H, W, 3] float32`.
    """
    import numpy as np

    total = total_sq = None
    count = 0
    for batch in batches:
        x = np.asarray(batch[0] if isinstance(batch, tuple) else batch, dtype=np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        total_sq = (x**2).sum(0) if total_sq is None else total_sq + (x**2).sum(0)
        count += len(x)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype("float32"), std.astype("float32")


def fit_pixel_statistics(model, dataset) -> None:
    """Sets the statistics layer's mean and std from a dataset of `[B, H, W, 3]` batches (one pass)."""
    model.get_layer("pixel_statistics").set_weights(list(pixel_statistics(dataset)))


def fit_pixel_stats(config, train_images, val_images, verbose=True):
    """Builds `pixel_stats` and sets its statistics from `[N, S, S, 3] uint8` training normals."""
    from cae_keras import preprocessing

    model = build_pixel_stats(config.recipe.image_size)
    fit_pixel_statistics(model, preprocessing.make_dataset(train_images, config.recipe.batch_size, training=False,
                                                           targets=False))
    return model, None


SPEC = ModelSpec("pixel_stats", "per-pixel mean/std of the training normals; map = |x - mean| / std",
                 build_pixel_stats, reconstructs=False, stride=1, fit=fit_pixel_stats,
                 register=_pixel_statistics_layer)
