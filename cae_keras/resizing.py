"""The reader's resize as a graph: interpolation matrices built from the input's own size.

`data.resize` (OpenCV) shrinks by area averaging (`INTER_AREA`) when the target is smaller than
both sides and otherwise interpolates with OpenCV's bicubic kernel (`INTER_CUBIC`, a = -0.75, edge
pixels repeated). Both are linear along each axis, so a resize is two matrix products:
`out = rows @ image @ cols.T`, with `rows` `[out_h, in_h]` and `cols` `[out_w, in_w]`. Here the
matrices are computed with TensorFlow ops from the (dynamic) input size, so an exported detector
takes images of any size and resizes them exactly as the reader does (to float rounding: a test
checks it against OpenCV), and brings its maps back to the input's size the same way. Matrix
products, gathers and one-hot encodings exist in TFLite and ONNX alike; an area resize does not.
"""

from __future__ import annotations

CUBIC_A = -0.75  # OpenCV's bicubic coefficient (TensorFlow's own bicubic uses -0.5)
AREA_SLIVER = 1e-3  # OpenCV's INTER_AREA ignores source-pixel overlaps thinner than this


def _area_weights(n_in, n_out):
    """`[n_out, n_in]` float32: each output pixel's share of the input pixels it covers.

    Overlaps are counted in integer units of 1/n_out px (output pixel i spans [i n_in, (i+1) n_in),
    input pixel j spans [j n_out, (j+1) n_out)), so they are exact without float64, which TFLite lacks.
    """
    import tensorflow as tf

    start = tf.range(n_out)[:, None] * n_in
    left = tf.range(n_in)[None, :] * n_out
    overlap = tf.nn.relu(tf.minimum(start + n_in, left + n_out) - tf.maximum(start, left))
    overlap = tf.cast(overlap, tf.float32)
    overlap = tf.where(overlap > AREA_SLIVER * tf.cast(n_out, tf.float32), overlap, tf.zeros_like(overlap))
    return overlap / tf.reduce_sum(overlap, axis=1, keepdims=True)


def _cubic_weights(n_in, n_out):
    """`[n_out, n_in]` float32: OpenCV's bicubic taps, with indices past an edge on the edge pixel."""
    import tensorflow as tf

    scale = tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32)
    x = (tf.range(n_out, dtype=tf.float32) + 0.5) * scale - 0.5
    first = tf.floor(x)
    f = x - first
    a = CUBIC_A
    w0 = ((a * (f + 1) - 5 * a) * (f + 1) + 8 * a) * (f + 1) - 4 * a
    w1 = ((a + 2) * f - (a + 3)) * f * f + 1
    w2 = ((a + 2) * (1 - f) - (a + 3)) * (1 - f) * (1 - f) + 1
    w3 = 1.0 - w0 - w1 - w2
    taps = tf.stack([w0, w1, w2, w3], axis=1)  # [n_out, 4]
    index = tf.cast(first, tf.int32)[:, None] + tf.range(-1, 3)[None, :]
    index = tf.clip_by_value(index, 0, n_in - 1)
    return tf.reduce_sum(tf.one_hot(index, n_in, dtype=tf.float32) * taps[..., None], axis=1)


def weights(n_in, n_out, area):
    """The `[n_out, n_in]` matrix of one axis; `area` (a bool tensor) picks area over bicubic."""
    import tensorflow as tf

    # Both built and one selected, not a tf.cond: branches become subgraphs that int8
    # quantization and some converters handle badly; the matrices cost next to nothing.
    return tf.where(area, _area_weights(n_in, n_out), _cubic_weights(n_in, n_out))


def resize(images, height, width, clip_min=0.0, clip_max=None):
    """Resizes `[N, H, W]` or `[N, H, W, C]` float32 images to `[N, height, width(, C)]` like the reader.

    Area averaging when the target is smaller than both sides, bicubic otherwise (the rule of
    `data.resize`, which resizes to squares; here any target). A side left at its size is copied exactly (its
    bicubic matrix is the identity).

    Args:
        clip_min, clip_max: bounds the result is clipped to (bicubic overshoots at edges); the
            reader clips images to [0, 1]; anomaly maps are clipped at 0 only.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    in_h, in_w = shape[1], shape[2]
    area = tf.logical_and(height < in_h, width < in_w)
    rows = weights(in_h, height, area)
    cols = weights(in_w, width, area)
    if images.shape.rank == 3:
        out = tf.einsum("ih,nhw,jw->nij", rows, images, cols)
    else:
        out = tf.einsum("ih,nhwc,jw->nijc", rows, images, cols)
    if clip_max is None:
        return tf.maximum(out, clip_min)
    return tf.clip_by_value(out, clip_min, clip_max)
