"""Every figure of the evaluation protocol (`shared/design/evaluation.md`), each in one function.

Labels: 0 = good, 1 = defect. Maps and masks are at the evaluation resolution.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None where it is undefined (only one class present)."""
    labels = np.asarray(labels).ravel()
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, np.asarray(scores).ravel()))


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of the image scores `[N]` against image labels `[N]` (good 0, any defect 1)."""
    return _auroc(labels, scores)


@dataclasses.dataclass
class RankedPixels:
    """Every test pixel sorted by anomaly score, highest first, so that all pixel metrics share one
    sort (38 M pixels for 583 images at 256 px: the sort is most of their cost)."""

    order: np.ndarray  # [P] indices into the flattened maps
    scores: np.ndarray  # [P] sorted scores, descending
    labels: np.ndarray  # [P] bool: defect pixel
    image: np.ndarray  # [P] index of the image each pixel belongs to

    @classmethod
    def build(cls, masks: np.ndarray, maps: np.ndarray) -> "RankedPixels":
        flat = maps.reshape(-1)
        order = np.argsort(flat)[::-1]
        pixels_per_image = flat.size // len(maps)
        return cls(order, flat[order], masks.reshape(-1)[order], (order // pixels_per_image).astype(np.int32))

    def subset(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of the chosen images' pixels (`images` `[N] bool`), still sorted."""
        chosen = images[self.image]
        return self.scores[chosen], self.labels[chosen]


def _counts_at_thresholds(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each distinct threshold, for scores sorted descending."""
    last = np.append(np.flatnonzero(np.diff(scores)), scores.size - 1)  # the last pixel of each run of ties
    true_positives = np.cumsum(labels, dtype=np.int64)[last]
    return true_positives, last + 1 - true_positives


def _sorted_auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC from descending scores, ties handled as scikit-learn does; None if one class is missing."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    tp, fp = _counts_at_thresholds(scores, labels)
    return float(np.trapezoid(np.append(0.0, tp / positives), np.append(0.0, fp / negatives)))


def pixel_auroc(masks: np.ndarray, maps: np.ndarray, ranked: RankedPixels | None = None) -> float | None:
    """ROC AUC over all test pixels pooled. masks `[N, H, W] bool`, maps `[N, H, W]`."""
    ranked = ranked or RankedPixels.build(masks, maps)
    return _sorted_auroc(ranked.scores, ranked.labels)


def pixel_ap(masks: np.ndarray, maps: np.ndarray, ranked: RankedPixels | None = None) -> float | None:
    """Average precision over all test pixels pooled (scikit-learn's definition); None with no defect pixel."""
    ranked = ranked or RankedPixels.build(masks, maps)
    positives = int(ranked.labels.sum())
    if positives == 0:
        return None
    tp, fp = _counts_at_thresholds(ranked.scores, ranked.labels)
    precision = tp / (tp + fp)
    recall_steps = np.diff(np.append(0, tp)) / positives
    return float(np.sum(recall_steps * precision))


def pro_curve(masks: np.ndarray, maps: np.ndarray, ranked: RankedPixels | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The per-region-overlap curve: (false-positive rates, PRO values), thresholds descending.

    For each threshold: FPR = flagged good pixels / all good pixels (good pixels of every image),
    PRO = mean over every ground-truth connected component (8-connectivity) of the share of the
    component that is flagged. Computed with one sort, as in MVTec's official evaluation code.
    """
    ranked = ranked or RankedPixels.build(masks, maps)
    structure = np.ones((3, 3), dtype=int)
    pro_change = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=structure)
        n_regions += n
        if n:
            sizes = np.bincount(labelled.ravel())
            inside = labelled > 0
            pro_change[i][inside] = 1.0 / sizes[labelled[inside]]
    good = ~ranked.labels
    fpr = np.cumsum(good, dtype=np.int64) / good.sum()
    pro = np.cumsum(pro_change.reshape(-1)[ranked.order]) / n_regions
    # One point per distinct threshold: the last index of each run of equal scores.
    keep = np.append(np.diff(ranked.scores) != 0, True)
    fpr = np.concatenate([[0.0], fpr[keep], [1.0]])
    pro = np.concatenate([[0.0], pro[keep], [1.0]])
    return fpr, pro


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x in [0, x_max], interpolating y at x_max."""
    inside = x <= x_max
    xs, ys = x[inside], y[inside]
    if xs[-1] < x_max:
        y_at = np.interp(x_max, x, y)
        xs, ys = np.append(xs, x_max), np.append(ys, y_at)
    return float(np.trapezoid(ys, xs))


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3, ranked: RankedPixels | None = None
          ) -> float | None:
    """Area under the PRO curve up to FPR `fpr_limit`, divided by `fpr_limit` (1.0 = perfect).

    Returns None when there is no defect region or no good pixel.
    """
    if not masks.any() or masks.all():
        return None
    fpr, pro = pro_curve(masks.astype(bool), maps, ranked)
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


def image_f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float | None:
    """F1 of the decision `score > threshold` against the labels.

    None without defective images (F1 is undefined there: see `false_alarm_rate`); 0.0 when
    there are defects and none is flagged.
    """
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return None
    predicted = np.asarray(scores) > threshold
    tp = np.sum(predicted & labels)
    fp = np.sum(predicted & ~labels)
    fn = np.sum(~predicted & labels)
    return float(2 * tp / (2 * tp + fp + fn))


def flagged_share(scores: np.ndarray, threshold: float) -> float | None:
    """The share of images with `score > threshold`, in [0, 1]; None for no images.

    On good images it is the false-alarm rate; 1 minus it on defective images is the miss rate.
    """
    scores = np.asarray(scores)
    return float(np.mean(scores > threshold)) if scores.size else None


def mse_per_image(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Mean squared error of each image, over all pixels and channels. -> `[N]`."""
    return ((images - reconstructions) ** 2).reshape(len(images), -1).mean(axis=1)


def psnr_per_image(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """PSNR of each image in dB with peak 1.0: 10 log10(1 / MSE). -> `[N]`."""
    mse = np.maximum(mse_per_image(images, reconstructions), 1e-12)
    return 10.0 * np.log10(1.0 / mse)


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_CONSTANTS = (0.01**2, 0.03**2)  # (k1 L)^2, (k2 L)^2 for a peak L of 1.0


def ssim_map(image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """The SSIM map (Wang et al. 2004: Gaussian window 11, sigma 1.5, peak 1.0) averaged over channels.

    `[H, W, C]` x2 -> `[H, W]` in [-1, 1], 1 where the images agree.
    """
    c1, c2 = SSIM_CONSTANTS
    x, y = image.astype(np.float64), reconstruction.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return (ssim.mean(axis=-1) if ssim.ndim == 3 else ssim).astype(np.float32)


def ssim_per_image(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Mean SSIM of each image over the window's valid region (as `tf.image.ssim` computes it). -> `[N]`."""
    return np.array([ssim_map(x, y)[5:-5, 5:-5].mean() for x, y in zip(images, reconstructions)])


def per_defect(
    defect_types: list[str], scores: np.ndarray, masks: np.ndarray, maps: np.ndarray,
    ranked: RankedPixels | None = None, threshold: float | None = None,
) -> dict[str, dict[str, float | None]]:
    """Image AUROC (that defect type vs good), pixel AUROC and, given the threshold, the miss rate
    (the share of that type's images not flagged), for each defect type.

    Pixel AUROC of a type pools the pixels of its images and of the good images.
    """
    ranked = ranked or RankedPixels.build(masks, maps)
    types = np.asarray(defect_types)
    good = types == "good"
    result = {}
    for defect in sorted(set(defect_types) - {"good"}):
        chosen = good | (types == defect)
        result[defect] = {
            "image_auroc": image_auroc((types[chosen] == defect).astype(int), scores[chosen]),
            "pixel_auroc": _sorted_auroc(*ranked.subset(chosen)),
        }
        if threshold is not None:
            result[defect]["miss_rate"] = 1.0 - flagged_share(scores[types == defect], threshold)
    return result


def mean_or_none(values: np.ndarray | None) -> float | None:
    """The mean as a plain float, None for no values (metrics.json holds no NaN)."""
    if values is None or len(values) == 0:
        return None
    value = float(np.mean(values))
    return value if np.isfinite(value) else None
