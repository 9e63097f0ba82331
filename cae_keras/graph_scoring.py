"""The package's one implementation of error maps, their blur and the image score, as TensorFlow
ops: the steps of `cae_keras.detector`, which every command runs and every export saves.

The maps are those of `cae_keras.maps` (l1, l2, ssim, msgms and combinations), which stays as the
readable NumPy/OpenCV reference for notebooks and tests. Every OpenCV filter they apply (Gaussian
blurs, the Prewitt gradients, `pyrDown`, the linear upsampling of MSGMS) is linear along each axis,
so on maps of a fixed size it is a constant matrix on each side: `out = A @ map @ B.T`. The
matrices are built here with NumPy from OpenCV's own kernels and border rules;
`tests/test_export.py` holds every map and score to the reference within 1e-5.
"""

from __future__ import annotations

import cv2
import numpy as np

from cae_keras import maps as error_maps
from cae_keras.metrics import SSIM_CONSTANTS, SSIM_SIGMA, SSIM_WINDOW

REFLECT_101 = cv2.BORDER_REFLECT_101  # OpenCV's default border: -1 -> 1
REFLECT = cv2.BORDER_REFLECT  # -1 -> 0


def filter_matrix(n: int, taps: np.ndarray, border: int) -> np.ndarray:
    """`[n, n]`: correlation of a length-n signal with centred `taps`, OpenCV's border rule."""
    matrix = np.zeros((n, n), np.float64)
    half = len(taps) // 2
    for i in range(n):
        for t, weight in enumerate(taps):
            matrix[i, cv2.borderInterpolate(i + t - half, n, border)] += weight
    return matrix


def gaussian_matrix(n: int, sigma: float, window: int | None = None, border: int = REFLECT_101) -> np.ndarray:
    """`[n, n]`: OpenCV's Gaussian blur of one axis (window from sigma as for float images if None)."""
    window = window or (int(round(sigma * 8 + 1)) | 1)
    return filter_matrix(n, cv2.getGaussianKernel(window, sigma, cv2.CV_64F).ravel(), border)


def pyr_down_matrix(n: int) -> np.ndarray:
    """`[(n + 1) // 2, n]`: `cv2.pyrDown` along one axis (5-tap binomial blur, every other sample)."""
    return filter_matrix(n, np.array([1, 4, 6, 4, 1], np.float64) / 16, REFLECT_101)[::2]


def linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """`[n_out, n_in]`: `cv2.resize(..., INTER_LINEAR)` along one axis (edge samples repeated)."""
    scale = n_in / n_out
    matrix = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        x = (i + 0.5) * scale - 0.5
        left = int(np.floor(x))
        fraction = x - left
        if left < 0:
            left, fraction = 0, 0.0
        if left >= n_in - 1:
            left, fraction = n_in - 1, 0.0
        matrix[i, left] += 1 - fraction
        matrix[i, min(left + 1, n_in - 1)] += fraction
    return matrix


def _constant(matrix: np.ndarray):
    import tensorflow as tf

    return tf.constant(matrix.astype(np.float32))


def _both_axes(matrix, images):
    """`matrix @ image @ matrix.T` for `[N, S, S]` or `[N, S, S, C]` images."""
    import tensorflow as tf

    if images.shape.rank == 3:
        return tf.einsum("ih,nhw,jw->nij", matrix, images, matrix)
    return tf.einsum("ih,nhwc,jw->nijc", matrix, images, matrix)


class GraphScoring:
    """The scoring of one run, for images of the model's size `S`: error map, blur, image score.

    Args:
        size: the model's image size S.
        method: the run's `scoring.ScoringMethod` (map, blur sigma, image score, map scales).

    Raises:
        ConfigError: an unknown map component, or a combination without its validation scales.
    """

    def __init__(self, size: int, method):
        self.size, self.method = size, method
        self.components = error_maps.check_scales(method.anomaly_map, method.map_scales)
        self.blur = _constant(gaussian_matrix(size, method.blur_sigma)) if method.blur_sigma > 0 else None
        if "ssim" in self.components:
            self.ssim_blur = _constant(gaussian_matrix(size, SSIM_SIGMA, SSIM_WINDOW, REFLECT))
        if "msgms" in self.components:  # the matrices of each scale of the gradient pyramid
            sizes = [size]
            for _ in range(error_maps.GMS_SCALES - 1):
                sizes.append((sizes[-1] + 1) // 2)
            self.pyramid = [_constant(pyr_down_matrix(n)) for n in sizes[:-1]]
            self.upsample = [_constant(linear_matrix(n, size)) for n in sizes]
            self.smooth = [_constant(filter_matrix(n, np.ones(3) / 3, REFLECT)) for n in sizes]
            self.difference = [_constant(filter_matrix(n, np.array([1.0, 0.0, -1.0]), REFLECT)) for n in sizes]

    def error_map(self, x, y):
        """`[N, S, S, 3]` x2 -> `[N, S, S]`: the run's anomaly map before the blur."""
        if len(self.components) == 1:
            return self._component(self.components[0], x, y)
        total = sum(self._component(c, x, y) / self.method.map_scales[c] for c in self.components)
        return total / len(self.components)

    def _component(self, name: str, x, y):
        import tensorflow as tf

        if name == "l1":
            return tf.reduce_mean(tf.abs(x - y), axis=-1)
        if name == "l2":
            return tf.reduce_mean(tf.square(x - y), axis=-1)
        if name == "ssim":
            return (1.0 - self._ssim(x, y)) / 2.0
        return self._msgms(x, y)

    def _ssim(self, x, y):
        import tensorflow as tf

        c1, c2 = SSIM_CONSTANTS
        blur = lambda a: _both_axes(self.ssim_blur, a)  # noqa: E731
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return tf.reduce_mean(ssim, axis=-1)

    def _msgms(self, x, y):
        import tensorflow as tf

        a, b = tf.reduce_mean(x, axis=-1), tf.reduce_mean(y, axis=-1)
        total = 0.0
        for scale in range(error_maps.GMS_SCALES):
            if scale:
                a = _both_axes(self.pyramid[scale - 1], a)
                b = _both_axes(self.pyramid[scale - 1], b)
            ga, gb = self._gradient(a, scale), self._gradient(b, scale)
            gms = (2 * ga * gb + error_maps.GMS_CONSTANT) / (ga**2 + gb**2 + error_maps.GMS_CONSTANT)
            up = self.upsample[scale]
            total += tf.einsum("ih,nhw,jw->nij", up, 1.0 - gms, up)
        return total / error_maps.GMS_SCALES

    def _gradient(self, gray, scale: int):
        import tensorflow as tf

        smooth, difference = self.smooth[scale], self.difference[scale]
        gx = tf.einsum("ih,nhw,jw->nij", smooth, gray, difference)  # Prewitt / 3, as maps.py
        gy = tf.einsum("ih,nhw,jw->nij", difference, gray, smooth)
        return tf.sqrt(gx**2 + gy**2)

    def anomaly_map(self, raw):
        """The blur of `scoring.blur_maps`: `[N, S, S]` -> `[N, S, S]`."""
        return raw if self.blur is None else _both_axes(self.blur, raw)

    def image_score(self, maps):
        """`scoring.image_scores` with the run's method: `[N, S, S]` -> `[N]`."""
        import tensorflow as tf

        flat = tf.reshape(maps, [tf.shape(maps)[0], self.size * self.size])
        if self.method.image_score == "max":
            return tf.reduce_max(flat, axis=1)
        k = max(1, round(self.method.top_k_fraction * self.size * self.size))
        return tf.reduce_mean(tf.math.top_k(flat, k).values, axis=1)


def blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's Gaussian blur (border reflect-101) of each `[H, W]` map: `[N, H, W]` -> float32."""
    import tensorflow as tf

    maps = np.asarray(maps, np.float32)
    if sigma <= 0:
        return maps
    rows = _constant(gaussian_matrix(maps.shape[1], sigma))
    cols = _constant(gaussian_matrix(maps.shape[2], sigma))
    return tf.einsum("ih,nhw,jw->nij", rows, tf.constant(maps), cols).numpy()


def component_scales(images: np.ndarray, reconstructions: np.ndarray, anomaly_map: str,
                     batch_size: int = 32) -> dict[str, float]:
    """Each component's mean over these (validation-normal) images: what a combination divides by."""
    import tensorflow as tf

    from cae_keras.scoring import ScoringMethod

    scales = {}
    for component in error_maps.parse(anomaly_map):
        graph = GraphScoring(images.shape[1], ScoringMethod(blur_sigma=0.0, anomaly_map=component))
        total = sum(float(tf.reduce_sum(graph.error_map(tf.constant(images[i:i + batch_size]),
                                                        tf.constant(reconstructions[i:i + batch_size]))))
                    for i in range(0, len(images), batch_size))
        scales[component] = total / (len(images) * images.shape[1] * images.shape[2])
    return scales
