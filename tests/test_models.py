"""Model shapes, the seed's architecture, the statistics baseline, saving in safe mode."""

from __future__ import annotations

import numpy as np
import pytest

from cae_keras import models
from cae_keras.errors import ConfigError


def test_seed_cae_is_the_seeds_architecture():
    import keras

    model = models.build_model("seed_cae", 64)
    assert model.output_shape == (None, 64, 64, 3)
    convs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    deconvs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2DTranspose]
    assert len(convs) == 3 and len(deconvs) == 3
    for layer in convs + deconvs:
        assert layer.kernel_size == (3, 3) and layer.strides == (2, 2)
    assert all(layer.activation.__name__ == "relu" for layer in convs + deconvs[:-1])
    assert deconvs[-1].activation.__name__ == "sigmoid"
    assert model.get_layer("latent").units == 64
    out = model.predict(np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32), verbose=0)
    assert out.shape == (2, 64, 64, 3) and 0 <= out.min() and out.max() <= 1


def test_image_size_must_fit_the_stride():
    with pytest.raises(ConfigError, match="not a multiple of 8"):
        models.build_model("seed_cae", 100)
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*seed_cae"):
        models.get_spec("resnet")


def test_pixel_stats_learns_mean_and_std_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((10, 16, 16, 3)).astype(np.float32)
    model = models.build_model("pixel_stats", 16)
    models.fit_pixel_statistics(model, [images[:6], images[6:]])
    mean, std = model.get_layer("pixel_statistics").get_weights()
    assert np.allclose(mean, images.mean(0), atol=1e-6) and np.allclose(std, images.std(0), atol=1e-5)
    probe = images[:2].copy()
    probe[0, 3, 3] += 5.0
    anomaly = model.predict(probe, verbose=0)
    assert anomaly.shape == (2, 16, 16) and anomaly[0, 3, 3] == anomaly[0].max()
    model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(probe, verbose=0), anomaly, atol=1e-6)


@pytest.mark.parametrize("name", ["conv_cae", "ssim_cae", "unet_ae", "vae", "attention_cae"])
def test_variants_reconstruct_train_and_round_trip(name, tmp_path):
    import keras

    spec = models.get_spec(name)
    model = models.build_model(name, 32)
    assert model.output_shape == (None, 32, 32, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=spec.loss_function())
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    model.fit(x, x, epochs=1, batch_size=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5), "deterministic at inference"


def test_vae_adds_its_kl_term_and_unet_skips_only_low_resolutions():
    vae = models.build_model("vae", 32)
    vae(np.zeros((1, 32, 32, 3), np.float32), training=True)
    assert len(vae.losses) == 1
    unet = models.build_model("unet_ae", 32)
    skip_sizes = sorted(layer.output.shape[1] for layer in unet.layers if layer.name.startswith("skip"))
    assert skip_sizes == [8, 16], "no full-resolution skip: the input must not be copied through"


def test_a_spec_is_trained_one_way_and_behaviour_comes_from_its_module():
    from cae_keras.models.spec import ModelSpec

    for loss, fit in ((None, None), (lambda: "mse", lambda *a: None)):
        with pytest.raises(ValueError, match="exactly one of loss"):
            ModelSpec("x", "", lambda size: None, reconstructs=True, stride=1, loss=loss, fit=fit)
    draem = models.get_spec("draem")
    assert not draem.reconstructs and draem.dataset is not None and draem.training_model is not draem.inference_model
    assert models.get_spec("patch_nn").fitted_in_one_pass and not models.get_spec("seed_cae").fitted_in_one_pass
    assert {spec.output for spec in models.REGISTRY.values()} == {"reconstruction", "anomaly_map"}
