"""Exported models take uint8 images and give the Keras model's maps and scores."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from cae_keras import data, export, models, prediction, runs, scoring
from cae_keras.cli import main
from cae_keras.config import TrainConfig
from cae_keras.training import train

TOLERANCE = {"savedmodel": 1e-4, "tflite": 1e-4, "onnx": 1e-4, "tflite-int8": None}


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="seed_cae", image_size=32, epochs=1,
                         batch_size=8)
    return train(config, tmp_path_factory.mktemp("export") / "run", verbose=0)


@pytest.fixture(scope="module")
def uint8_images(tiny_dataset):
    paths = data.read_category(tiny_dataset, "bottle").test[:5]
    return np.round(data.load_images([p.path for p in paths], 32) * 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_exported_maps_match_the_keras_model(run, uint8_images, tmp_path, fmt):
    config = runs.load_config(run.config)
    reference = scoring.infer(models.load_model(run.model), "reconstruction", uint8_images / np.float32(255),
                              config.scoring.blur_sigma)
    path = export.export_run(run.root, fmt, tmp_path / f"model.{fmt}")
    result = export.ExportedDetector(path)(uint8_images)
    difference = np.abs(result["anomaly_map"] - reference.maps).max()
    if TOLERANCE[fmt] is not None:
        assert difference < TOLERANCE[fmt]
        assert np.abs(result["score"] - reference.scores).max() < TOLERANCE[fmt]
    else:  # int8 network, float map: within a fiftieth of the map's range
        assert difference < 0.02 * reference.maps.max()
        assert np.abs(result["score"] - reference.scores).max() < 0.02 * reference.scores.max()
        check = json.loads((tmp_path / f"model.{fmt}.json").read_text())["int8_check"]
        assert check["images"] >= 2 and check["decisions_flipped"] >= 0
    threshold = runs.read_calibration(run)["threshold"]
    # score and threshold are compared in float in every format, int8 included
    assert list(result["defective"]) == list(result["score"] > threshold)


@pytest.fixture(scope="module")
def odd_sizes(tiny_dataset):
    """A test image of the tiny set (48 px) at sizes around the model's 32: larger by a non-integer
    factor, smaller, and far from square, as float images of 8-bit values."""
    image = data.load_image(data.read_category(tiny_dataset, "bottle").test[-1].path)
    shapes = {"larger": (77, 77), "smaller": (20, 20), "non-square": (24, 90), "tall": (70, 33)}
    return {name: np.round(data.resize_to(image, *shape) * 255) / 255 for name, shape in shapes.items()}


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_every_format_matches_predict_on_images_of_any_size(run, odd_sizes, tmp_path, fmt):
    """The map comes back at the input's own size and equals `predict --run`'s (resize in, model,
    map, blur, score, resize back), within 1e-4, whatever the input's size and shape."""
    path = export.export_run(run.root, fmt, tmp_path / f"model.{fmt}")
    exported, reference = prediction.exported_scorer(path), prediction.run_scorer(run.root)
    for name, image in odd_sizes.items():
        maps, scores = exported.score([image])
        expected_maps, expected_scores = reference.score([image])
        assert maps[0].shape == image.shape[:2], name
        assert np.abs(maps[0] - expected_maps[0]).max() < 1e-4, name
        assert np.abs(scores - expected_scores).max() < 1e-4, name


@pytest.mark.parametrize("anomaly_map,image_score,fmt", [("msgms+ssim", "top_k_mean", "savedmodel"),
                                                         ("ssim", "max", "savedmodel"),
                                                         ("l2", "top_k_mean", "tflite"),
                                                         ("msgms", "max", "onnx")])
def test_every_scoring_method_is_exported(tiny_dataset, odd_sizes, tmp_path, anomaly_map, image_score, fmt):
    """Runs scored with any error map and image score export, and match `predict --run`."""
    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="seed_cae", image_size=32, epochs=1,
                         batch_size=8, anomaly_map=anomaly_map, image_score=image_score)
    run = train(config, tmp_path / "run", verbose=0)
    path = export.export_run(run.root, fmt, tmp_path / f"model.{fmt}")
    exported, reference = prediction.exported_scorer(path), prediction.run_scorer(run.root)
    for name in ("larger", "non-square"):
        maps, scores = exported.score([odd_sizes[name]])
        expected_maps, expected_scores = reference.score([odd_sizes[name]])
        assert np.abs(maps[0] - expected_maps[0]).max() < 1e-4 * max(1.0, expected_maps[0].max()), name
        assert np.abs(scores - expected_scores).max() < 1e-4 * max(1.0, expected_scores.max()), name


def test_graph_scoring_matches_the_numpy_scoring():
    """`cae_keras.graph_scoring` (in exported graphs) equals `cae_keras.scoring` (OpenCV / NumPy)
    for every map and image score, at an odd size too."""
    import tensorflow as tf

    from cae_keras import graph_scoring, maps

    rng = np.random.default_rng(0)
    for size in (32, 45):
        x = rng.random((2, size, size, 3), dtype=np.float32)
        y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
        for anomaly_map in (*maps.COMPONENTS, "l1+ssim", "msgms+ssim"):
            scales = maps.component_scales(x, y, anomaly_map) if "+" in anomaly_map else None
            for image_score in scoring.IMAGE_SCORES:
                method = scoring.ScoringMethod(blur_sigma=size / 64, anomaly_map=anomaly_map, image_score=image_score,
                                               map_scales=scales)
                expected = scoring.score_outputs(x, y, "reconstruction", method)
                graph = graph_scoring.GraphScoring(size, method)
                got = graph.anomaly_map(graph.error_map(tf.constant(x), tf.constant(y)))
                assert np.abs(got.numpy() - expected.maps).max() < 1e-5, (size, anomaly_map)
                assert np.abs(graph.image_score(got).numpy() - expected.scores).max() < 1e-5, (size, image_score)


def test_reader_resize_and_graph_resize_agree():
    """`cae_keras.resizing` (inside exported graphs) equals the reader's OpenCV resize."""
    import tensorflow as tf

    from cae_keras import resizing

    rng = np.random.default_rng(0)
    for (h, w), (out_h, out_w) in [((300, 200), (64, 64)), ((96, 32), (64, 64)), ((57, 91), (64, 64)),
                                   ((64, 64), (64, 64)), ((40, 40), (64, 64)), ((255, 257), (128, 128)),
                                   ((64, 64), (33, 120)), ((17, 300), (32, 32))]:
        image = rng.random((h, w, 3), dtype=np.float32)
        graph = resizing.resize(tf.constant(image[None]), out_h, out_w, 0.0, 1.0)[0].numpy()
        assert np.abs(graph - data.resize_to(image, out_h, out_w)).max() < 1e-5, (h, w, out_h, out_w)
        single = image[..., 0] * 3  # a map: not bounded above
        graph = resizing.resize(tf.constant(single[None]), out_h, out_w)[0].numpy()
        assert np.abs(graph - data.resize_to(single, out_h, out_w, upper=None)).max() < 1e-4


def test_predict_writes_maps_at_the_input_size(run, tmp_path):
    from PIL import Image

    folder = tmp_path / "strip"
    folder.mkdir()
    strip = np.full((32, 96, 3), 120, np.uint8)
    strip[10:20, 80:90] = 255  # a bright spot near the right end
    Image.fromarray(strip).save(folder / "strip.png")
    assert main(["predict", "--run", str(run.root), str(folder), "--out", str(tmp_path / "out"), "--save-maps"]) == 0
    anomaly_map = np.load(tmp_path / "out" / "strip_map.npy")
    assert anomaly_map.shape == (32, 96)
    assert np.asarray(Image.open(tmp_path / "out" / "strip_overlay.png")).shape[:2] == (32, 96)


def test_predict_with_an_exported_model_agrees_with_the_run(run, tiny_dataset, tmp_path, capsys):
    model = export.export_run(run.root, "savedmodel", tmp_path / "sm")
    folder = tiny_dataset / "bottle" / "test" / "broken_large"
    assert main(["predict", "--model", str(model), str(folder), "--out", str(tmp_path / "a")]) == 0
    assert main(["predict", "--run", str(run.root), str(folder), "--out", str(tmp_path / "b")]) == 0
    rows_a = (tmp_path / "a" / "predictions.csv").read_text().splitlines()[1:]
    rows_b = (tmp_path / "b" / "predictions.csv").read_text().splitlines()[1:]
    scores_a = [float(r.split(",")[2]) for r in rows_a]
    scores_b = [float(r.split(",")[2]) for r in rows_b]
    assert np.allclose(scores_a, scores_b, atol=1e-2)  # uint8 input on the exported path


def test_predict_streams_in_batches(run, tmp_path, monkeypatch):
    """Thousands of images are read `batch_size` at a time, never all at once."""
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2000):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    largest = []
    scorer = prediction.run_scorer(run.root)
    counting = dataclasses.replace(scorer, score=lambda images: largest.append(len(images)) or scorer.score(images))
    results = prediction.predict(counting, [folder], tmp_path / "out", batch_size=64, progress=False)
    assert len(results) == 2000 and max(largest) == 64
    assert len(list((tmp_path / "out").glob("*_overlay.png"))) == 2000
