"""patch_nn: the nearest-neighbour search against brute force, the fit and its choice, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cae_keras import anomalies, models
from cae_keras.models import patch_nn
from cae_keras.config import TrainConfig
from cae_keras.errors import ConfigError
from cae_keras.training import train


def _brute_force(queries, memory, search, radius, memory_radius):
    """Squared distance of each query cell to its nearest memorised cell, and that cell's radius,
    the slow way."""
    n, grid, _, _ = queries.shape
    out, matched = np.full(queries.shape[:3], np.inf), np.zeros(queries.shape[:3])
    for b in range(n):
        for y in range(grid):
            for x in range(grid):
                if search == "anywhere":
                    candidates, radii = memory, memory_radius
                else:  # the same place +- radius, inside the grid
                    ys = range(max(0, y - radius), min(grid, y + radius + 1))
                    xs = range(max(0, x - radius), min(grid, x + radius + 1))
                    candidates = memory[:, ys][:, :, xs].reshape(-1, memory.shape[-1])
                    radii = memory_radius[:, ys][:, :, xs].reshape(-1)
                distances = ((candidates - queries[b, y, x]) ** 2).sum(-1)
                out[b, y, x], matched[b, y, x] = distances.min(), radii[distances.argmin()]
    return out, matched


@pytest.mark.parametrize("search", patch_nn.SEARCHES)
def test_nearest_distances_match_brute_force(search, monkeypatch):
    monkeypatch.setattr(patch_nn, "GRID", 6)
    monkeypatch.setattr(patch_nn, "DIMS", 4)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    memory = rng.normal(size=(3, 6, 6, 4)).astype(np.float32)
    memory = memory.astype(np.float16).astype(np.float32)
    if search == "anywhere":
        memory = memory.reshape(-1, 4)
        stored = memory.T
    else:
        stored = memory.reshape(3, -1, 4).transpose(1, 2, 0)
    memory_radius = rng.random(memory.shape[:-1]).astype(np.float32)  # [M] or [N, G, G]
    layer = patch_nn._layer_class()(24, search, stored.shape[-1], radius=1)
    layer.build((None, 24, 24, 3))
    layer.memory.assign(stored.astype(np.float16))
    layer.memory_radius.assign(memory_radius if search == "anywhere" else memory_radius.reshape(3, -1).T)
    got, got_radius = (np.asarray(x) for x in layer.nearest(queries))
    expected, expected_radius = _brute_force(queries, memory, search, 1, memory_radius)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.allclose(got_radius, expected_radius)


@pytest.mark.parametrize("search", patch_nn.SEARCHES)
def test_memory_radius_is_the_distance_to_other_images_cells(search, monkeypatch):
    monkeypatch.setattr(patch_nn, "GRID", 6)
    monkeypatch.setattr(patch_nn, "DIMS", 4)
    monkeypatch.setattr(patch_nn, "ANYWHERE_MEMORY", 40)
    rng = np.random.default_rng(1)
    descriptors = rng.normal(size=(5, 6, 6, 4)).astype(np.float16).astype(np.float32)
    memory, images = patch_nn._memory_for(search, descriptors, rng)
    radius = patch_nn._memory_radius(search, memory, images, rng)
    cells = memory.T if search == "anywhere" else memory.transpose(2, 0, 1).reshape(-1, 6, 6, 4)
    for index in range(len(cells)):  # each entry against the memorised cells of the other half
        other = images % 2 != images[index] % 2
        if search == "anywhere":
            expected = np.sqrt(((cells[other] - cells[index]) ** 2).sum(-1).min())
            assert np.isclose(radius[index], expected, rtol=1e-3)
        else:
            squared, _ = _brute_force(cells[index][None], cells[other], "position", patch_nn.RADIUS,
                                      np.zeros(cells[other].shape[:-1]))
            assert np.allclose(radius[:, index], np.sqrt(squared[0]).reshape(-1), rtol=1e-3, atol=1e-4)


def test_object_masks_find_the_part_or_the_whole_texture():
    image = np.full((1, 64, 64, 3), 0.1, np.float32)
    image[0, 20:44, 16:40] = 0.8
    found = anomalies.object_masks(image)[0]
    assert found[24:40, 20:36].all() and not found[:8].any() and not found[:, -8:].any()
    texture = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    assert anomalies.object_masks(texture)[0].all()


def test_anomalies_stay_where_allowed():
    import tensorflow as tf

    images = np.random.default_rng(1).random((16, 32, 32, 3)).astype(np.float32)
    allowed = np.zeros((16, 32, 32, 1), np.float32)
    allowed[:, 8:24, 8:24] = 1.0
    augmented, mask = anomalies.synthesize(tf.constant(images), tf.constant(3, tf.int64), tf.constant(allowed))
    mask = np.asarray(mask)
    assert mask.any() and not (mask * (1 - allowed)).any()
    changed = np.abs(np.asarray(augmented) - images).max(-1) > 1e-6
    assert not changed[allowed[..., 0] == 0].any()


def test_patch_nn_trains_finds_a_defect_and_round_trips(tiny_dataset, tmp_path):
    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="patch_nn", image_size=48)
    paths = train(config, tmp_path / "run", verbose=0)
    selection = json.loads(paths.selection.read_text())
    assert selection["kept"] in selection["candidates"] and len(selection["candidates"]) == 8
    assert all(0.0 <= c["image_auroc"] <= 1.0 for c in selection["candidates"].values())

    model = models.load_model(paths.model)
    from cae_keras import data

    normal = data.load_image(sorted((tiny_dataset / "bottle" / "test" / "good").iterdir())[0], 48)
    defective = normal.copy()
    defective[30:36, 12:18] = [1.0, 0.0, 1.0]  # a magenta square no normal image has
    maps = model.predict(np.stack([normal, defective]), verbose=0)
    assert maps.shape == (2, 48, 48) and np.isfinite(maps).all()
    hottest = np.unravel_index(maps[1].argmax(), maps[1].shape)
    assert 26 <= hottest[0] <= 39 and 8 <= hottest[1] <= 21, hottest
    assert maps[1].max() > 2 * maps[0].max()

    model.save(tmp_path / "again.keras")
    assert np.allclose(models.load_model(tmp_path / "again.keras").predict(np.stack([defective]), verbose=0),
                       maps[1:], atol=1e-5)


def test_patch_nn_exports_with_parity_and_without_copies_of_its_memory(tiny_dataset, tmp_path):
    from cae_keras import data, export, runs, scoring

    config = TrainConfig(data=str(tiny_dataset), category="bottle", model="patch_nn", image_size=48)
    paths = train(config, tmp_path / "run", verbose=0)
    test = data.read_category(tiny_dataset, "bottle").test[:4]
    images = np.round(data.load_images([t.path for t in test], 48) * 255).astype(np.uint8)
    reference = scoring.infer(models.load_model(paths.model), "anomaly_map", images / np.float32(255),
                              config.scoring.blur_sigma)
    exported = export.export_run(paths.root, "tflite", tmp_path / "model.tflite")
    result = export.ExportedDetector(exported)(images)
    assert np.abs(result["anomaly_map"] - reference.maps).max() < 1e-3 * reference.maps.max()
    threshold = runs.read_calibration(paths)["threshold"]
    assert list(result["defective"]) == list(reference.scores > threshold)
    # the frozen graph holds the memory once (in float32), not once per searched shift
    assert exported.stat().st_size < 4 * paths.model.stat().st_size
    # ONNX too, and on an image of another shape (the map came back NaN in ONNX before)
    from cae_keras import prediction

    strip = np.round(data.resize_to(images[0] / np.float32(255), 30, 80) * 255) / 255
    expected_maps, expected_scores = prediction.run_scorer(paths.root).score([strip])
    for fmt in ("onnx", "savedmodel"):
        maps, scores = prediction.exported_scorer(export.export_run(paths.root, fmt, tmp_path / f"m.{fmt}")).score([strip])
        assert np.isfinite(maps[0]).all() and maps[0].shape == (30, 80)
        # Where two normal cells are equally near, float rounding may switch the match: a few pixels
        # can differ more (a new user measured 7.5e-4 of the map's maximum on a 96x32 strip).
        difference = np.abs(maps[0] - expected_maps[0])
        assert np.quantile(difference, 0.99) < 1e-4 * max(1.0, expected_maps[0].max()), fmt
        assert difference.max() < 0.01 * max(1.0, expected_maps[0].max()), fmt
        assert np.abs(scores - expected_scores).max() < 1e-4 * max(1.0, expected_scores.max()), fmt
    with pytest.raises(ConfigError, match="no trained network"):
        export.export_run(paths.root, "tflite-int8", tmp_path / "model_int8.tflite")
