"""The `tf.data` input pipeline: images decoded once, kept in memory, augmented per batch.

Decoding and resizing happen once, in `cae_keras.data.load_images` (which understands every
image mode, unlike `tf.io.decode_png`). The decoded images are the dataset's in-memory source,
kept as uint8 (200 images at 256 px take 39 MB, a quarter of float32), so no epoch re-reads or
re-decodes a file; each batch is converted to float32 in [0, 1] as it is drawn.
"""

from __future__ import annotations

import numpy as np


def _transforms(angles, flips, height, width):
    """Projective transforms (TensorFlow's 8-number form) that rotate each image by its angle about
    the centre and mirror it left-right where `flips` is True: one resampling does both."""
    import tensorflow as tf

    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angles), tf.sin(angles)
    sign = tf.where(flips, -1.0, 1.0)
    zeros = tf.zeros_like(angles)
    # the output pixel (x, y) reads the input at (sign (cos dx - sin dy) + cx, sin dx + cos dy + cy)
    return tf.stack([sign * cos, -sign * sin, cx - sign * (cos * cx - sin * cy),
                     sin, cos, cy - sin * cx - cos * cy, zeros, zeros], axis=1)


def augment_batch(images, seed, rotation_degrees: float = 10.0, brightness_delta: float = 0.1,
                  horizontal_flip: bool = True):
    """The seed's training augmentation: a random rotation within ±`rotation_degrees`, a
    horizontal flip with probability 1/2, a brightness shift within ±`brightness_delta`.

    Rotation and flip are one bilinear resampling of the uint8 images (reflected at the borders,
    so no black corners); that keeps the input pipeline's cost near a tenth of a training step.

    Args:
        images: `[B, H, W, 3]` uint8 tensor.
        seed: int64 scalar tensor; the same seed gives the same augmentation.

    Returns:
        `[B, H, W, 3] float32 in [0, 1]`.
    """
    import math

    import tensorflow as tf

    shape = tf.shape(images)
    n, height, width = shape[0], shape[1], shape[2]
    seeds = [tf.stack([tf.cast(seed, tf.int64), tf.constant(i, tf.int64)]) for i in range(3)]
    if rotation_degrees > 0 or horizontal_flip:
        angles = tf.random.stateless_uniform([n], seeds[0], -1.0, 1.0) * (rotation_degrees * math.pi / 180.0)
        flips = (tf.random.stateless_uniform([n], seeds[1]) < 0.5) & horizontal_flip
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=_transforms(angles, flips, height, width),
            output_shape=tf.stack([height, width]), fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    x = tf.cast(images, tf.float32) / 255.0
    if brightness_delta > 0:
        x = x + tf.random.stateless_uniform([n, 1, 1, 1], seeds[2], -brightness_delta, brightness_delta)
    return tf.clip_by_value(x, 0.0, 1.0)


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
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and (rotation_degrees > 0 or brightness_delta > 0 or horizontal_flip):
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda x, s: augment_batch(x, s, rotation_degrees, brightness_delta, horizontal_flip),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda x: tf.cast(x, tf.float32) / 255.0, num_parallel_calls=tf.data.AUTOTUNE)
    if targets:
        dataset = dataset.map(lambda x: (x, x))
    return dataset.prefetch(tf.data.AUTOTUNE)
