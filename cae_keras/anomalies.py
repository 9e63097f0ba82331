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


def synthesize(images, seed, allowed=None):
    """Adds synthetic anomalies to a batch.

    Args:
        images: `[B, S, S, 3] float32 in [0, 1]` normal images (a tensor).
        seed: an int64 scalar tensor.
        allowed: optional `[B, S, S, 1]` float32 in {0, 1}: where anomalies may go (e.g. the object,
            from `object_masks`); everywhere when None.

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
    if allowed is not None:
        mask = mask * allowed

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


def object_masks(images, min_share: float = 0.05, max_share: float = 0.9):
    """Where the object is: pixels whose colour differs from the image border's more than the border varies.

    Real defects lie on the part, not on the table it lies on; validation anomalies placed on the
    background would reward detectors for what never happens (NSA, Schlüter et al., ECCV 2022,
    places its anomalies on the object for the same reason).

    Args:
        images: `[N, S, S, 3] float32 in [0, 1]`.
        min_share, max_share: if the object found covers less or more of an image than this, there
            is no clear background (a texture, a close-up): the whole image counts as object.

    Returns:
        `[N, S, S] bool`.
    """
    import cv2
    import numpy as np

    out = np.ones(images.shape[:3], dtype=bool)
    for i, image in enumerate(np.asarray(images, dtype=np.float32)):
        size = image.shape[0]
        band = max(1, size // 25)
        border = np.concatenate([image[:band].reshape(-1, 3), image[-band:].reshape(-1, 3),
                                 image[:, :band].reshape(-1, 3), image[:, -band:].reshape(-1, 3)])
        distance = np.linalg.norm(image - np.median(border, axis=0), axis=-1)
        distance = cv2.GaussianBlur(distance, (0, 0), max(1.0, size / 128))
        border_distance = np.concatenate([distance[:band].ravel(), distance[-band:].ravel(),
                                          distance[:, :band].ravel(), distance[:, -band:].ravel()])
        found = distance > 2.0 * np.quantile(border_distance, 0.99)  # well beyond the border's own variation
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size // 16 | 1,) * 2)
        found = cv2.morphologyEx(found.astype(np.uint8), cv2.MORPH_CLOSE, kernel)  # fills the gaps in a textured part
        if min_share <= found.mean() <= max_share:
            out[i] = found.astype(bool)
    return out


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
