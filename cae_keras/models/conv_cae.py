"""`conv_cae`: the seed's CAE without its dense bottleneck (fully convolutional)."""

from __future__ import annotations

from cae_keras.models.blocks import decoder, encoder
from cae_keras.models.spec import ModelSpec, mse


def build_conv_cae(image_size: int):
    """The seed's CAE without its dense bottleneck: 3 strided convs straight into 3 transposed convs.

    The code is a `S/8 x S/8 x 128` feature map instead of 64 numbers, so every region of the
    image keeps its own code: it reconstructs far better, including, often, the defects.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    code, _ = encoder(inputs)
    return keras.Model(inputs, decoder(code), name="conv_cae")


SPEC = ModelSpec("conv_cae", "the seed's CAE without the dense 64-d bottleneck (fully convolutional)",
                 build_conv_cae, reconstructs=True, stride=8, loss=mse)
