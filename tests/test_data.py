"""The MVTec-layout reader: every image mode, every error, the validation hold-out."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cae_keras import data
from cae_keras.errors import DataError


def _rgb(h=20, w=30) -> np.ndarray:
    return (np.arange(h * w * 3).reshape(h, w, 3) % 251).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "1", "I;16", "CMYK"])
def test_every_mode_becomes_rgb_float_in_unit_range(tmp_path, mode):
    source = Image.fromarray(_rgb())
    image = source.convert(mode) if mode != "I;16" else Image.fromarray(
        (np.asarray(source.convert("L"), dtype=np.uint16) * 257))
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"x{suffix}"
    image.save(path)
    array = data.load_image(path)
    assert array.shape == (20, 30, 3) and array.dtype == np.float32
    assert 0.0 <= array.min() and array.max() <= 1.0


def test_sixteen_bit_is_scaled_by_its_full_range(tmp_path):
    values = np.tile(np.array([0, 32768, 65535], dtype=np.uint16), (16, 6))
    Image.fromarray(values).save(tmp_path / "a.png")
    array = data.load_image(tmp_path / "a.png")
    assert np.allclose(array[0, :3, 0], [0.0, 32768 / 65535, 1.0], atol=1e-6)


def test_rgba_drops_alpha_and_gray_repeats(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.allclose(data.load_image(tmp_path / "a.png")[..., 0], 200 / 255)
    Image.fromarray(np.full((16, 16), 100, np.uint8), "L").save(tmp_path / "g.png")
    gray = data.load_image(tmp_path / "g.png")
    assert np.allclose(gray[..., 0], gray[..., 2])


def test_resize_to_square(tmp_path):
    Image.fromarray(_rgb(40, 60)).save(tmp_path / "a.png")
    assert data.load_image(tmp_path / "a.png", 16).shape == (16, 16, 3)


@pytest.mark.parametrize("content,problem", [
    (b"", "empty file"),
    (b"this is not an image", "cannot read image"),
])
def test_unreadable_files_name_the_path(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as error:
        data.load_image(path)
    assert str(path) in str(error.value)


def test_truncated_png_is_an_error(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    raw = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.png"):
        data.load_image(tmp_path / "cut.png")


def test_category_index(tiny_dataset):
    category = data.read_category(tiny_dataset, "bottle")
    assert len(category.train) == 24
    assert category.defect_types == ["broken_large", "broken_small", "contamination"]
    assert sum(not t.is_defective for t in category.test) == 4
    for item in category.test:
        assert (not item.mask_paths) == (item.defect_type == "good")
        if item.mask_paths:
            assert [p.name for p in item.mask_paths] == [f"{item.path.stem}_mask.png"]


@pytest.fixture
def copy(tiny_dataset, tmp_path) -> Path:
    shutil.copytree(tiny_dataset, tmp_path / "root")
    return tmp_path / "root"


def test_unknown_category_lists_what_exists(copy):
    with pytest.raises(DataError, match="unknown category 'cable'.*bottle") as error:
        data.read_category(copy, "cable")
    assert str(copy / "cable") in str(error.value)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="dataset root not found"):
        data.read_category(tmp_path / "nowhere", "bottle")


def test_empty_train_good(copy):
    for path in (copy / "bottle" / "train" / "good").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no training images") as error:
        data.read_category(copy, "bottle")
    assert "train/good" in str(error.value)


def test_defective_image_without_mask(copy):
    mask = copy / "bottle" / "ground_truth" / "contamination" / "001_mask.png"
    mask.unlink()
    with pytest.raises(DataError, match="without its mask") as error:
        data.read_category(copy, "bottle")
    assert str(mask) in str(error.value)


def test_mask_without_image(copy):
    (copy / "bottle" / "test" / "broken_small" / "002.png").unlink()
    with pytest.raises(DataError, match="mask without an image"):
        data.read_category(copy, "bottle")


def test_system_files_are_ignored_other_files_are_errors(copy):
    good = copy / "bottle" / "train" / "good"
    (good / ".DS_Store").write_bytes(b"\0")
    (good / "Thumbs.db").write_bytes(b"\0")
    assert len(data.read_category(copy, "bottle").train) == 24
    (good / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        data.read_category(copy, "bottle")


def test_mask_of_another_size_is_an_error(tmp_path):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="mask is 12x10 but its image is 20x20"):
        data.load_mask(tmp_path / "m.png", image_shape=(20, 20))


def test_mask_threshold_and_nearest_resize(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:4, :4] = 128
    mask[4:, 4:] = 127
    Image.fromarray(mask).save(tmp_path / "m.png")
    loaded = data.load_mask(tmp_path / "m.png", 4)
    assert loaded.dtype == bool and loaded[:2, :2].all() and not loaded[2:, 2:].any()


def test_test_set_loads_images_and_masks(tiny_dataset):
    test = data.load_test_set(data.read_category(tiny_dataset, "bottle"), 32, progress=False)
    assert test.images.shape == (13, 32, 32, 3) and test.masks.shape == (13, 32, 32)
    assert list(test.labels).count(0) == 4
    assert not test.masks[test.labels == 0].any()
    assert all(m.any() for m in test.masks[test.labels == 1])


def test_validation_split_is_seeded_disjoint_and_complete():
    paths = [Path(f"{i}.png") for i in range(50)]
    train, val = data.split_validation(paths, 0.1, seed=3)
    assert len(val) == 5 and set(train).isdisjoint(val) and set(train) | set(val) == set(paths)
    assert data.split_validation(paths, 0.1, seed=3) == (train, val)
    assert data.split_validation(paths, 0.1, seed=4)[1] != val
    with pytest.raises(DataError):
        data.split_validation(paths[:1], 0.1, seed=0)


def test_tiny_images_are_refused(tmp_path):
    Image.fromarray(np.zeros((8, 40, 3), np.uint8)).save(tmp_path / "thin.png")
    with pytest.raises(DataError, match="thin.png: image is only 40x8 px"):
        data.load_image(tmp_path / "thin.png")


def test_mixed_sizes_and_modes_in_one_folder_all_load(tmp_path):
    Image.fromarray(_rgb(40, 60)).save(tmp_path / "a.png")
    Image.fromarray(_rgb(30, 30)).convert("L").save(tmp_path / "b.jpg")
    Image.fromarray(_rgb(50, 20)).convert("P").save(tmp_path / "c.png")
    images = data.load_images(data.list_images(tmp_path), 24)
    assert images.shape == (3, 24, 24, 3)


def test_empty_test_folder_is_an_error(copy):
    empty = copy / "bottle" / "test" / "scratch"
    empty.mkdir()
    with pytest.raises(DataError, match="empty test folder"):
        data.read_category(copy, "bottle")
