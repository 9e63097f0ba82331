"""The seed's future work as models: SSIM loss, U-Net, VAE and attention autoencoders.

Each changes one thing against the seed's CAE (`models.build_seed_cae`) and is registered in
`cae_keras.models.REGISTRY`; training, scoring and reports are the same for all.
"""

from __future__ import annotations

import functools

FILTERS = (32, 64, 128)


def _encoder(x, filters=FILTERS):
    from keras import layers

    skips = []
    for i, n in enumerate(filters):
        skips.append(x)
        x = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"encoder_conv{i + 1}")(x)
    return x, skips


def _decoder(x, filters=FILTERS, skips=None):
    from keras import layers

    for i, n in enumerate(reversed(filters[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i + 1}")(x)
        if skips is not None:
            x = layers.Concatenate(name=f"skip{i + 1}")([x, skips[-(i + 1)]])
            x = layers.Conv2D(n, 3, padding="same", activation="relu", name=f"decoder_fuse{i + 1}")(x)
    return layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction",
                                  dtype="float32")(x)


def build_unet_ae(image_size: int):
    """A U-Net autoencoder: the conv CAE plus skip connections from each encoder level.

    Skips carry fine detail past the bottleneck, so reconstructions are sharp; the risk is that
    defects are carried past too. The deepest skip (full resolution) is left out for that reason.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    code, skips = _encoder(inputs)
    outputs = _decoder(code, skips=skips[1:])
    return keras.Model(inputs, outputs, name="unet_ae")


@functools.cache
def _custom_layers():
    """Custom layers, defined once and registered so that `.keras` files load in safe mode."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="cae_keras")
    class Sampling(keras.layers.Layer):
        """z = mean + exp(log_var / 2) * noise while training, z = mean otherwise; adds the KL term."""

        def __init__(self, kl_weight: float = 1e-3, **kwargs):
            super().__init__(**kwargs)
            self.kl_weight = kl_weight
            self.seed_generator = keras.random.SeedGenerator(0)

        def call(self, inputs, training=None):
            mean, log_var = inputs
            kl = -0.5 * ops.mean(ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1))
            self.add_loss(self.kl_weight * kl)
            if not training:
                return mean
            noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            return mean + ops.exp(0.5 * log_var) * noise

        def get_config(self):
            return {**super().get_config(), "kl_weight": self.kl_weight}

    @keras.saving.register_keras_serializable(package="cae_keras")
    class SpatialAttention(keras.layers.Layer):
        """Weights each position by a sigmoid of a 7x7 conv over the channel mean and maximum (CBAM)."""

        def build(self, input_shape):
            self.conv = keras.layers.Conv2D(1, 7, padding="same", activation="sigmoid", name="attention_conv")
            self.conv.build((*input_shape[:-1], 2))

        def call(self, x):
            pooled = ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], -1)
            return x * self.conv(pooled)

    @keras.saving.register_keras_serializable(package="cae_keras")
    def ssim_loss(y_true, y_pred):
        """1 - SSIM (Gaussian window 11, sigma 1.5, peak 1.0), averaged over the batch."""
        import tensorflow as tf

        return 1.0 - tf.image.ssim(tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32), max_val=1.0)

    return Sampling, SpatialAttention, ssim_loss


def ssim_loss():
    """The SSIM loss function (registered for saving)."""
    return _custom_layers()[2]


def build_vae(image_size: int, latent_dim: int = 64, kl_weight: float = 1e-3):
    """A variational autoencoder with the seed's encoder and decoder.

    The 64-d code becomes a Gaussian (mean and log-variance); training samples it and adds the
    KL divergence to a unit Gaussian (weight `kl_weight` against the MSE), which makes the code
    space smooth. Scoring uses the mean, so maps are deterministic.
    """
    import math

    import keras
    from keras import layers

    sampling = _custom_layers()[0]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x, _ = _encoder(inputs)
    shape = tuple(x.shape[1:])
    x = layers.Flatten(name="flatten")(x)
    mean = layers.Dense(latent_dim, name="latent_mean")(x)
    log_var = layers.Dense(latent_dim, name="latent_log_var")(x)
    z = sampling(kl_weight, name="sampling")([mean, log_var])
    x = layers.Dense(math.prod(shape), activation="relu", name="expand")(z)
    x = layers.Reshape(shape, name="unflatten")(x)
    return keras.Model(inputs, _decoder(x), name="vae")


def build_attention_cae(image_size: int):
    """The fully convolutional CAE with spatial attention (CBAM) on the code and on each decoder level.

    Attention lets the decoder weigh where to rely on the code; it adds few parameters.
    """
    import keras
    from keras import layers

    attention = _custom_layers()[1]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x, _ = _encoder(inputs)
    x = attention(name="attention_code")(x)
    for i, n in enumerate(reversed(FILTERS[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i + 1}")(x)
        x = attention(name=f"attention_decoder{i + 1}")(x)
    outputs = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction",
                                     dtype="float32")(x)
    return keras.Model(inputs, outputs, name="attention_cae")
