"""`vae`: the seed's CAE as a variational autoencoder (the seed's future work)."""

from __future__ import annotations

import functools

from cae_keras.models.blocks import decoder, encoder
from cae_keras.models.spec import ModelSpec, mse


@functools.cache
def sampling_layer():
    """The `Sampling` layer class, defined once and registered so that `.keras` files load in safe mode."""
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

    return Sampling


def build_vae(image_size: int, latent_dim: int = 64, kl_weight: float = 1e-3):
    """A variational autoencoder with the seed's encoder and decoder.

    The 64-d code becomes a Gaussian (mean and log-variance); training samples it and adds the
    KL divergence to a unit Gaussian (weight `kl_weight` against the MSE), which makes the code
    space smooth. Scoring uses the mean, so maps are deterministic.
    """
    import math

    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x, _ = encoder(inputs)
    shape = tuple(x.shape[1:])
    x = layers.Flatten(name="flatten")(x)
    mean = layers.Dense(latent_dim, name="latent_mean")(x)
    log_var = layers.Dense(latent_dim, name="latent_log_var")(x)
    z = sampling_layer()(kl_weight, name="sampling")([mean, log_var])
    x = layers.Dense(math.prod(shape), activation="relu", name="expand")(z)
    x = layers.Reshape(shape, name="unflatten")(x)
    return keras.Model(inputs, decoder(x), name="vae")


SPEC = ModelSpec("vae", "the seed's CAE as a variational autoencoder (Gaussian 64-d code, KL term)",
                 build_vae, reconstructs=True, stride=8, loss=mse, register=sampling_layer)
