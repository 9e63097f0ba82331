"""Scoring new images with a trained run: score, decision, map and overlay per image."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from cae_keras import data, plots
from cae_keras.errors import DataError
from cae_keras.files import write_atomic, write_png, write_text_atomic
from cae_keras.runs import Run, as_run


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: Path
    name: str  # the output files' base name, unique among the inputs
    score: float
    defective: bool


def _tree_images(folder: Path) -> list[tuple[Path, str]]:
    """Every image under `folder`, sorted, with its sub-folder relative to `folder` ('' at the top)."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not data.is_system_file(Path(name)))  # walk in order
        sub = Path(current).relative_to(folder).as_posix()
        for name in sorted(files):
            path = Path(current) / name
            if data.is_system_file(path):
                continue
            if path.suffix.lower() not in data.IMAGE_EXTENSIONS:
                raise DataError(f"{path}: not an image file (expected one of {sorted(data.IMAGE_EXTENSIONS)})")
            found.append((path, "" if sub == "." else sub))
    return found


def expand_inputs(inputs: list[Path], recursive: bool = False) -> list[tuple[Path, str]]:
    """Image files from files and folders, in the order given, each with its sub-folder.

    A folder gives its own images; with `recursive`, also those of every sub-folder (a line, then
    a class, then images), each with its sub-folder relative to the folder given, so that outputs
    keep the tree. Files given directly have sub-folder ''.

    Raises:
        DataError: a path that does not exist, a folder with no images, a sub-folder where
            `recursive` is off, or a non-image file in a folder.
    """
    paths: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            if recursive:
                found = _tree_images(item)
            else:
                try:
                    found = [(path, "") for path in data.list_images(item)]
                except DataError as error:
                    if "sub-folder" in str(error):
                        raise DataError(f"{error}; use --recursive to score a tree of folders") from None
                    raise
            if not found:
                raise DataError(f"{item}: no images in this folder")
            paths += found
        elif item.is_file():
            if item.suffix.lower() not in data.IMAGE_EXTENSIONS:  # e.g. a 16-bit PPM, which PIL cuts to 8 bit
                raise DataError(f"{item}: not a supported image file (expected one of "
                                f"{sorted(data.IMAGE_EXTENSIONS)})")
            paths.append((item, ""))
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths


def output_names(paths: list[Path], folders: list[str] | None = None) -> list[str]:
    """Unique output names: `folder/stem` (the sub-folder kept, for recursive inputs), or the stem,
    or parent_stem where stems collide, or with an index after that."""
    folders = folders or [""] * len(paths)
    bases = [f"{folder}/{p.stem}" if folder else p.stem for p, folder in zip(paths, folders)]
    counts = Counter(bases)  # counted once: list.count here was quadratic in the image count
    names = [b if counts[b] == 1 or folder else f"{p.parent.name}_{p.stem}"
             for b, p, folder in zip(bases, paths, folders)]
    repeated = Counter(names)
    return [n if repeated[n] == 1 else f"{n}_{i}" for i, n in enumerate(names)]


@dataclasses.dataclass
class Scorer:
    """What predict needs from a model: its input size, its threshold, and maps + scores for images.

    `score` takes images at their own sizes (a list of `[H, W, 3] float32 in [0, 1]`) and returns
    each one's anomaly map at that size (`[H, W] float32 >= 0`) and the image scores `[N]`, which
    are computed at the model's size.
    """

    image_size: int
    threshold: float
    score: Callable[[list[np.ndarray]], tuple[list[np.ndarray], np.ndarray]]


def run_scorer(run: Run | Path) -> Scorer:
    """Scores with a run's detector (`cae_keras.detector`), the graph an export saves: images go in
    as uint8 at their own size (16-bit images are rounded to 8 bit, as for an export), images of
    one size together."""
    import tensorflow as tf

    run = as_run(run)
    detector = run.detector

    def score(images: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        maps, scores = [None] * len(images), np.zeros(len(images), np.float32)
        by_size: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(i)
        for indices in by_size.values():
            pixels = np.stack([np.round(images[i] * 255).astype(np.uint8) for i in indices])
            result = {k: v.numpy() for k, v in detector.detect(tf.constant(pixels)).items()}
            for j, i in enumerate(indices):
                maps[i], scores[i] = result["anomaly_map"][j], result["score"][j]
        return maps, scores

    return Scorer(run.config.recipe.image_size, run.threshold, score)


def exported_scorer(path: Path) -> Scorer:
    """Scores with an exported model (`cae-keras export`): images go in as uint8 at their own size,
    as on the line, one size per call."""
    from cae_keras.export import ExportedDetector

    detector = ExportedDetector(path)

    def score(images: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        results = [detector(np.round(image * 255).astype(np.uint8)[None]) for image in images]
        return [r["anomaly_map"][0] for r in results], np.array([r["score"][0] for r in results], np.float32)

    return Scorer(detector.image_size, detector.threshold, score)


def predict(scorer: Scorer, inputs: list[Path], out_dir: Path, save_maps: bool = False, batch_size: int = 32,
            progress: bool = True, recursive: bool = False) -> list[Prediction]:
    """Scores images; writes maps, overlays and `predictions.csv` to `out_dir` (with `recursive`,
    folders are walked and the outputs keep their sub-folders).

    Maps, overlays and `.npy` maps have the input image's own size (the model sees it resized to
    its square size; the map is resized back). A map is shown on a fixed scale: black at 0,
    brightest at twice the threshold, so maps of different images compare. Images are read and
    scored `batch_size` at a time, so memory stays flat however many there are.
    """
    from tqdm import tqdm  # text bars: a notebook without widget support shows them right too

    found = expand_inputs(inputs, recursive)
    images = [path for path, _ in found]
    names = output_names(images, [folder for _, folder in found])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = scorer.threshold
    results: list[Prediction] = []
    with tqdm(total=len(images), desc="predicting", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            pixels = [data.load_image(path) for path in chunk]
            maps, scores = scorer.score(pixels)
            for j, path in enumerate(chunk):
                name = names[start + j]
                write_png(out_dir / f"{name}_map.png", plots.colorize(maps[j], 2 * threshold))
                write_png(out_dir / f"{name}_overlay.png", plots.overlay(pixels[j], maps[j], 2 * threshold))
                if save_maps:
                    write_atomic(out_dir / f"{name}_map.npy",
                                 lambda tmp, m=maps[j]: np.save(tmp, m.astype(np.float32)))
                results.append(Prediction(path, name, float(scores[j]), bool(scores[j] > threshold)))
            bar.update(len(chunk))
    _write_csv(out_dir / "predictions.csv", results, threshold)
    return results


def _write_csv(path: Path, results: list[Prediction], threshold: float) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "name", "score", "threshold", "decision"])
    for r in results:
        writer.writerow([str(r.path), r.name, f"{r.score:.6g}", f"{threshold:.6g}",
                         "defective" if r.defective else "good"])
    write_text_atomic(path, buffer.getvalue())


def summary_table(results: list[Prediction], threshold: float) -> str:
    """A plain-text table of the predictions, for the terminal."""
    width = max([len(r.name) for r in results] + [5])
    lines = [f"{'image':<{width}}  {'score':>10}  decision (threshold {threshold:.4g})"]
    lines += [f"{r.name:<{width}}  {r.score:>10.4g}  {'DEFECTIVE' if r.defective else 'good'}" for r in results]
    flagged = sum(r.defective for r in results)
    lines.append(f"{flagged} of {len(results)} images flagged as defective")
    return "\n".join(lines)
