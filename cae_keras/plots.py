"""Figures. Each function returns a `matplotlib.figure.Figure` and never calls `plt.show()`."""

from __future__ import annotations

import io

import cv2
import numpy as np
from matplotlib import cm, colormaps, colors
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_curve as sk_roc_curve


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as an image when it is a cell's value.

    Figures made without pyplot have no display hook unless a notebook runs `%matplotlib inline`
    first; without one, a cell ending in a figure would print only `<Figure size ...>`.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, dpi=90, format="png")
        return buffer.getvalue()


def loss_curve(history: list[dict], title: str = "Training loss") -> Figure:
    """Training and validation loss per epoch, from `history.csv` rows."""
    figure = NotebookFigure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    epochs = [row["epoch"] for row in history]
    for key, label in (("loss", "training"), ("val_loss", "validation normals")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            axes.plot(epochs, [np.nan if v is None else v for v in values], label=label)
    axes.set(xlabel="epoch", ylabel="MSE loss", title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no fractional epochs
    if axes.lines:
        finite = [v for line in axes.lines for v in line.get_ydata() if np.isfinite(v) and v > 0]
        if finite and max(finite) / min(finite) > 10:  # a log scale only where it spans decades
            axes.set_yscale("log")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no gradient training (one pass over the data)", ha="center", transform=axes.transAxes)
    return figure


def roc_curve(labels: np.ndarray, scores: np.ndarray, auroc: float | None, title: str = "Image-level ROC") -> Figure:
    """The ROC curve of image scores, with its AUROC in the legend."""
    figure = NotebookFigure(figsize=(4.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    if auroc is not None:
        fpr, tpr, _ = sk_roc_curve(labels, scores)
        axes.plot(fpr, tpr, label=f"AUROC = {auroc:.3f}")
    axes.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    axes.set(xlabel="false-positive rate", ylabel="true-positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right")
    return figure


def score_histogram(scores: np.ndarray, defect_types: list[str], threshold: float,
                    title: str = "Image scores") -> Figure:
    """Histograms of good and of each defect type's image scores, with the decision threshold."""
    figure = NotebookFigure(figsize=(6.5, 4), layout="constrained")
    axes = figure.add_subplot()
    types = np.asarray(defect_types)
    bins = np.linspace(min(scores.min(), threshold), max(scores.max(), threshold), 30)
    for name in ["good"] + sorted(set(defect_types) - {"good"}):
        chosen = scores[types == name]
        if len(chosen):  # outlines, so that overlapping groups stay readable
            axes.hist(chosen, bins=bins, histtype="step", lw=1.8, label=f"{name} ({len(chosen)})")
    axes.axvline(threshold, color="k", ls="--", label="threshold (validation normals)")
    axes.set(xlabel="image score (max of blurred anomaly map)", ylabel="images", title=title)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts are whole images
    axes.legend(fontsize=8)
    return figure


def colorize(anomaly_map: np.ndarray, vmax: float) -> np.ndarray:
    """`[H, W]` map to `[H, W, 3] float32 in [0, 1]` (inferno colormap, 0..vmax)."""
    normalized = np.clip(anomaly_map / max(vmax, 1e-12), 0.0, 1.0)
    return colormaps["inferno"](normalized)[..., :3].astype(np.float32)


def overlay_outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ground-truth outline drawn in green on an RGB (or gray, made RGB) image in [0, 1]."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, (0.0, 1.0, 0.0), max(1, image.shape[0] // 128))
    return rgb


def overlay(image: np.ndarray, anomaly_map: np.ndarray, vmax: float, mask: np.ndarray | None = None,
            alpha: float = 0.5) -> np.ndarray:
    """The image with the coloured map blended in, and the ground-truth outline in green if given."""
    blended = (1 - alpha) * image + alpha * colorize(anomaly_map, vmax)
    if mask is not None:
        blended = overlay_outline(blended, mask)
    return np.clip(blended, 0, 1).astype(np.float32)


def image_grid(images: list[np.ndarray], titles: list[str], columns: int = 4, cmap: str = "magma",
               shared_scale: str | None = None) -> Figure:
    """Images (RGB `[H, W, 3]` or maps `[H, W]`) in a grid with titles.

    Args:
        shared_scale: for maps of one kind, a label: every `[H, W]` panel is then drawn on one
            scale (the smallest to the largest value among them) with one colour bar so labelled.
            Without it each map is scaled on its own (for panels of different units).
    """
    rows = -(-len(images) // columns)
    figure = NotebookFigure(figsize=(2.6 * columns + (0.8 if shared_scale else 0), 2.6 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.ravel():
        axes.axis("off")
    maps = [image for image in images if image.ndim == 2]
    norm = colors.Normalize(min(m.min() for m in maps), max(m.max() for m in maps)) if shared_scale and maps else None
    for axes, image, title in zip(grid.ravel(), images, titles):
        axes.imshow(np.clip(image, 0, 1) if image.ndim == 3 else image, cmap=None if image.ndim == 3 else cmap,
                    norm=None if image.ndim == 3 else norm)
        axes.set_title(title, fontsize=9)
    if norm is not None:
        figure.colorbar(cm.ScalarMappable(norm, colormaps[cmap]), ax=grid, shrink=0.8, label=shared_scale)
    return figure


def gallery(images: np.ndarray, maps: np.ndarray, masks: np.ndarray, defect_types: list[str],
            scores: np.ndarray, reconstructions: np.ndarray | None, vmax: float, per_type: int = 1) -> Figure:
    """One row per example (good first, then each defect type): input, reconstruction, ground
    truth, map, overlay.

    Every map is drawn on one scale, 0 to `vmax`, shown by a shared colour bar, so that maps of
    different images compare. The ground-truth mask has its own column (an outline would hide a
    small defect at a small image size). The examples are the first `per_type` images of each
    type in file order, not picked by score.
    """
    types = np.asarray(defect_types)
    rows = [i for name in ["good"] + sorted(set(defect_types) - {"good"})
            for i in np.flatnonzero(types == name)[:per_type]]
    columns = ["input"] + (["reconstruction"] if reconstructions is not None else []) + [
        "ground truth", "anomaly map", "overlay"]
    figure = NotebookFigure(figsize=(2.4 * len(columns) + 0.8, 2.4 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, i in enumerate(rows):
        truth = np.repeat(masks[i][..., None].astype(np.float32), 3, axis=2)
        panels = [images[i]] + ([reconstructions[i]] if reconstructions is not None else []) + [
            truth, colorize(maps[i], vmax), overlay(images[i], maps[i], vmax)]
        for c, panel in enumerate(panels):
            axes = grid[r, c]
            axes.imshow(panel)
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(columns[c], fontsize=9)
        grid[r, 0].set_ylabel(f"{types[i]}\nscore {scores[i]:.3g}", fontsize=9)
    scale = cm.ScalarMappable(colors.Normalize(0.0, vmax), colormaps["inferno"])
    figure.colorbar(scale, ax=grid[:, -2:], shrink=0.8, label="anomaly map (one scale for all)")
    return figure


def sets_side_by_side(rows: list[dict], vmax: float = 2.0) -> Figure:
    """One row per dataset: the input, its ground truth and each model's anomaly map.

    Each row is a dict with `set` (a name), `image` `[S, S, 3]` in [0, 1], `mask` `[S, S]` bool,
    `defect` (its type), `maps` {model: `[S, S]` anomaly map divided by that model's threshold}
    and `figures` {model: (image AUROC, pixel AUROC), None where undefined}. Dividing by the threshold puts models on one scale: 1 is where
    the model would start to flag the image, whatever units its map has.
    """
    model_names = list(rows[0]["maps"])
    columns = ["input", "ground truth"] + model_names
    figure = NotebookFigure(figsize=(2.5 * len(columns) + 0.9, 2.6 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        truth = np.repeat(row["mask"][..., None].astype(np.float32), 3, axis=2)
        panels = [row["image"], truth] + [colorize(row["maps"][name], vmax) for name in model_names]
        for c, panel in enumerate(panels):
            axes = grid[r, c]
            axes.imshow(np.clip(panel, 0, 1))
            axes.set_xticks([])
            axes.set_yticks([])
            if c >= 2:
                image_auroc, pixel_auroc = row["figures"][model_names[c - 2]]
                axes.set_title(f"{model_names[c - 2]}\nimage AUROC {_figure(image_auroc)}, "
                               f"pixel {_figure(pixel_auroc)}", fontsize=8)
            elif c == 1:
                axes.set_title(f"ground truth: {row['defect']}", fontsize=8)
            elif r == 0:
                axes.set_title("input", fontsize=9)
        grid[r, 0].set_ylabel(row["set"], fontsize=9)
    scale = cm.ScalarMappable(colors.Normalize(0.0, vmax), colormaps["inferno"])
    figure.colorbar(scale, ax=grid[:, 2:], shrink=0.8, label="anomaly map / the model's threshold")
    return figure


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def comparison_bars(rows: list[dict], keys: tuple[str, ...] = ("image_auroc", "pixel_auroc", "aupro"),
                    title: str = "Detection by model") -> Figure:
    """Grouped bars of detection figures, one group per model, each labelled with its value
    ('n/a' where it could not be computed). The legend sits outside the bars."""
    figure = NotebookFigure(figsize=(max(7, 1.4 * len(rows) + 3), 4.2), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(keys)
    positions = np.arange(len(rows))
    for i, key in enumerate(keys):
        values = [row.get(key) for row in rows]
        bars = axes.bar(positions + (i - (len(keys) - 1) / 2) * width, [v or 0.0 for v in values], width, label=key)
        axes.bar_label(bars, ["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=6, rotation=90,
                       padding=2)
    axes.set_xticks(positions, [row["model"] for row in rows], rotation=20)
    axes.set(ylim=(0, 1.12), ylabel="score (1 = perfect)", title=title)
    axes.axhline(0.5, color="k", lw=0.6, ls=":", label="0.5: chance for the AUROCs (not for AU-PRO)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return figure


def save(figure: Figure, path) -> None:
    """Saves a figure as PNG atomically."""
    from cae_keras.files import write_atomic

    write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
