"""Scoring new images with a trained run: score, decision, map and overlay per image."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from cae_keras import data, models, plots, scoring
from cae_keras.errors import DataError
from cae_keras.files import write_atomic, write_png, write_text_atomic
from cae_keras.runs import open_run, read_calibration


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: Path
    name: str  # the output files' base name, unique among the inputs
    score: float
    defective: bool


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Image files from files and folders (a folder's images, not recursive), in the order given.

    Raises:
        DataError: a path that does not exist, or a folder with no images.
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = data.list_images(item)
            if not found:
                raise DataError(f"{item}: no images in this folder")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths


def output_names(paths: list[Path]) -> list[str]:
    """Unique base names: the stem, or parent_stem where stems collide, or with an index after that."""
    stems = Counter(p.stem for p in paths)  # counted once: list.count here was quadratic in the image count
    names = [p.stem if stems[p.stem] == 1 else f"{p.parent.name}_{p.stem}" for p in paths]
    repeated = Counter(names)
    return [n if repeated[n] == 1 else f"{n}_{i}" for i, n in enumerate(names)]


@dataclasses.dataclass
class Scorer:
    """What predict needs from a model: its input size, its threshold, and maps + scores for images."""

    image_size: int
    threshold: float
    score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # [N, S, S, 3] in [0, 1] -> maps, scores


def run_scorer(run_dir: Path) -> Scorer:
    """Scores with a run folder's Keras model."""
    paths, config = open_run(run_dir)
    spec = models.get_spec(config.model)
    model = models.load_model(paths.model)
    calibration = read_calibration(paths)
    method = scoring.ScoringMethod.of(config, calibration)

    def score(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inference = scoring.infer(model, spec.output, pixels, method, config.batch_size)
        return inference.maps, inference.scores

    return Scorer(config.image_size, float(calibration["threshold"]), score)


def exported_scorer(path: Path) -> Scorer:
    """Scores with an exported model (`cae-keras export`): images go in as uint8, as on the line."""
    from cae_keras.export import ExportedDetector

    detector = ExportedDetector(path)

    def score(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = detector(np.round(pixels * 255).astype(np.uint8))
        return result["anomaly_map"], result["score"]

    return Scorer(detector.image_size, detector.threshold, score)


def predict(scorer: Scorer, inputs: list[Path], out_dir: Path, save_maps: bool = False, batch_size: int = 32,
            progress: bool = True) -> list[Prediction]:
    """Scores images; writes maps, overlays and `predictions.csv` to `out_dir`.

    A map is shown on a fixed scale: black at 0, brightest at twice the threshold, so maps of
    different images compare. Images are read and scored `batch_size` at a time, so memory stays
    flat however many there are.
    """
    from tqdm.auto import tqdm

    images = expand_inputs(inputs)
    names = output_names(images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = scorer.threshold
    results: list[Prediction] = []
    with tqdm(total=len(images), desc="predicting", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            pixels = data.load_images(chunk, scorer.image_size)
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
