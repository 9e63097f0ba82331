"""Synthetic anomalies for training a detector on normal images only (in the manner of DRAEM).

An anomaly is pasted into a normal image through a random smooth mask (thresholded noise of two
octaves, like Perlin noise): `x_aug = x (1 - b M) + b M T`, with opacity b ~ U(0.15, 1) and a
texture T that is either another training image of the batch (shifted, flipped, re-lit) or a
procedural one (a random colour with noise). No external data. Half of the images get no anomaly.
All randomness is stateless, from a per-batch seed, so a seed gives the same anomalies.
"""

from __future__ import annotations


def _smooth_noise(seed, batch, size, cells):
    """Uniform noise on a `cells` x `cells` grid, upsampled bilinearly to `size`: `[B, S, S, 1]`."""
    import tensorflow as tf

    coarse = tf.random.stateless_uniform([batch, cells, cells, 1], seed)
    return tf.image.resize(coarse, [size, size], method="bilinear")


def synthesize(images, seed):
    """Adds synthetic anomalies to a batch.

    Args:
        images: `[B, S, S, 3] float32 in [0, 1]` normal images (a tensor).
        seed: an int64 scalar tensor.

    Returns:
        (augmented `[B, S, S, 3]`, mask `[B, S, S, 1]` float32 in {0, 1}).
    """
    import tensorflow as tf

    batch, size = tf.shape(images)[0], tf.shape(images)[1]
    seeds = [tf.stack([seed, tf.constant(i, tf.int64)]) for i in range(8)]
    noise = 0.65 * _smooth_noise(seeds[0], batch, size, 6) + 0.35 * _smooth_noise(seeds[1], batch, size, 24)
    level = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[2], 0.66, 0.76)
    present = tf.cast(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[3]) < 0.5, tf.float32)
    mask = tf.cast(noise > level, tf.float32) * present

    # Another image of the batch, moved by a random shift and flipped, so that the pasted content
    # differs from what belongs at that place even on aligned objects.
    shift = tf.random.stateless_uniform([2], seeds[4], size // 4, 3 * size // 4, dtype=tf.int32)
    other = tf.roll(tf.roll(images, shift=1, axis=0), shift=shift, axis=[1, 2])
    other = tf.where(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[4] + 7) < 0.5, tf.reverse(other, [1]), other)
    gain = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[5], 0.5, 1.5)
    other = tf.clip_by_value(other * gain, 0.0, 1.0)
    colour = tf.random.stateless_uniform([batch, 1, 1, 3], seeds[6])
    procedural = tf.clip_by_value(colour + 0.15 * tf.random.stateless_normal(tf.shape(images), seeds[7]), 0.0, 1.0)
    use_image = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[2] + 7) < 0.5
    texture = tf.where(use_image, other, procedural)

    opacity = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[3] + 7, 0.15, 1.0)
    augmented = images * (1.0 - opacity * mask) + opacity * mask * texture
    return augmented, mask


def make_anomaly_dataset(images, batch_size: int, training: bool, seed: int = 0, **augment):
    """Batches of (augmented, {"reconstruction": clean, "mask": mask}) for DRAEM-style training.

    Training batches are shuffled, augmented like the autoencoders' (see
    `preprocessing.make_dataset`) and get new anomalies every epoch; validation batches always get
    the same anomalies.
    """
    import tensorflow as tf

    from cae_keras.preprocessing import make_dataset

    clean = make_dataset(images, batch_size, training=training, seed=seed, targets=False, **augment)
    seeds = tf.data.Dataset.random(seed=seed + 12345, rerandomize_each_iteration=training)
    paired = tf.data.Dataset.zip(clean, seeds)

    def add(x, s):
        augmented, mask = synthesize(x, s)
        return augmented, {"reconstruction": x, "mask": mask}

    return paired.map(add, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
