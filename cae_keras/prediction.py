"""Scoring new images with a trained run: score, decision, map and overlay per image."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

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
    stems = [p.stem for p in paths]
    names = [s if stems.count(s) == 1 else f"{p.parent.name}_{s}" for p, s in zip(paths, stems)]
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]


def predict(run_dir: Path, inputs: list[Path], out_dir: Path, save_maps: bool = False,
            batch_size: int | None = None, progress: bool = True) -> list[Prediction]:
    """Scores images with a run's model; writes maps, overlays and `predictions.csv` to `out_dir`.

    A map is shown on a fixed scale: black at 0, brightest at twice the threshold, so maps of
    different images compare. Images are read and scored in batches, so memory stays flat.
    """
    from tqdm.auto import tqdm

    paths, config = open_run(run_dir)
    spec = models.get_spec(config.model)
    model = models.load_model(paths.model)
    threshold = float(read_calibration(paths)["threshold"])
    images = expand_inputs(inputs)
    names = output_names(images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = batch_size or config.batch_size
    results: list[Prediction] = []
    with tqdm(total=len(images), desc="predicting", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            pixels = data.load_images(chunk, config.image_size)
            inference = scoring.infer(model, spec.output, pixels, config.blur_sigma, batch)
            for j, path in enumerate(chunk):
                name = names[start + j]
                anomaly_map = inference.maps[j]
                write_png(out_dir / f"{name}_map.png", plots.colorize(anomaly_map, 2 * threshold))
                write_png(out_dir / f"{name}_overlay.png", plots.overlay(pixels[j], anomaly_map, 2 * threshold))
                if save_maps:
                    write_atomic(out_dir / f"{name}_map.npy",
                                 lambda tmp, m=anomaly_map: np.save(tmp, m.astype(np.float32)))
                score = float(inference.scores[j])
                results.append(Prediction(path, name, score, score > threshold))
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
