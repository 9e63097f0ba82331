"""The tf.data pipeline: shapes, ranges, training-only augmentation, in-memory caching."""

from __future__ import annotations

import numpy as np

from cae_keras import preprocessing


def _images(n=10, size=24):
    return np.random.default_rng(0).random((n, size, size, 3)).astype(np.float32)


def test_evaluation_pipeline_keeps_order_and_values():
    images = _images()
    batches = [x.numpy() for x in preprocessing.make_dataset(images, 4, training=False, targets=False)]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert np.allclose(np.concatenate(batches), images, atol=1 / 255)


def test_training_pipeline_augments_and_pairs_inputs_with_targets():
    images = _images()
    dataset = preprocessing.make_dataset(images, 10, training=True, seed=1)
    x, y = next(iter(dataset))
    assert x.shape == (10, 24, 24, 3) and np.array_equal(x.numpy(), y.numpy())
    assert 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0
    sorted_in = np.sort(preprocessing.to_uint8(images).reshape(10, -1).mean(1) / 255)
    sorted_out = np.sort(x.numpy().reshape(10, -1).mean(1))
    assert not np.allclose(sorted_in, sorted_out, atol=1e-3), "augmentation changed nothing"


def test_each_epoch_is_reshuffled_and_re_augmented():
    images = _images()
    dataset = preprocessing.make_dataset(images, 5, training=True, seed=0)
    first = np.concatenate([x.numpy() for x, _ in dataset])
    second = np.concatenate([x.numpy() for x, _ in dataset])
    assert first.shape == second.shape == images.shape
    assert not np.allclose(first, second), "the second epoch should be reshuffled and re-augmented"


def test_flip_and_rotation_are_one_exact_resampling():
    import tensorflow as tf

    images = preprocessing.to_uint8(_images(4))
    flipped = preprocessing.augment_batch(images, tf.constant(0, tf.int64), rotation_degrees=0.0,
                                          brightness_delta=0.0, horizontal_flip=True).numpy()
    for out, original in zip(flipped, images / 255.0):
        assert np.allclose(out, original, atol=1e-6) or np.allclose(out, original[:, ::-1], atol=1e-6)
    assert any(np.allclose(out, original[:, ::-1], atol=1e-6) for out, original in zip(flipped, images / 255.0))
    rotated = preprocessing.augment_batch(images, tf.constant(1, tf.int64), 10.0, 0.0, False).numpy()
    assert not np.allclose(rotated, images / 255.0, atol=0.05)
    again = preprocessing.augment_batch(images, tf.constant(1, tf.int64), 10.0, 0.0, False).numpy()
    assert np.array_equal(rotated, again), "seeded"
