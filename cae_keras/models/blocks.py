"""The autoencoders' shared encoder and decoder: the seed's 3 strided 3x3 convs with ReLU, and 3
transposed convs back to a sigmoid image."""

from __future__ import annotations

FILTERS = (32, 64, 128)


def encoder(x, filters=FILTERS):
    """3 convs, 3x3, stride 2, ReLU. Returns the code and each level's input (for skips)."""
    from keras import layers

    skips = []
    for i, n in enumerate(filters):
        skips.append(x)
        x = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"encoder_conv{i + 1}")(x)
    return x, skips


def decoder(x, filters=FILTERS, skips=None):
    """Transposed convs back to `[N, S, S, 3]` in [0, 1]; with `skips`, U-Net fusions at each level."""
    from keras import layers

    for i, n in enumerate(reversed(filters[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i + 1}")(x)
        if skips is not None:
            x = layers.Concatenate(name=f"skip{i + 1}")([x, skips[-(i + 1)]])
            x = layers.Conv2D(n, 3, padding="same", activation="relu", name=f"decoder_fuse{i + 1}")(x)
    return layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction",
                                  dtype="float32")(x)
