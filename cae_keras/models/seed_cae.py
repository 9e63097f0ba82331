"""`seed_cae`: the seed's convolutional autoencoder, trained with MSE on normal images only."""

from __future__ import annotations

import math

from cae_keras.models.spec import ModelSpec, check_size, mse


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

    check_size(image_size, 2 ** len(filters), "seed_cae")
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


SPEC = ModelSpec("seed_cae", "the seed's CAE: 3 strided convs, 64-d dense latent, 3 transposed convs; MSE loss",
                 build_seed_cae, reconstructs=True, stride=8, loss=mse)
