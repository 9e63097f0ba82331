"""`ssim_cae`: the seed's CAE trained with an SSIM loss (Bergmann et al., VISAPP 2019) instead of MSE."""

from __future__ import annotations

import functools

from cae_keras.models.seed_cae import build_seed_cae
from cae_keras.models.spec import ModelSpec


@functools.cache
def ssim_loss():
    """1 - SSIM (Gaussian window 11, sigma 1.5, peak 1.0) per image; registered so that checkpoints load."""
    import keras

    @keras.saving.register_keras_serializable(package="cae_keras")
    def ssim_loss(y_true, y_pred):
        """1 - SSIM (Gaussian window 11, sigma 1.5, peak 1.0), averaged over the batch."""
        import tensorflow as tf

        return 1.0 - tf.image.ssim(tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32), max_val=1.0)

    return ssim_loss


SPEC = ModelSpec("ssim_cae", "the seed's CAE trained with an SSIM loss (Bergmann et al. 2019) instead of MSE",
                 build_seed_cae, reconstructs=True, stride=8, loss=ssim_loss, register=ssim_loss)
