"""`attention_cae`: the conv CAE with spatial attention (CBAM; the seed's future work)."""

from __future__ import annotations

import functools

from cae_keras.models.blocks import FILTERS, encoder
from cae_keras.models.spec import ModelSpec, mse


@functools.cache
def attention_layer():
    """The `SpatialAttention` layer class, defined once and registered for safe-mode loading."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="cae_keras")
    class SpatialAttention(keras.layers.Layer):
        """Weights each position by a sigmoid of a 7x7 conv over the channel mean and maximum (CBAM)."""

        def build(self, input_shape):
            self.conv = keras.layers.Conv2D(1, 7, padding="same", activation="sigmoid", name="attention_conv")
            self.conv.build((*input_shape[:-1], 2))

        def call(self, x):
            pooled = ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], -1)
            return x * self.conv(pooled)

    return SpatialAttention


def build_attention_cae(image_size: int):
    """The fully convolutional CAE with spatial attention (CBAM) on the code and on each decoder level.

    Attention lets the decoder weigh where to rely on the code; it adds few parameters.
    """
    import keras
    from keras import layers

    attention = attention_layer()
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x, _ = encoder(inputs)
    x = attention(name="attention_code")(x)
    for i, n in enumerate(reversed(FILTERS[:-1])):
        x = layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"decoder_deconv{i + 1}")(x)
        x = attention(name=f"attention_decoder{i + 1}")(x)
    outputs = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction",
                                     dtype="float32")(x)
    return keras.Model(inputs, outputs, name="attention_cae")


SPEC = ModelSpec("attention_cae", "the conv CAE with spatial attention (CBAM) on the code and decoder",
                 build_attention_cae, reconstructs=True, stride=8, loss=mse, register=attention_layer)
