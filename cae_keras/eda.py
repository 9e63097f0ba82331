"""Exploring a dataset before modelling it: counts, intensities and texture statistics."""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from cae_keras.data import Category
from cae_keras.plots import NotebookFigure


def counts(category: Category) -> dict[str, int]:
    """Number of images per split and defect type, e.g. {'train/good': 209, 'test/good': 20, ...}."""
    table = {"train/good": len(category.train)}
    for item in category.test:
        key = f"test/{item.defect_type}"
        table[key] = table.get(key, 0) + 1
    return table


def local_variance(gray: np.ndarray, window: int = 7) -> np.ndarray:
    """Variance of intensity in a `window` x `window` neighbourhood. `[H, W]` -> `[H, W]`."""
    mean = cv2.blur(gray, (window, window))
    return np.maximum(cv2.blur(gray * gray, (window, window)) - mean**2, 0.0)


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude. `[H, W]` -> `[H, W]`."""
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))


def log_spectrum(gray: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|) with the zero frequency in the centre. `[H, W]` -> `[H, W]`."""
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))))


def to_gray(image: np.ndarray) -> np.ndarray:
    """`[H, W, 3]` in [0, 1] to `[H, W] float32` luminance."""
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)


def intensity_histograms(good: np.ndarray, defective: np.ndarray, bins: int = 64) -> Figure:
    """Per-channel intensity histograms (density) of good vs defective images `[N, H, W, 3]`."""
    figure = NotebookFigure(figsize=(12, 3.2), layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    for c, name in enumerate(("red", "green", "blue")):
        axes = figure.add_subplot(1, 3, c + 1)
        for images, label in ((good, "good"), (defective, "defective")):
            axes.hist(images[..., c].ravel(), bins=edges, density=True, histtype="step", label=label, lw=1.5)
        axes.set(title=f"{name} channel", xlabel="intensity", yscale="log")
    axes.legend()
    return figure


def texture_figure(images: np.ndarray, titles: list[str], masks: list[np.ndarray | None]) -> Figure:
    """For each image: the image, local variance, gradient magnitude and Fourier spectrum.

    Masks, where given, are drawn as green outlines on the first three columns.
    """
    from cae_keras.plots import overlay_outline

    columns = ("image", "local variance (7x7)", "gradient magnitude", "log Fourier spectrum")
    figure = NotebookFigure(figsize=(11, 2.8 * len(images)), layout="constrained")
    grid = figure.subplots(len(images), 4, squeeze=False)
    for r, (image, title, mask) in enumerate(zip(images, titles, masks)):
        gray = to_gray(image)
        panels = (image, local_variance(gray), gradient_magnitude(gray), log_spectrum(gray))
        for c, panel in enumerate(panels):
            axes = grid[r, c]
            if panel.ndim == 2:  # coloured before any outline, so every row has the same colours
                scaled = np.clip(panel / max(np.percentile(panel, 99.5), 1e-9), 0.0, 1.0)
                panel = colormaps["magma"](scaled)[..., :3].astype(np.float32)
            shown = overlay_outline(np.clip(panel, 0, 1), mask) if mask is not None and c < 3 else panel
            axes.imshow(np.clip(shown, 0, 1))
            axes.set_xticks([]), axes.set_yticks([])
            if r == 0:
                axes.set_title(columns[c], fontsize=9)
        grid[r, 0].set_ylabel(title)
    return figure
