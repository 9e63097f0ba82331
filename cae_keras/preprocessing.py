"""The `tf.data` input pipeline: images decoded once, kept in memory, augmented per batch.

Decoding and resizing happen once, in `cae_keras.data.load_images` (which understands every
image mode, unlike `tf.io.decode_png`). The decoded images are the dataset's in-memory source,
kept as uint8 (200 images at 256 px take 39 MB, a quarter of float32), so no epoch re-reads or
re-decodes a file; each batch is converted to float32 in [0, 1] as it is drawn.
"""

from __future__ import annotations

import math

import numpy as np


def augmenter(rotation_degrees: float, brightness_delta: float, horizontal_flip: bool, seed: int):
    """The seed's training augmentation as a Keras model: rotation, horizontal flip, brightness.

    Rotations fill with reflected content so that no black corners appear in the training data.
    """
    import keras

    layers = []
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation_degrees > 0:
        layers.append(keras.layers.RandomRotation(rotation_degrees / 360.0, fill_mode="reflect", seed=seed + 1))
    if brightness_delta > 0:
        layers.append(keras.layers.RandomBrightness(brightness_delta, value_range=(0.0, 1.0), seed=seed + 2))
    return keras.Sequential(layers, name="augment")


def to_uint8(images: np.ndarray) -> np.ndarray:
    """`[N, H, W, 3] float32 in [0, 1]` to uint8, the compact form kept in memory."""
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_dataset(
    images: np.ndarray,
    batch_size: int,
    training: bool,
    seed: int = 0,
    rotation_degrees: float = 10.0,
    brightness_delta: float = 0.1,
    horizontal_flip: bool = True,
    targets: bool = True,
    drop_remainder: bool = False,
):
    """Builds the pipeline over in-memory images.

    Args:
        images: `[N, H, W, 3]` uint8, or float32 in [0, 1].
        training: shuffle every epoch and augment; otherwise keep order, no augmentation.
        targets: yield (x, x) pairs for autoencoder training instead of x alone.
        drop_remainder: drop a last, smaller batch (several replicas need equal shares).

    Returns:
        a `tf.data.Dataset` of `[B, H, W, 3] float32 in [0, 1]` batches (pairs if `targets`).
    """
    import tensorflow as tf

    if images.dtype != np.uint8:
        images = to_uint8(images)
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(lambda x: tf.cast(x, tf.float32) / 255.0,
                                            num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        augment = augmenter(rotation_degrees, brightness_delta, horizontal_flip, seed)
        if augment.layers:
            dataset = dataset.map(
                lambda x: tf.clip_by_value(augment(x, training=True), 0.0, 1.0),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    if targets:
        dataset = dataset.map(lambda x: (x, x))
    return dataset.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return math.ceil(n_images / batch_size)
