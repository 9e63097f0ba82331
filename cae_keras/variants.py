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


def build_conv_cae(image_size: int):
    """The seed's CAE without its dense bottleneck: 3 strided convs straight into 3 transposed convs.

    The code is a `S/8 x S/8 x 128` feature map instead of 64 numbers, so every region of the
    image keeps its own code: it reconstructs far better, including, often, the defects.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    code, _ = _encoder(inputs)
    return keras.Model(inputs, _decoder(code), name="conv_cae")


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

    @keras.saving.register_keras_serializable(package="cae_keras")
    def mse_ssim_loss(y_true, y_pred):
        """Squared error plus 1 - SSIM, DRAEM's reconstruction loss."""
        import tensorflow as tf

        y_true, y_pred = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
        squared = tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])
        return squared + 1.0 - tf.image.ssim(y_true, y_pred, max_val=1.0)

    return Sampling, SpatialAttention, ssim_loss, mse_ssim_loss


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


def _conv_block(x, filters: int, name: str):
    from keras import layers

    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_b")(x)


def _reconstructive(image_size: int, filters=(32, 64, 128)):
    """DRAEM's reconstructive network, small: a fully convolutional autoencoder that learns to
    restore normal content where synthetic anomalies were pasted."""
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"r_down{i + 1}")(x)
        x = layers.Conv2D(n, 3, padding="same", activation="relu", name=f"r_conv{i + 1}")(x)
    for i, n in enumerate(reversed(filters[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"r_up{i + 1}")(x)
        x = layers.Conv2D(n, 3, padding="same", activation="relu", name=f"r_fuse{i + 1}")(x)
    outputs = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", dtype="float32",
                                     name="r_out")(x)
    return keras.Model(inputs, outputs, name="reconstructive")


def _discriminative(image_size: int, filters=(16, 32, 64)):
    """DRAEM's discriminative network, small: a U-Net that sees the image and its reconstruction
    side by side (6 channels) and segments where they disagree in a way normal images do not.

    Its first convolution has stride 2 and its mask is upsampled back at the end: the U-Net works
    at half resolution, which cuts its cost ~3.5x on a CPU. The evaluation blurs maps with sigma
    4 px at 256 anyway, so the half-resolution mask loses nothing that is scored.
    """
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 6), name="image_and_reconstruction")
    x = layers.Conv2D(filters[0], 3, strides=2, padding="same", activation="relu", name="d_stem")(inputs)
    skips = []
    for i, n in enumerate(filters):
        x = _conv_block(x, n, f"d_enc{i + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"d_pool{i + 1}")(x)
    x = _conv_block(x, filters[-1] * 2, "d_middle")
    for i, n in enumerate(reversed(filters)):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"d_up{i + 1}")(x)
        x = layers.Concatenate(name=f"d_skip{i + 1}")([x, skips[-(i + 1)]])
        x = _conv_block(x, n, f"d_dec{i + 1}")
    x = layers.Conv2D(1, 1, name="d_logits")(x)
    x = layers.UpSampling2D(interpolation="bilinear", name="d_full_size")(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="d_out")(x)
    return keras.Model(inputs, outputs, name="discriminative")


def _draem_graph(reconstructive, discriminative, image_size: int, training_outputs: bool):
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    reconstruction = reconstructive(inputs)
    mask = discriminative(layers.Concatenate(name="pair")([inputs, reconstruction]))
    if training_outputs:
        return keras.Model(inputs, {"reconstruction": reconstruction, "mask": mask}, name="draem_training")
    return keras.Model(inputs, layers.Reshape((image_size, image_size), name="anomaly_map")(mask), name="draem")


def build_draem(image_size: int):
    """A from-scratch detector in the manner of DRAEM (Zavrtanik et al., ICCV 2021), sized for a CPU.

    Trained on normal images with synthetic anomalies pasted in (`cae_keras.anomalies`): the
    reconstructive network learns to restore them, the discriminative network learns to segment
    them from the image and its reconstruction together. Its output is the anomaly map itself:
    the probability that each pixel is anomalous.
    """
    return _draem_graph(_reconstructive(image_size), _discriminative(image_size), image_size, False)


def draem_training_model(model):
    """The same networks (shared weights) with the two outputs training needs."""
    size = model.input.shape[1]
    return _draem_graph(model.get_layer("reconstructive"), model.get_layer("discriminative"), size, True)


def draem_inference_model(training_model):
    """The anomaly-map model (shared weights) from a training model, e.g. one loaded from a checkpoint."""
    size = training_model.input.shape[1]
    return _draem_graph(training_model.get_layer("reconstructive"), training_model.get_layer("discriminative"),
                        size, False)


def draem_losses():
    """DRAEM's objective: L2 + SSIM on the reconstruction, focal loss on the mask."""
    import keras

    return {"reconstruction": _custom_layers()[3], "mask": keras.losses.BinaryFocalCrossentropy(gamma=2.0)}
