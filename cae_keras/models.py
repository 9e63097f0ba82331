"""The registered models. Each is a Keras functional model saved as `.keras`.

Two kinds of output:
- `reconstruction`: the model returns x̂ `[N, H, W, 3]` in [0, 1]; the anomaly map is |x - x̂|.
- `anomaly_map`: the model returns the map `[N, H, W]` itself (e.g. per-pixel statistics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Callable

from cae_keras import variants
from cae_keras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and how it is trained and scored."""

    name: str
    description: str
    build: Callable[[int], "keras.Model"]  # noqa: F821 - keras imported lazily
    output: str  # "reconstruction" or "anomaly_map"
    trained_by: str  # "gradient" (model.fit on `loss`) or "statistics" (one pass over the data)
    stride: int  # the image size must be a multiple of this
    loss: str = "mse"  # "mse", "ssim" (1 - SSIM) or "draem" (a loss per output of the training model)
    default_epochs: int = 200  # the recipe's length when `epochs` is not given
    fit: Callable | None = None  # statistics models: (config, train uint8, val float, verbose) -> (model, record)

    @property
    def reconstructs(self) -> bool:
        """Returns x̂, scored by an error map; otherwise the model returns its own anomaly map."""
        return self.output == "reconstruction"

    @property
    def fitted_in_one_pass(self) -> bool:
        """Fitted by one pass over the normals (no epochs, no optimizer), not by gradient descent."""
        return self.trained_by == "statistics"

    def loss_function(self):
        """What `model.compile` gets as its loss."""
        return {"mse": "mse", "ssim": variants.ssim_loss(), "draem": variants.draem_losses()}[self.loss]

    @property
    def synthetic_anomalies(self) -> bool:
        """Trained on normal images with synthetic anomalies pasted in (see `cae_keras.anomalies`)."""
        return self.loss == "draem"

    def training_model(self, model):
        """The model `fit` trains: the model itself, or one sharing its weights with training outputs."""
        return variants.draem_training_model(model) if self.synthetic_anomalies else model

    def inference_model(self, training_model):
        """The scoring model from a (possibly reloaded) training model."""
        return variants.draem_inference_model(training_model) if self.synthetic_anomalies else training_model


def build_seed_cae(image_size: int, latent_dim: int = 64, filters: tuple[int, ...] = (32, 64, 128)):
    """The seed's convolutional autoencoder, exactly as its write-up describes it.

    Encoder: 3 conv layers, 3x3, stride 2, ReLU. Latent: a dense 64-d vector. Decoder: a dense
    layer back to the encoder's feature map, then 3 transposed convs, 3x3, stride 2, ReLU, the
    last with a sigmoid instead so that x̂ stays in [0, 1] like the input.

    Args:
        image_size: input height = width, a multiple of 8.

    Returns:
        a `keras.Model` mapping `[N, S, S, 3]` in [0, 1] to x̂ of the same shape.
    """
    import keras
    from keras import layers

    _check_size(image_size, 2 ** len(filters), "seed_cae")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"encoder_conv{i + 1}")(x)
    feature_shape = tuple(x.shape[1:])
    x = layers.Flatten(name="flatten")(x)
    latent = layers.Dense(latent_dim, name="latent")(x)
    x = layers.Dense(math.prod(feature_shape), activation="relu", name="expand")(latent)
    x = layers.Reshape(feature_shape, name="unflatten")(x)
    for i, n in enumerate(reversed(filters[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i + 1}")(x)
    outputs = layers.Conv2DTranspose(
        3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name="seed_cae")


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

    model = build_pixel_stats(config.image_size)
    fit_pixel_statistics(model, preprocessing.make_dataset(train_images, config.batch_size, training=False,
                                                           targets=False))
    return model, None


def fit_patch_nn(config, train_images, val_images, verbose=True):
    """Fills `patch_nn`'s memory and chooses its search (see `cae_keras.patch_nn.fit_patch_nn`)."""
    from cae_keras import patch_nn

    return patch_nn.fit_patch_nn(train_images, val_images, config.image_size, config.blur_sigma, config.seed,
                                 verbose=bool(verbose))


def _build_patch_nn(image_size: int):
    from cae_keras import patch_nn

    return patch_nn.build_patch_nn(image_size)


def _check_size(image_size: int, stride: int, name: str) -> None:
    if image_size % stride:
        raise ConfigError(
            f"image size {image_size} is not a multiple of {stride}, which model '{name}' needs "
            f"(its encoder halves the size {int(math.log2(stride))} times); try {stride * round(image_size / stride)}"
        )


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("seed_cae", "the seed's CAE: 3 strided convs, 64-d dense latent, 3 transposed convs; MSE loss",
                  build_seed_cae, "reconstruction", "gradient", 8),
        ModelSpec("conv_cae", "the seed's CAE without the dense 64-d bottleneck (fully convolutional)",
                  variants.build_conv_cae, "reconstruction", "gradient", 8),
        ModelSpec("ssim_cae", "the seed's CAE trained with an SSIM loss (Bergmann et al. 2019) instead of MSE",
                  build_seed_cae, "reconstruction", "gradient", 8, loss="ssim"),
        ModelSpec("unet_ae", "the conv CAE with U-Net skip connections at 1/2 and 1/4 resolution",
                  variants.build_unet_ae, "reconstruction", "gradient", 8),
        ModelSpec("vae", "the seed's CAE as a variational autoencoder (Gaussian 64-d code, KL term)",
                  variants.build_vae, "reconstruction", "gradient", 8),
        ModelSpec("attention_cae", "the conv CAE with spatial attention (CBAM) on the code and decoder",
                  variants.build_attention_cae, "reconstruction", "gradient", 8),
        ModelSpec("draem", "DRAEM-style: reconstructive + discriminative networks trained on synthetic anomalies",
                  variants.build_draem, "anomaly_map", "gradient", 16, loss="draem", default_epochs=40),
        ModelSpec("pixel_stats", "per-pixel mean/std of the training normals; map = |x - mean| / std",
                  build_pixel_stats, "anomaly_map", "statistics", 1, fit=fit_pixel_stats),
        ModelSpec("patch_nn", "each patch against its nearest training-normal patch (SPADE/PatchCore-style, "
                  "hand-made multi-scale features, no training)",
                  _build_patch_nn, "anomaly_map", "statistics", 1, fit=fit_patch_nn),
    ]
}


def get_spec(name: str) -> ModelSpec:
    """The registered model of that name. Raises ConfigError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; registered models: {', '.join(REGISTRY)}") from None


def check_image_size(name: str, image_size: int) -> None:
    """Raises ConfigError if the model cannot take square inputs of `image_size`."""
    _check_size(image_size, get_spec(name).stride, name)


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds layers under a Keras dtype policy ('float32', 'mixed_bfloat16', 'mixed_float16'),
    then restores the previous global policy, so nothing else is affected."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(name: str, image_size: int, precision: str = "float32"):
    """Builds a registered model for square inputs of `image_size`, checking the size fits it.

    Under a mixed precision the layers compute in 16 bit, except the output layer, which stays
    float32 so that the loss and the anomaly maps keep their precision.
    """
    check_image_size(name, image_size)
    spec = get_spec(name)
    if spec.fitted_in_one_pass:
        precision = "float32"  # means and stds in 16 bit would lose the small deviations that matter
    with dtype_policy(precision):
        return spec.build(image_size)


def load_model(path) -> "keras.Model":  # noqa: F821
    """Loads a `.keras` file in Keras safe mode (no arbitrary code from the file is run)."""
    import keras

    from cae_keras import patch_nn

    _pixel_statistics_layer()  # registers the custom layers and losses before deserialising
    variants._custom_layers()
    patch_nn._layer_class()
    return keras.models.load_model(path, safe_mode=True)
