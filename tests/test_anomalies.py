"""Synthetic anomalies and the DRAEM-style detector trained on them."""

from __future__ import annotations

import numpy as np

from cae_keras import anomalies, models, runs
from cae_keras.config import TrainConfig
from cae_keras.training import train


def _images(n=16, size=32):
    return np.random.default_rng(0).random((n, size, size, 3)).astype(np.float32) * 0.5


def test_anomalies_change_only_masked_pixels_and_are_seeded():
    import tensorflow as tf

    images = tf.constant(_images())
    augmented, mask = anomalies.synthesize(images, tf.constant(5, tf.int64))
    augmented, mask = augmented.numpy(), mask.numpy()[..., 0]
    assert mask.shape == (16, 32, 32) and set(np.unique(mask)) <= {0.0, 1.0}
    changed = np.abs(augmented - images.numpy()).max(-1) > 1e-6
    assert not (changed & (mask == 0)).any(), "pixels outside the mask must stay as they were"
    assert mask.any() and (mask.reshape(16, -1).max(1) == 0).any(), "some images with, some without anomalies"
    again, _ = anomalies.synthesize(images, tf.constant(5, tf.int64))
    assert np.array_equal(again.numpy(), augmented)


def test_anomaly_dataset_targets():
    dataset = anomalies.make_anomaly_dataset(_images(), 8, training=True, seed=0)
    augmented, targets = next(iter(dataset))
    assert augmented.shape == (8, 32, 32, 3)
    assert targets["reconstruction"].shape == (8, 32, 32, 3) and targets["mask"].shape == (8, 32, 32, 1)
    first = [t["mask"].numpy() for _, t in anomalies.make_anomaly_dataset(_images(), 8, training=False)]
    second = [t["mask"].numpy() for _, t in anomalies.make_anomaly_dataset(_images(), 8, training=False)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second)), "validation anomalies are fixed"


def test_draem_trains_resumes_and_outputs_a_map(tiny_dataset, tmp_path):
    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="draem", image_size=32, epochs=1,
                         batch_size=8)
    train(config, tmp_path / "run", verbose=0)
    longer = config.replace(epochs=2)
    paths = train(longer, tmp_path / "run", verbose=0)
    assert [row["epoch"] for row in runs.read_history(paths.history)] == [1, 2]
    model = models.load_model(paths.model)
    assert model.output_shape == (None, 32, 32)
    out = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert 0.0 <= out.min() and out.max() <= 1.0
