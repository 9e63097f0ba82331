"""`draem`: a from-scratch detector in the manner of DRAEM (Zavrtanik et al., ICCV 2021), sized for a CPU.

Everything DRAEM is lives here: its two networks, its losses, and how it trains, on normal images
with synthetic anomalies pasted in (`cae_keras.anomalies`, the dataset its spec hands training).
"""

from __future__ import annotations

import functools

from cae_keras.models.spec import ModelSpec


@functools.cache
def mse_ssim_loss():
    """Squared error plus 1 - SSIM, DRAEM's reconstruction loss; registered so that checkpoints load."""
    import keras

    @keras.saving.register_keras_serializable(package="cae_keras")
    def mse_ssim_loss(y_true, y_pred):
        """Squared error plus 1 - SSIM, DRAEM's reconstruction loss."""
        import tensorflow as tf

        y_true, y_pred = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
        squared = tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])
        return squared + 1.0 - tf.image.ssim(y_true, y_pred, max_val=1.0)

    return mse_ssim_loss


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


def training_model(model):
    """The same networks (shared weights) with the two outputs training needs."""
    size = model.input.shape[1]
    return _draem_graph(model.get_layer("reconstructive"), model.get_layer("discriminative"), size, True)


def inference_model(trainable):
    """The anomaly-map model (shared weights) from a training model, e.g. one loaded from a checkpoint."""
    size = trainable.input.shape[1]
    return _draem_graph(trainable.get_layer("reconstructive"), trainable.get_layer("discriminative"),
                        size, False)


def losses():
    """DRAEM's objective: L2 + SSIM on the reconstruction, focal loss on the mask."""
    import keras

    return {"reconstruction": mse_ssim_loss(), "mask": keras.losses.BinaryFocalCrossentropy(gamma=2.0)}


def anomaly_dataset(images, batch_size: int, training: bool, seed: int = 0, **augment):
    """DRAEM's training step's data: normals with synthetic anomalies and their masks
    (`anomalies.make_anomaly_dataset`)."""
    from cae_keras import anomalies

    return anomalies.make_anomaly_dataset(images, batch_size, training=training, seed=seed, **augment)


SPEC = ModelSpec("draem", "DRAEM-style: reconstructive + discriminative networks trained on synthetic anomalies",
                 build_draem, reconstructs=False, stride=16, loss=losses, default_epochs=40,
                 training_model=training_model, inference_model=inference_model, dataset=anomaly_dataset,
                 register=mse_ssim_loss)
