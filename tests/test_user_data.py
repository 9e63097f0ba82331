"""Real users' data: every mask convention, every layout, bit depths, small or one-sided test sets.

Each situation was once a silently wrong result or a needless refusal; each test builds it from
small images it makes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cae_keras import data, files, stopping, thresholds
from cae_keras.calibration import FewValidationNormals
from cae_keras.cli import main
from cae_keras.errors import DataError
from cae_keras.evaluation import evaluate_run

TRUTH = np.zeros((32, 40), bool)
TRUTH[8:20, 10:24] = True


def _mask_file(tmp_path: Path, convention: str) -> Path:
    """TRUTH written the way one labelling convention writes masks."""
    path = tmp_path / ("mask.jpg" if convention == "jpeg" else "mask.png")
    if convention == "0/255":
        Image.fromarray(TRUTH.astype(np.uint8) * 255).save(path)
    elif convention == "0/1":
        Image.fromarray(TRUTH.astype(np.uint8)).save(path)
    elif convention == "class ids":  # two defect classes, ids 1 and 2
        ids = TRUTH.astype(np.uint8)
        ids[8:20, 17:24] *= 2
        Image.fromarray(ids).save(path)
    elif convention == "palette":  # a labelling tool's palette PNG: index 0 background (black)
        image = Image.fromarray(TRUTH.astype(np.uint8) * 3, "L").convert("P")
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 255, 255, 255] + [0] * 744)
        image.save(path)
    elif convention == "anti-aliased":  # gray edges from resizing: below half is outside
        values = TRUTH.astype(np.uint8) * 255
        values[7, 10:24] = 90
        values[8, 10:24] = 200
        Image.fromarray(values).save(path)
    elif convention == "colour":  # red defect on black, RGB
        rgb = np.zeros(TRUTH.shape + (3,), np.uint8)
        rgb[TRUTH, 0] = 255
        Image.fromarray(rgb).save(path)
    elif convention == "transparent":  # RGBA: a white layer, defect where opaque
        rgba = np.full(TRUTH.shape + (4,), 255, np.uint8)
        rgba[..., 3] = TRUTH * 255
        Image.fromarray(rgba).save(path)
    elif convention == "16 bit":
        cv2.imwrite(str(path), TRUTH.astype(np.uint16) * 65535)
    elif convention == "16 bit 0/1":
        cv2.imwrite(str(path), TRUTH.astype(np.uint16))
    elif convention == "jpeg":
        Image.fromarray(TRUTH.astype(np.uint8) * 255).save(path, quality=75)
    return path


CONVENTIONS = ["0/255", "0/1", "class ids", "palette", "anti-aliased", "colour", "transparent", "16 bit",
               "16 bit 0/1", "jpeg"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_every_mask_convention_reads_the_same_defect(tmp_path, convention):
    mask = data.load_mask(_mask_file(tmp_path, convention))
    assert mask.shape == TRUTH.shape
    if convention == "jpeg":  # lossy: the edges may move by a pixel, nothing far away appears
        assert (mask & TRUTH).sum() / (mask | TRUTH).sum() > 0.9
        assert not mask[:4].any() and not mask[-4:].any()
    else:
        assert np.array_equal(mask, TRUTH)


def test_several_masks_of_one_image_are_joined(tmp_path):
    first, second = np.zeros((32, 40), np.uint8), np.zeros((32, 40), np.uint8)
    first[:5, :5], second[-5:, -5:] = 255, 1
    Image.fromarray(first).save(tmp_path / "000.png")
    Image.fromarray(second).save(tmp_path / "001.png")
    mask = data.load_mask([tmp_path / "000.png", tmp_path / "001.png"])
    assert mask.sum() == 50 and mask[0, 0] and mask[-1, -1]


def test_an_empty_mask_is_an_error_naming_the_file_unless_allowed(tmp_path):
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(tmp_path / "empty_mask.png")
    with pytest.raises(DataError, match="empty_mask.png: the mask of a defective image holds no defect pixel"):
        data.load_mask(tmp_path / "empty_mask.png")
    assert not data.load_mask(tmp_path / "empty_mask.png", allow_empty=True).any()


def test_a_floating_point_mask_is_refused(tmp_path):
    Image.fromarray(TRUTH.astype(np.float32), "F").save(tmp_path / "mask.tif")
    with pytest.raises(DataError, match="mask.tif: floating-point mask"):
        data.load_mask(tmp_path / "mask.tif")


# --- bit depths -------------------------------------------------------------------------------

def test_16_bit_colour_is_read_at_full_precision(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    for name in ("rgb16.png", "rgb16.tif"):
        cv2.imwrite(str(tmp_path / name), rgb[..., ::-1])
        assert np.allclose(data.load_image(tmp_path / name), rgb / 65535.0, atol=1e-6), name
    rgba = np.concatenate([rgb, np.full((20, 24, 1), 65535, np.uint16)], axis=2)
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[..., [2, 1, 0, 3]])
    assert np.allclose(data.load_image(tmp_path / "rgba16.png"), rgb / 65535.0, atol=1e-6)


def test_dark_16_bit_gray_is_not_mistaken_for_8_bit(tmp_path):
    cv2.imwrite(str(tmp_path / "dark.png"), np.full((20, 20), 200, np.uint16))
    assert np.allclose(data.load_image(tmp_path / "dark.png"), 200 / 65535.0)


def test_8_bit_and_low_bit_depths_keep_their_values(tmp_path):
    gray = (np.arange(400).reshape(20, 20) % 256).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray8.png")
    assert np.allclose(data.load_image(tmp_path / "gray8.png")[..., 0], gray / 255.0)
    Image.fromarray(gray % 4, "L").convert("P").save(tmp_path / "p2.png", bits=2)
    assert data.load_image(tmp_path / "p2.png").shape == (20, 20, 3)


def test_32_bit_integer_images_are_refused(tmp_path):
    Image.fromarray(np.full((20, 20), 70000, np.int32), "I").save(tmp_path / "i32.tif")
    with pytest.raises(DataError, match="i32.tif: 32-bit integer image"):
        data.load_image(tmp_path / "i32.tif")


# --- small or one-sided test sets -------------------------------------------------------------

@pytest.fixture(scope="module")
def stats_run(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("stats") / "run"
    assert main(["train", "--data", str(tiny_dataset), "--category", "bottle", "--model", "pixel_stats",
                 "--run", str(run), "--image-size", "32"]) == 0
    return run


def _copy(tiny_dataset, tmp_path) -> Path:
    shutil.copytree(tiny_dataset, tmp_path / "root")
    return tmp_path / "root"


def test_mixed_0_1_and_0_255_masks_give_the_figures_of_all_0_255(stats_run, tiny_dataset, tmp_path):
    mixed = _copy(tiny_dataset, tmp_path)
    for index, path in enumerate(sorted((mixed / "bottle" / "ground_truth").rglob("*_mask.png"))):
        if index % 2:
            Image.fromarray((np.asarray(Image.open(path)) > 127).astype(np.uint8)).save(path)
    reference = evaluate_run(stats_run, progress=False).metrics
    figures = evaluate_run(stats_run, data_root=mixed, progress=False).metrics
    assert reference["pixel_auroc"] is not None
    for key in ("pixel_auroc", "aupro", "pixel_ap", "image_auroc"):
        assert figures[key] == reference[key], key


def test_a_test_set_without_defects_reports_false_alarms_and_null_f1(stats_run, tiny_dataset, tmp_path):
    only_good = _copy(tiny_dataset, tmp_path)
    for folder in (only_good / "bottle" / "test").iterdir():
        if folder.name != "good":
            shutil.rmtree(folder)
    shutil.rmtree(only_good / "bottle" / "ground_truth")
    m = evaluate_run(stats_run, data_root=only_good, progress=False).metrics
    assert m["image_f1"] is None and m["null_reasons"]["image_f1"] == "no defective test images"
    assert m["image_auroc"] is None and m["pixel_auroc"] is None and m["miss_rate"] is None
    assert 0.0 <= m["false_alarm_rate"] <= 1.0 and m["n_test_good"] == 4
    json.dumps(m, allow_nan=False)


def test_false_alarm_and_miss_rates_count_flagged_images(stats_run):
    m = evaluate_run(stats_run, progress=False).metrics
    evaluation = evaluate_run(stats_run, progress=False)
    scores, labels = evaluation.inference.scores, evaluation.test.labels
    assert m["false_alarm_rate"] == pytest.approx(np.mean(scores[labels == 0] > m["threshold"]))
    assert m["miss_rate"] == pytest.approx(np.mean(scores[labels == 1] <= m["threshold"]))
    types = np.array(evaluation.test.defect_types)
    for defect, values in m["per_defect"].items():
        assert values["miss_rate"] == pytest.approx(np.mean(scores[types == defect] <= m["threshold"]))


def test_evaluate_with_an_empty_mask_stops_or_counts_it_when_allowed(stats_run, tiny_dataset, tmp_path, capsys):
    root = _copy(tiny_dataset, tmp_path)
    mask = sorted((root / "bottle" / "ground_truth" / "contamination").iterdir())[0]
    Image.fromarray(np.zeros_like(np.asarray(Image.open(mask)))).save(mask)
    assert main(["evaluate", "--run", str(stats_run), "--data", str(root)]) == 2
    assert f"{mask}: the mask of a defective image holds no defect pixel" in capsys.readouterr().err
    m = evaluate_run(stats_run, data_root=root, progress=False, allow_empty_masks=True).metrics
    assert m["empty_masks"] == [str(mask)] and m["n_test_defective"] == 9


# --- the threshold from few validation normals ------------------------------------------------

def test_expected_false_alarm_rate_matches_a_simulation():
    rng = np.random.default_rng(0)
    for n in (2, 5, 20):
        trials = rng.normal(size=(20000, n + 1))
        thresholds_ = np.quantile(trials[:, :n], 0.99, axis=1)
        simulated = np.mean(trials[:, n] > thresholds_)
        assert thresholds.expected_false_alarm_rate(n, 0.99) == pytest.approx(simulated, abs=0.012), n
    assert thresholds.expected_false_alarm_rate(1000, 0.99) < 0.012


def test_train_warns_about_few_validation_normals_and_stores_the_rate(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.warns(FewValidationNormals, match="only 2 validation normals"):
        from cae_keras.config import TrainConfig
        from cae_keras.training import train

        train(TrainConfig(data=str(tiny_dataset), category="bottle", model="pixel_stats", image_size=32), run,
              verbose=1)
    calibration = json.loads((run / "calibration.json").read_text())
    assert len(calibration["validation_images"]) == 2
    assert calibration["expected_false_alarm_rate"] == pytest.approx(thresholds.expected_false_alarm_rate(2, 0.99))
    assert "expected false-alarm rate" in capsys.readouterr().out
    assert main(["train", "--data", str(tiny_dataset), "--category", "bottle", "--model", "pixel_stats", "--run",
                 str(tmp_path / "half"), "--image-size", "32", "--val-fraction", "0.5"]) == 0
    assert len(json.loads((tmp_path / "half" / "calibration.json").read_text())["validation_images"]) == 12


def test_train_reads_only_the_training_normals(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path)
    (root / "bottle" / "ground_truth" / "contamination" / "000_mask.png").unlink()  # a test problem
    assert main(["train", "--data", str(root), "--category", "bottle", "--model", "pixel_stats", "--run",
                 str(tmp_path / "run"), "--image-size", "32"]) == 0
    with pytest.raises(DataError, match="without its mask"):
        data.read_category(root, "bottle")


# --- layouts ----------------------------------------------------------------------------------

def _images(tiny_dataset, kind: str) -> list[Path]:
    return sorted((tiny_dataset / "bottle" / kind).rglob("*.png"))


def _put(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == source.suffix.lower():
        shutil.copy(source, target)
    else:
        Image.open(source).convert("RGB").save(target)
    return target


def _defects(tiny_dataset) -> list[tuple[Path, Path]]:
    pairs = []
    for image in _images(tiny_dataset, "test"):
        if image.parent.name != "good":
            pairs.append((image, tiny_dataset / "bottle" / "ground_truth" / image.parent.name /
                          f"{image.stem}_mask.png"))
    return pairs


def _normals_with_validation(folder: Path, train: list[Path], good: list[Path], test_folder: str) -> None:
    """20 training normals, the other 4 as the layout's validation normals, the good test images."""
    for part, paths in (("train/good", train[:20]), ("validation/good", train[20:]), (f"{test_folder}/good", good)):
        for path in paths:
            _put(path, folder / part / path.name)


def _build(layout: str, tiny_dataset: Path, root: Path) -> Path:
    """The tiny dataset rewritten in another layout; returns the category folder."""
    train, good, defects = _images(tiny_dataset, "train"), _images(tiny_dataset, "test/good"), _defects(tiny_dataset)
    folder = root / "part"
    if layout == "mvtec_ad2":
        _normals_with_validation(folder, train, good, "test_public")
        for n, (image, mask) in enumerate(defects):
            _put(image, folder / "test_public" / "bad" / f"{n:03d}.png")
            _put(mask, folder / "test_public" / "ground_truth" / "bad" / f"{n:03d}_mask.png")
    elif layout == "btad":
        for path in train:
            _put(path, folder / "train" / "ok" / f"{path.stem}.bmp")
        for path in good:
            _put(path, folder / "test" / "ok" / f"{path.stem}.bmp")
        for n, (image, mask) in enumerate(defects):
            _put(image, folder / "test" / "ko" / f"{n:04d}.bmp")
            _put(mask, folder / "ground_truth" / "ko" / f"{n:04d}.png")
    elif layout == "visa":
        rows = [("object", "split", "label", "image", "mask")]
        for n, path in enumerate(train + good):
            name = f"part/Data/Images/Normal/{n:04d}.JPG"
            _put(path, root / name)
            rows.append(("part", "train" if n < len(train) else "test", "normal", name, ""))
        for n, (image, mask) in enumerate(defects):
            name, mask_name = f"part/Data/Images/Anomaly/{n:03d}.JPG", f"part/Data/Masks/Anomaly/{n:03d}.png"
            _put(image, root / name)
            Image.fromarray((np.asarray(Image.open(mask)) > 127).astype(np.uint8)).save(
                _put(mask, root / mask_name))  # VisA's masks are 0/1
            rows.append(("part", "test", "anomaly", name, mask_name))
        (root / "split_csv").mkdir(parents=True)
        with open(root / "split_csv" / "1cls.csv", "w", newline="") as file:
            csv.writer(file).writerows(rows)
    elif layout == "loco":
        _normals_with_validation(folder, train, good, "test")
        for n, (image, mask) in enumerate(defects):
            _put(image, folder / "test" / "logical_anomalies" / f"{n:03d}.png")
            full = np.asarray(Image.open(mask))
            top, bottom = full.copy(), full.copy()
            top[full.shape[0] // 2:], bottom[: full.shape[0] // 2] = 0, 0
            for index, part in enumerate((top, bottom)):
                target = folder / "ground_truth" / "logical_anomalies" / f"{n:03d}" / f"{index:03d}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(part).save(target)
    elif layout == "folder":
        for path in train + good:
            _put(path, folder / "normal" / f"{path.parent.parent.name}_{path.name}")
        for n, (image, mask) in enumerate(defects):
            _put(image, folder / "abnormal" / f"{n:03d}.png")
            _put(mask, folder / "mask" / f"{n:03d}.png")
    return folder


@pytest.mark.parametrize("layout", ["mvtec_ad2", "btad", "visa", "loco", "folder"])
def test_each_layout_is_detected_and_read(tiny_dataset, tmp_path, layout):
    folder = _build(layout, tiny_dataset, tmp_path)
    category = data.read_category(tmp_path, "part")
    assert category.layout == layout and data.list_categories(tmp_path) == ["part"]
    assert data.read_category(tmp_path, "part", layout=layout).train == category.train
    n_defects = len(_defects(tiny_dataset))
    assert sum(item.is_defective for item in category.test) == n_defects
    # the folder layout holds out every fifth of its 28 normals as a test normal
    n_train = {"mvtec_ad2": 20, "loco": 20, "folder": 28 - len(range(0, 28, 5))}.get(layout, 24)
    assert len(category.train) == n_train
    test = data.load_test_set(category, 32, progress=False)
    assert test.masks[test.labels == 1].reshape(n_defects, -1).any(axis=1).all()
    train, validation, source = data.validation_split(category, 0.1, 0)
    if layout in ("mvtec_ad2", "loco"):  # the layout's validation folder replaces the hold-out
        assert len(validation) == 4 and train == category.train and "validation folder" in source
    else:
        assert len(train) + len(validation) == len(category.train)
    assert not set(train) & {item.path for item in category.test}


def test_the_loco_masks_of_one_image_are_joined(tiny_dataset, tmp_path):
    _build("loco", tiny_dataset, tmp_path)
    test = data.load_test_set(data.read_category(tmp_path, "part"), 48, progress=False)
    reference = data.load_test_set(data.read_category(tiny_dataset, "bottle"), 48, progress=False)
    assert np.array_equal(test.masks[test.labels == 1], reference.masks[reference.labels == 1])


def test_an_unknown_layout_names_the_folder(tmp_path):
    (tmp_path / "part" / "pictures").mkdir(parents=True)
    with pytest.raises(DataError, match="part: no known dataset layout"):
        data.read_category(tmp_path, "part")


def test_folder_layout_with_only_normal_images_trains_quietly(tiny_dataset, tmp_path):
    for path in _images(tiny_dataset, "train"):
        _put(path, tmp_path / "data" / "part" / "normal" / path.name)
    result = subprocess.run(
        [sys.executable, "-m", "cae_keras", "train", "--data", str(tmp_path / "data"), "--category", "part",
         "--model", "pixel_stats", "--run", str(tmp_path / "run"), "--image-size", "32"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": ""})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.keras").is_file()
    # The package's own lines and progress bars only: no TensorFlow start-up lines.
    noise = [line for line in result.stderr.splitlines()
             if any(marker in line for marker in ("I0000", "E0000", "W0000", "absl", "oneDNN", "cuda", "cuInit"))]
    assert not noise, noise
    assert "cae-keras: warning: only 2 validation normals" in result.stderr


# --- predict on a tree ------------------------------------------------------------------------

def test_predict_recursive_keeps_the_sub_folders(stats_run, tiny_dataset, tmp_path, capsys):
    tree = tmp_path / "tree"
    for line, kind in (("line1", "good"), ("line2", "broken_small")):
        for path in sorted((tiny_dataset / "bottle" / "test" / kind).iterdir())[:2]:
            _put(path, tree / line / "caps" / path.name)
    assert main(["predict", "--run", str(stats_run), str(tree), "--out", str(tmp_path / "out")]) == 2
    assert "--recursive" in capsys.readouterr().err
    assert main(["predict", "--run", str(stats_run), str(tree), "--out", str(tmp_path / "out"), "--recursive"]) == 0
    for line in ("line1", "line2"):
        assert len(list((tmp_path / "out" / line / "caps").glob("*_overlay.png"))) == 2
    with open(tmp_path / "out" / "predictions.csv") as file:
        assert len(list(csv.DictReader(file))) == 4


# --- stopping and durability ------------------------------------------------------------------

def test_a_stop_inside_training_waits_for_the_boundary_and_then_raises():
    with pytest.raises(KeyboardInterrupt):
        with stopping.stop_at_boundaries():
            stopping.request_stop(signal.SIGTERM, None)  # recorded, not raised here
            assert stopping.stop_requested()
    assert not stopping.stop_requested()
    with pytest.raises(KeyboardInterrupt):  # outside training: at once
        stopping.request_stop(signal.SIGTERM, None)


def test_atomic_writes_are_flushed_to_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: synced.append(descriptor) or real_fsync(descriptor))
    files.write_text_atomic(tmp_path / "a" / "metrics.json", "{}")
    assert (tmp_path / "a" / "metrics.json").read_text() == "{}" and len(synced) == 2  # the file, then its folder


def test_atomic_writes_get_the_permissions_of_a_plainly_created_file(tmp_path):
    previous = os.umask(0o022)
    try:
        files.write_text_atomic(tmp_path / "metrics.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)
    mode = (tmp_path / "metrics.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644  # not the 0600 of mkstemp


# --- ground truth that a rule or a resize would drop ------------------------------------------

def test_labelled_pixels_the_rule_leaves_out_are_warned_about(tmp_path):
    voc = np.zeros((32, 40), np.uint8)
    voc[8:20, 10:24] = 255  # a defect drawn in 255 ...
    voc[24:30, 30:38] = 1  # ... and another labelled 1, far from it: a mask mixing two conventions
    Image.fromarray(voc).save(tmp_path / "mixed.png")
    with pytest.warns(data.MaskWarning, match=r"mixed.png: 48 labelled pixels \(values 1-127\) are not counted"):
        assert data.load_mask(tmp_path / "mixed.png").sum() == 12 * 14
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", data.MaskWarning)  # anti-aliased edges are not a second label
        data.load_mask(_mask_file(tmp_path, "anti-aliased"))


def test_a_defect_lost_in_the_resize_is_warned_about_and_listed(stats_run, tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path)
    mask = sorted((root / "bottle" / "ground_truth" / "broken_small").iterdir())[0]
    single = np.zeros_like(np.asarray(Image.open(mask)))
    single[20, 20] = 255  # one defect pixel at 48 px, between the rows and columns 32 px sampling keeps
    Image.fromarray(single).save(mask)
    with pytest.warns(data.MaskWarning, match="keep no defect pixel at 32 px"):
        m = evaluate_run(stats_run, data_root=root, progress=False).metrics
    assert m["masks_lost_at_size"] == [str(mask)]


def test_hidden_folders_do_not_change_the_detected_layout(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path)
    (root / "bottle" / "ground_truth" / "contamination" / ".ipynb_checkpoints").mkdir()
    assert data.read_category(root, "bottle").layout == "mvtec"


def test_predict_refuses_a_file_of_an_unsupported_type(stats_run, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "part.ppm")
    assert main(["predict", "--run", str(stats_run), str(tmp_path / "part.ppm"), "--out", str(tmp_path / "o")]) == 2
    assert "part.ppm: not a supported image file" in capsys.readouterr().err
