"""`patch_nn`: each patch of a test image against its nearest neighbour among the training normals.

The idea of SPADE (Cohen & Hoshen, 2020) and PatchCore (Roth et al., CVPR 2022), with hand-made
features instead of a network pretrained on ImageNet, so that nothing is downloaded and nothing is
trained by gradient descent:

1. **Local features.** Every 4 x 4 px cell (at 256 px; the grid is always `GRID` x `GRID`) is
   described by opponent colour (luma, red - green, yellow - blue), the luma's gradient (x, y,
   magnitude) and its local contrast, each at three Gaussian scales (sigma 1, 2 and 4 px at
   256 px): 21 numbers, standardised over the training normals. A cell's descriptor joins those
   of its 3 x 3 neighbourhood (189 numbers), projected by PCA of the training cells to `DIMS`.
2. **A memory of the normals' cells**, searched in one of two ways:
   - `position`: each test cell against the cells of every memorised training image within
     +- `radius` cells of the same place. On an aligned part a defect is what no normal image
     shows *there*, even if it looks normal elsewhere (a piece of the rim on the bottle's base).
   - `anywhere`: against a random sample of all training cells, wherever they lie: for parts at
     any angle and for textures.
3. **The anomaly map** is the distance to the nearest memorised cell, optionally density-
   normalised: divided by that cell's own distance to the nearest cell of other training images
   (plus the median of those), as the local outlier factor (Breunig et al., SIGMOD 2000) does, so
   that a test cell matched to a look that is rare among the normals (a reflection on a tyre's
   tread) counts less than one matched to a common look. Bilinearly upsampled to the image size,
   divided by its mean on the validation normals; optionally plus `pixel_stats`' map
   (|x - mean| / std per pixel) divided by its own validation mean: on aligned parts the two
   kinds of evidence differ (a colour slightly off at one place vs. a structure seen nowhere near).
   The package then blurs the map and takes its maximum, as for every model.

Which search, whether the distances are density-normalised and whether the per-pixel statistics
are added is chosen when the model is fitted, on the validation normals with synthetic anomalies
pasted onto the object (`cae_keras.anomalies`), never on test labels: see `fit_patch_nn`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cae_keras.models.pixel_stats import pixel_statistics, pixel_statistics_map
from cae_keras.models.spec import ModelSpec

GRID = 64
"""Feature cells per side, whatever the image size (4 px cells at 256 px)."""
DIMS = 32
"""Descriptor size after PCA (keeps about 97 % of the variance on the real sets tried)."""
SCALES = (1.0, 2.0, 4.0)
"""Gaussian scales of the features, in px at 256 px."""
N_FEATURES = 7 * len(SCALES)
POSITION_MEMORY = 1024
"""At most this many training images are memorised for the `position` search (8 MB each at
float16; search time grows with it). 1024 rather than 256: on magnetic tile's 685 normals the
validation criterion rose from 0.673 to 0.712 with all of them memorised."""
ANYWHERE_MEMORY = 16384
"""Cells memorised for the `anywhere` search (a random sample of all training cells)."""
RADIUS = 2
"""The `position` search looks this many cells around the same place (+-8 px at 256 px)."""
SEARCHES = ("position", "anywhere")
NO_MATCH = 1e30
"""The squared distance given to a shift that leaves the grid (no memorised cell there)."""


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _blur(x, sigma: float):
    """Separable Gaussian blur of `[B, H, W, C]`, reflecting at the borders."""
    import tensorflow as tf

    kernel = _gaussian_kernel(sigma)
    pad = len(kernel) // 2
    channels = x.shape[-1]
    rows = tf.constant(np.tile(kernel.reshape(-1, 1, 1, 1), (1, 1, channels, 1)))
    cols = tf.constant(np.tile(kernel.reshape(1, -1, 1, 1), (1, 1, channels, 1)))
    x = tf.pad(x, [[0, 0], [pad, pad], [0, 0], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "VALID")
    x = tf.pad(x, [[0, 0], [0, 0], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "VALID")


def _gradients(luma):
    """Central differences of `[B, H, W, 1]`, replicating the border: (gx, gy)."""
    import tensorflow as tf

    padded = tf.pad(luma, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    gx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2.0
    gy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2.0
    return gx, gy


def cell_features(images, image_size: int):
    """The 21 raw features of every cell. `[B, S, S, 3] float32 in [0, 1]` -> `[B, GRID, GRID, 21]`."""
    import tensorflow as tf

    r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
    opponent = tf.concat([(r + g + b) / 3.0, r - g, (r + g) / 2.0 - b], axis=-1)
    scale = image_size / 256.0
    channels = []
    for sigma in SCALES:
        sigma_px = max(sigma * scale, 0.35)
        smooth = _blur(opponent, sigma_px)
        luma = smooth[..., :1]
        gx, gy = _gradients(luma)
        gx, gy = gx * sigma_px, gy * sigma_px  # comparable across scales
        contrast = tf.sqrt(tf.maximum(_blur(opponent[..., :1] ** 2, sigma_px) - luma**2, 0.0) + 1e-8)
        channels += [smooth, gx, gy, tf.sqrt(gx**2 + gy**2 + 1e-12), contrast]
    features = tf.concat(channels, axis=-1)
    if image_size % GRID == 0 and image_size > GRID:  # each cell the mean of its pixels
        cell = image_size // GRID
        features = tf.nn.avg_pool2d(features, cell, cell, "VALID")
    elif image_size != GRID:  # the features are already smooth at the cell's scale; TFLite has no area resize
        features = tf.image.resize(features, [GRID, GRID], method="bilinear")
    return tf.ensure_shape(features, [None, GRID, GRID, N_FEATURES])  # static, also in a graph traced for any size


def neighbourhoods(features):
    """Each cell with its 3 x 3 neighbours (borders replicated): `[B, G, G, C]` -> `[B, G, G, 9C]`."""
    import tensorflow as tf

    padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    size = features.shape[1]
    parts = [padded[:, dy:dy + size, dx:dx + size] for dy in range(3) for dx in range(3)]
    return tf.concat(parts, axis=-1)


@functools.cache
def _layer_class():
    """Defined lazily so that importing this module does not import Keras."""
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="cae_keras")
    class PatchNearestNeighbour(keras.layers.Layer):
        """Distance of each cell's descriptor to its nearest memorised normal cell: `[B, S, S]`.

        Weights are set by `fit_patch_nn`, not by gradient descent.
        """

        def __init__(self, image_size: int, search: str = "position", memory_size: int = 1,
                     radius: int = RADIUS, **kwargs):
            super().__init__(**kwargs)
            self.image_size, self.search, self.memory_size, self.radius = image_size, search, memory_size, radius

        def build(self, input_shape):
            def weight(name, shape, dtype="float32"):
                return self.add_weight(shape=shape, initializer="zeros", trainable=False, name=name, dtype=dtype)

            self.feature_mean = weight("feature_mean", (N_FEATURES,))
            self.feature_std = weight("feature_std", (N_FEATURES,))
            self.pca_mean = weight("pca_mean", (9 * N_FEATURES,))
            self.pca = weight("pca", (9 * N_FEATURES, DIMS))
            # Stored in the layout the search multiplies with, so that no transposed or shifted copy
            # of it is made (a frozen export would hold every such copy as a constant).
            shape = (GRID * GRID, DIMS, self.memory_size) if self.search == "position" else (DIMS, self.memory_size)
            self.memory = weight("memory", shape, "float16")  # half the file size; distances in float32
            # Each memorised cell's distance to its nearest cell of other training images: how
            # common its look is among the normals (see `fit_patch_nn`, density normalisation).
            self.memory_radius = weight("memory_radius", shape[:1] + shape[2:] if self.search == "position"
                                        else (self.memory_size,))
            self.radius_offset = weight("radius_offset", ())
            self.density = weight("density", ())  # 1: divide by the matched cell's radius + offset; 0: raw
            size = self.image_size
            self.pixel_mean = weight("pixel_mean", (size, size, 3))
            self.pixel_std = weight("pixel_std", (size, size, 3))
            self.scales = weight("scales", (2,))  # each map's mean on the validation normals
            self.statistics_weight = weight("statistics_weight", ())

        def descriptors(self, images):
            """`[B, S, S, 3]` in [0, 1] -> `[B, GRID, GRID, DIMS]` float32."""
            features = (cell_features(images, self.image_size) - self.feature_mean) / self.feature_std
            return tf.tensordot(neighbourhoods(features) - self.pca_mean, self.pca, axes=1)

        def nearest_distances(self, queries):
            """Squared distance to the nearest memorised cell: `[B, G, G, D]` -> `[B, G, G]`."""
            return self.nearest(queries)[0]

        def nearest(self, queries):
            """Squared distance to the nearest memorised cell and that cell's radius, each `[B, G, G]`."""
            memory = tf.cast(self.memory, tf.float32)
            queries_sq = tf.reduce_sum(queries**2, axis=-1)
            if self.search == "anywhere":  # memory [D, M]
                memory_sq = tf.reduce_sum(memory**2, axis=0)

                def one_image(query):  # [G, G, D]; one image at a time bounds memory use
                    distances = memory_sq - 2.0 * tf.matmul(tf.reshape(query, [-1, DIMS]), memory)
                    nearest = tf.reduce_min(distances, -1)
                    radius = tf.gather(self.memory_radius, tf.argmin(distances, -1))
                    return tf.reshape(nearest, [GRID, GRID]), tf.reshape(radius, [GRID, GRID])

                nearest, radius = tf.map_fn(one_image, queries, fn_output_signature=(tf.float32, tf.float32))
                return nearest + queries_sq, radius
            # position: memory [G*G, D, M]. For each shift d, the query at p is compared with the
            # memory at p + d: shift the queries by -d, compare place by place, shift back.
            r = self.radius
            memory_sq = tf.reduce_sum(memory**2, axis=1, keepdims=True)  # [G*G, 1, M]
            padded = tf.pad(queries, [[0, 0], [r, r], [r, r], [0, 0]])
            best = best_radius = None
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    moved = padded[:, r - dy:r - dy + GRID, r - dx:r - dx + GRID]  # moved[p'] = query[p' - d]
                    by_place = tf.reshape(tf.transpose(moved, [1, 2, 0, 3]), [GRID * GRID, -1, DIMS])
                    distances = memory_sq - 2.0 * tf.matmul(by_place, memory)  # [G*G, B, M]
                    nearest = tf.reduce_min(distances, axis=-1)
                    radius = tf.gather(self.memory_radius, tf.argmin(distances, axis=-1), batch_dims=1)

                    def back(x, fill):  # to the query's place; a shift past the border finds nothing there
                        x = tf.transpose(tf.reshape(x, [GRID, GRID, -1]), [2, 0, 1])
                        x = tf.pad(x, [[0, 0], [r, r], [r, r]], constant_values=fill)
                        return x[:, r + dy:r + dy + GRID, r + dx:r + dx + GRID]

                    # a large finite fill, not inf: ONNX converters may lower the selects below to
                    # arithmetic, where inf * 0 is NaN (every patch_nn ONNX map came back NaN)
                    nearest, radius = back(nearest, NO_MATCH), back(radius, 0.0)
                    if best is None:
                        best, best_radius = nearest, radius
                    else:
                        closer = nearest < best
                        best, best_radius = tf.where(closer, nearest, best), tf.where(closer, radius, best_radius)
            return best + queries_sq, best_radius

        def distance_maps(self, images):
            """`[B, S, S, 2]`: each pixel's distance to its nearest memorised cell, raw and density-
            normalised, i.e. divided by that cell's radius + `radius_offset` (as the local outlier
            factor does: a test cell whose nearest normal is itself rare among the normals, such as
            a reflection, counts less)."""
            squared, radius = self.nearest(self.descriptors(images))
            distances = tf.sqrt(tf.maximum(squared, 0.0))
            maps = tf.stack([distances, distances / (radius + self.radius_offset)], axis=-1)
            if self.image_size != GRID:
                maps = tf.image.resize(maps, [self.image_size, self.image_size], "bilinear")
            return maps

        def call(self, images):
            maps = self.distance_maps(images)
            distances = tf.where(self.density > 0.5, maps[..., 1], maps[..., 0])
            statistics = pixel_statistics_map(images, self.pixel_mean, self.pixel_std)  # pixel_stats' own map
            return distances / self.scales[0] + self.statistics_weight * statistics / self.scales[1]

        def get_config(self):
            return {**super().get_config(), "image_size": self.image_size, "search": self.search,
                    "memory_size": self.memory_size, "radius": self.radius}

    return PatchNearestNeighbour


def build_patch_nn(image_size: int, search: str = "position", memory_size: int = 1):
    """The `patch_nn` model: `[N, S, S, 3] float32 in [0, 1]` -> anomaly map `[N, S, S] float32 >= 0`.

    Built empty (its memory holds `memory_size` zero entries); `fit_patch_nn` fills it.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = _layer_class()(image_size, search, memory_size, name="patch_nn")(inputs)
    return keras.Model(inputs, outputs, name="patch_nn")


PCA_SAMPLE = 50_000
"""Training cells the PCA is computed from."""


def _in_batches(function, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """`function` over `[N, S, S, 3] uint8` images in batches, each scaled to [0, 1] first."""
    return np.concatenate([np.asarray(function(images[start:start + batch_size].astype(np.float32) / 255.0))
                           for start in range(0, len(images), batch_size)])


def _set_memory(model, layer_weights: dict) -> None:
    layer = model.get_layer("patch_nn")
    for name, value in layer_weights.items():
        getattr(layer, name).assign(np.asarray(value, dtype=getattr(layer, name).dtype))


def _candidate(image_size: int, search: str, weights: dict, memory: np.ndarray, radius: np.ndarray):
    model = build_patch_nn(image_size, search, memory.shape[-1])
    _set_memory(model, {**weights, "memory": memory, "memory_radius": radius,
                        "radius_offset": float(np.median(radius))})
    return model


def _memory_for(search: str, descriptors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What a search memorises of `[N, G, G, D]` training descriptors, in the layer's layout
    (`[G * G, D, M]` for position, `[D, M]` for anywhere), and the training image of each entry `[M]`."""
    if search == "position":
        keep = np.sort(rng.permutation(len(descriptors))[:POSITION_MEMORY])
        return np.ascontiguousarray(descriptors[keep].reshape(len(keep), -1, DIMS).transpose(1, 2, 0)), keep
    cells = descriptors.reshape(-1, DIMS)
    keep = np.sort(rng.permutation(len(cells))[:ANYWHERE_MEMORY])
    return np.ascontiguousarray(cells[keep].T), keep // (GRID * GRID)


RADIUS_REFERENCE = 128
"""Training images a memorised cell's radius is measured against (at most), for the position search."""


def _memory_radius(search: str, memory: np.ndarray, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each memorised cell's distance to its nearest cell of other training images, in the layout
    of `memory_radius`: `[G * G, M]` (position) or `[M]` (anywhere).

    Cells of even-numbered images are measured against those of odd-numbered ones and the other
    way round, so that no cell meets itself or its own image's overlapping neighbours; for the
    position search against at most `RADIUS_REFERENCE` images of the other half (the search's
    cost grows with the product).
    """
    import tensorflow as tf

    halves = [np.flatnonzero(images % 2 == parity) for parity in (0, 1)]
    if search == "anywhere":
        cells = tf.constant(memory.T)  # [M, D]
        radius = np.zeros(memory.shape[1], np.float32)
        for mine, other in (halves, halves[::-1]):
            reference = tf.gather(cells, other)
            reference_sq = tf.reduce_sum(reference**2, axis=-1)
            for start in range(0, len(mine), 4096):
                query = tf.gather(cells, mine[start:start + 4096])
                squared = (tf.reduce_sum(query**2, axis=-1, keepdims=True) + reference_sq
                           - 2.0 * tf.matmul(query, reference, transpose_b=True))
                radius[mine[start:start + 4096]] = np.sqrt(np.maximum(tf.reduce_min(squared, -1).numpy(), 0.0))
        return radius
    radius = np.zeros(memory.shape[::2], np.float32)  # [G * G, M]
    for mine, other in (halves, halves[::-1]):
        other = np.sort(rng.permutation(other)[:RADIUS_REFERENCE])
        model = build_patch_nn(int(GRID), "position", len(other))  # only the search is used
        layer = model.get_layer("patch_nn")
        layer.memory.assign(memory[..., other].astype(np.float16))
        search = tf.function(layer.nearest_distances)
        queries = memory[..., mine].transpose(2, 0, 1).reshape(len(mine), GRID, GRID, DIMS)
        for start in range(0, len(mine), 8):
            squared = search(tf.constant(queries[start:start + 8].astype(np.float32))).numpy()
            radius[:, mine[start:start + 8]] = np.sqrt(np.maximum(squared, 0.0)).reshape(-1, GRID * GRID).T
    return radius


def _validation_set(val_images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation normals and copies of them with synthetic anomalies on the object: (images, masks, labels)."""
    import tensorflow as tf

    from cae_keras.anomalies import object_masks, synthesize

    allowed = tf.constant(object_masks(val_images)[..., None].astype(np.float32))
    copies, masks = [], []
    round_ = 0
    # Each round gives about half the images an anomaly: at least 4 rounds, and more (up to 16)
    # until there are as many anomalous copies as normals.
    while round_ < 4 or (round_ < 16 and sum(map(len, copies)) < len(val_images)):
        augmented, mask = synthesize(tf.constant(val_images), tf.constant(seed * 7919 + round_, tf.int64), allowed)
        has = np.asarray(mask).reshape(len(val_images), -1).any(axis=1)
        copies.append(np.asarray(augmented)[has])
        masks.append(np.asarray(mask)[has, ..., 0] > 0.5)
        round_ += 1
    anomalous, anomalous_masks = np.concatenate(copies), np.concatenate(masks)
    images = np.concatenate([val_images, anomalous])
    all_masks = np.concatenate([np.zeros(val_images.shape[:3], bool), anomalous_masks])
    labels = np.concatenate([np.zeros(len(val_images), int), np.ones(len(anomalous), int)])
    return images, all_masks, labels


FIGURE_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AU-PRO"}


def _figures(maps: np.ndarray, masks: np.ndarray, labels: np.ndarray, blur_sigma: float) -> dict:
    from cae_keras import metrics, scoring

    blurred = scoring.blur_maps(maps, blur_sigma)
    ranked = metrics.RankedPixels.build(masks, blurred)
    return {"image_auroc": metrics.image_auroc(labels, scoring.image_scores(blurred)),
            "pixel_auroc": metrics.pixel_auroc(masks, blurred, ranked),
            "aupro": metrics.aupro(masks, blurred, ranked=ranked)}


def fit_patch_nn(train_images: np.ndarray, val_images: np.ndarray, image_size: int, blur_sigma: float,
                 seed: int = 0, verbose: bool = True):
    """Fits `patch_nn` to the training normals and chooses its search on the validation normals.

    Eight candidates, each search with its distances raw or density-normalised, alone or with the
    per-pixel statistics added, are scored on the validation normals together with copies of them
    carrying synthetic anomalies on the object (`cae_keras.anomalies`); the one with the highest
    mean of image AUROC, pixel AUROC and AU-PRO there is kept. Each map is divided by its mean on
    the validation normals before they are added, so that neither wins by its units. No test
    image is read.

    Args:
        train_images: `[N, S, S, 3] uint8` training normals, N >= 2.
        val_images: `[V, S, S, 3] float32 in [0, 1]` validation normals.
        blur_sigma: the run's anomaly-map blur, in px, used for the selection figures.

    Returns:
        (the fitted Keras model, a dict saying what each candidate scored and which was kept).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    say = print if verbose else (lambda *args, **kwargs: None)
    raw = _in_batches(tf.function(lambda x: cell_features(x, image_size)), train_images)
    feature_mean = raw.mean(axis=(0, 1, 2))
    feature_std = raw.std(axis=(0, 1, 2)) + 1e-3  # a constant feature (gray images' colour) stays finite
    context = np.asarray(neighbourhoods(tf.constant((raw - feature_mean) / feature_std)))
    del raw
    cells = context.reshape(-1, context.shape[-1])
    sample = cells[rng.permutation(len(cells))[:PCA_SAMPLE]]
    pca_mean = sample.mean(axis=0)
    _, singular, axes = np.linalg.svd(sample - pca_mean, full_matrices=False)
    pca = axes[:DIMS].T
    descriptors = ((context - pca_mean) @ pca).astype(np.float32)
    del context, cells
    weights = {"feature_mean": feature_mean, "feature_std": feature_std, "pca_mean": pca_mean, "pca": pca}
    kept = float((singular[:DIMS] ** 2).sum() / (singular**2).sum())
    say(f"patch_nn: {len(train_images)} training normals described ({kept:.1%} of the variance in {DIMS} dims)")

    pixel_mean, pixel_std = pixel_statistics(train_images[start:start + 32] / np.float32(255.0)
                                             for start in range(0, len(train_images), 32))
    weights.update(pixel_mean=pixel_mean, pixel_std=pixel_std, scales=np.ones(2), statistics_weight=0.0)
    images, masks, labels = _validation_set(val_images, seed)
    normals = labels == 0
    say(f"patch_nn: choosing the search and the evidence on {int(normals.sum())} validation normals and "
        f"{int(labels.sum())} copies with synthetic anomalies")
    statistics = np.asarray(pixel_statistics_map(tf.constant(images), pixel_mean, pixel_std))
    statistics_scale = float(statistics[normals].mean())
    candidates, fitted = {}, {}
    for search in SEARCHES:
        memory, source_images = _memory_for(search, descriptors, rng)
        model = _candidate(image_size, search, weights, memory, _memory_radius(search, memory, source_images, rng))
        layer_maps = tf.function(model.get_layer("patch_nn").distance_maps)
        both = np.concatenate([layer_maps(tf.constant(images[start:start + 16])).numpy()
                               for start in range(0, len(images), 16)])
        for density in (False, True):
            distances = both[..., int(density)]
            distance_scale = float(distances[normals].mean())
            fitted[search, density] = (model, distance_scale)
            for with_statistics in (False, True):
                name = search + (" / density" if density else "") + (" + pixel statistics" if with_statistics else "")
                maps = distances / distance_scale + (statistics / statistics_scale if with_statistics else 0.0)
                figures = _figures(maps, masks, labels, blur_sigma)
                known = [value for value in figures.values() if value is not None]
                candidates[name] = {"search": search, "density": density, "pixel_statistics": with_statistics,
                                    **figures, "mean": float(np.mean(known)) if known else None}
                say(f"  {name:39s} " + "  ".join(
                    f"{FIGURE_NAMES[key]} {'n/a' if value is None else f'{value:.3f}'}" for key, value in figures.items()))
    scored = [name for name in candidates if candidates[name]["mean"] is not None]
    # Without any figure to compare (no synthetic anomaly could be placed), keep the first
    # candidate: the position search alone.
    best = max(scored, key=lambda name: candidates[name]["mean"]) if scored else "position"
    model, distance_scale = fitted[candidates[best]["search"], candidates[best]["density"]]
    _set_memory(model, {"scales": [distance_scale, statistics_scale], "density": float(candidates[best]["density"]),
                        "statistics_weight": float(candidates[best]["pixel_statistics"])})
    say(f"patch_nn: kept '{best}'")
    record = {"kept": best, "rule": "highest mean of image AUROC, pixel AUROC and AU-PRO on validation "
              "normals plus copies with synthetic anomalies",
              "candidates": candidates}
    return model, record


def _fit(config, train_images, val_images, verbose=True):
    """Fills the memory and chooses the search with a run's config (see `fit_patch_nn`)."""
    return fit_patch_nn(train_images, val_images, config.recipe.image_size, config.scoring.blur_sigma,
                        config.recipe.seed, verbose=bool(verbose))


SPEC = ModelSpec("patch_nn", "each patch against its nearest training-normal patch (SPADE/PatchCore-style, "
                 "hand-made multi-scale features, no training)",
                 build_patch_nn, reconstructs=False, stride=1, fit=_fit, register=_layer_class)
