"""`unet_ae`: the conv CAE with U-Net skip connections (the seed's future work)."""

from __future__ import annotations

from cae_keras.models.blocks import decoder, encoder
from cae_keras.models.spec import ModelSpec, mse


def build_unet_ae(image_size: int):
    """A U-Net autoencoder: the conv CAE plus skip connections from each encoder level.

    Skips carry fine detail past the bottleneck, so reconstructions are sharp; the risk is that
    defects are carried past too. The deepest skip (full resolution) is left out for that reason.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    code, skips = encoder(inputs)
    outputs = decoder(code, skips=skips[1:])
    return keras.Model(inputs, outputs, name="unet_ae")


SPEC = ModelSpec("unet_ae", "the conv CAE with U-Net skip connections at 1/2 and 1/4 resolution",
                 build_unet_ae, reconstructs=True, stride=8, loss=mse)
