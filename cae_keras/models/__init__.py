"""The registered models, one module each, with everything that model is: its network, its loss
and how it trains (`ModelSpec`). Each is a Keras functional model saved as `.keras`.

Two kinds of output:
- reconstruction (`ModelSpec.reconstructs`): the model returns x̂ `[N, S, S, 3]` in [0, 1]; the
  anomaly map is an error map between x and x̂ (`cae_keras.graph_scoring`);
- its own anomaly map `[N, S, S]` (per-pixel statistics, patch distances, DRAEM's segmentation).

By role:
- the seed's autoencoder: `seed_cae`;
- the seed's future work, each one change against it: `conv_cae`, `ssim_cae`, `unet_ae`, `vae`,
  `attention_cae` (shared blocks in `blocks`);
- detectors that find defects: `draem` (trained on synthetic anomalies), `pixel_stats` and
  `patch_nn` (fitted in one pass over the normals).
"""

from __future__ import annotations

import contextlib

from cae_keras.errors import ConfigError
from cae_keras.models import (attention_cae, conv_cae, draem, patch_nn, pixel_stats, seed_cae, ssim_cae, unet_ae,
                              vae)
from cae_keras.models.pixel_stats import build_pixel_stats, fit_pixel_statistics, pixel_statistics, pixel_statistics_map
from cae_keras.models.seed_cae import build_seed_cae
from cae_keras.models.spec import ModelSpec, check_size

__all__ = ["REGISTRY", "ModelSpec", "get_spec", "check_image_size", "build_model", "load_model", "dtype_policy",
           "build_seed_cae", "build_pixel_stats", "pixel_statistics", "pixel_statistics_map", "fit_pixel_statistics"]

REGISTRY: dict[str, ModelSpec] = {
    module.SPEC.name: module.SPEC
    for module in (seed_cae, conv_cae, ssim_cae, unet_ae, vae, attention_cae, draem, pixel_stats, patch_nn)
}


def get_spec(name: str) -> ModelSpec:
    """The registered model of that name. Raises ConfigError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; registered models: {', '.join(REGISTRY)}") from None


def check_image_size(name: str, image_size: int) -> None:
    """Raises ConfigError if the model cannot take square inputs of `image_size`."""
    check_size(image_size, get_spec(name).stride, name)


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds layers under a Keras dtype policy ('float32', 'mixed_bfloat16', 'mixed_float16'),
    then restores the previous global policy, so nothing else is affected."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(name: str, image_size: int, precision: str = "float32"):
    """Builds a registered model for square inputs of `image_size`, checking the size fits it.

    Under a mixed precision the layers compute in 16 bit, except the output layer, which stays
    float32 so that the loss and the anomaly maps keep their precision.
    """
    check_image_size(name, image_size)
    spec = get_spec(name)
    if spec.fitted_in_one_pass:
        precision = "float32"  # means and stds in 16 bit would lose the small deviations that matter
    with dtype_policy(precision):
        return spec.build(image_size)


def load_model(path) -> "keras.Model":  # noqa: F821
    """Loads a `.keras` file in Keras safe mode (no arbitrary code from the file is run)."""
    import keras

    for spec in REGISTRY.values():  # custom layers and losses are registered before deserialising
        if spec.register is not None:
            spec.register()
    return keras.models.load_model(path, safe_mode=True)
