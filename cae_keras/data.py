"""Reading datasets in the MVTec AD layout, for any category.

    <root>/<category>/train/good/*
    <root>/<category>/test/good/*
    <root>/<category>/test/<defect type>/*
    <root>/<category>/ground_truth/<defect type>/<image stem>_mask.png   (> 127 = defect)

Decisions (also listed in the README):
- Hidden files (name starts with '.') and `Thumbs.db` / `desktop.ini` are system files: ignored.
- Any other file whose extension is not an image extension is an error, so nothing is skipped
  silently.
- Images of every mode are converted to `[H, W, 3] float32 in [0, 1]`: grayscale is repeated
  over 3 channels, the alpha channel of RGBA / LA is dropped, palette images are expanded,
  16-bit images are scaled by 1/65535, EXIF orientation is applied. Then resized (not cropped)
  to the requested square size.
- A defective test image needs its mask, and the mask must have the image's size.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from cae_keras.errors import DataError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}
GOOD = "good"


@dataclasses.dataclass(frozen=True)
class TestImage:
    """One test image: its path, its defect type ('good' for normals) and its mask (None if good)."""

    path: Path
    defect_type: str
    mask_path: Path | None

    @property
    def is_defective(self) -> bool:
        return self.defect_type != GOOD


@dataclasses.dataclass(frozen=True)
class Category:
    """The files of one category: training normals and labelled test images."""

    root: Path
    name: str
    train: list[Path]
    test: list[TestImage]

    @property
    def defect_types(self) -> list[str]:
        return sorted({item.defect_type for item in self.test if item.is_defective})


def is_system_file(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in SYSTEM_FILES


def list_images(folder: Path) -> list[Path]:
    """Sorted image files of a folder; raises DataError for a file that is not an image.

    Raises:
        DataError: the folder is missing, or holds a file with a non-image extension.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    images = []
    for path in sorted(folder.iterdir()):
        if is_system_file(path):
            continue
        if path.is_dir():
            raise DataError(f"{path}: unexpected sub-folder inside an image folder")
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(
                f"{path}: not an image file (expected one of {sorted(IMAGE_EXTENSIONS)}); "
                "move it out of the dataset folder"
            )
        images.append(path)
    return images


def list_categories(root: Path) -> list[str]:
    """The category folders under a root: those that hold `train/good`."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "train" / GOOD).is_dir())


def read_category(root: Path, category: str, require_test: bool = True) -> Category:
    """Indexes one category: training normals, test images by defect type, masks by stem.

    Args:
        root: the dataset root that holds category folders.
        category: the category folder's name, e.g. 'bottle'.
        require_test: raise if `test/` is missing or empty (evaluation needs it, training does not).

    Raises:
        DataError: unknown root or category, empty `train/good`, a defective test image without
            its mask, a mask without an image. The message names the path.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    folder = root / category
    if not folder.is_dir():
        found = list_categories(root)
        hint = f"categories found there: {', '.join(found)}" if found else "no category folders found there"
        raise DataError(f"{folder}: unknown category '{category}' ({hint})")
    train = list_images(folder / "train" / GOOD)
    if not train:
        raise DataError(f"{folder / 'train' / GOOD}: no training images")
    test = _read_test(folder) if (folder / "test").is_dir() else []
    if require_test and not test:
        raise DataError(f"{folder / 'test'}: no test images (needed for evaluation)")
    return Category(root=root, name=category, train=train, test=test)


def _read_test(folder: Path) -> list[TestImage]:
    items: list[TestImage] = []
    for type_folder in sorted(p for p in (folder / "test").iterdir() if not is_system_file(p)):
        if not type_folder.is_dir():
            raise DataError(f"{type_folder}: expected only defect-type folders inside test/")
        defect_type = type_folder.name
        images = list_images(type_folder)
        if not images:
            raise DataError(f"{type_folder}: empty test folder; remove it or add its images")
        mask_folder = folder / "ground_truth" / defect_type
        for path in images:
            mask = None
            if defect_type != GOOD:
                mask = mask_folder / f"{path.stem}_mask.png"
                if not mask.is_file():
                    raise DataError(f"{path}: defective test image without its mask (expected {mask})")
            items.append(TestImage(path=path, defect_type=defect_type, mask_path=mask))
        if defect_type != GOOD and mask_folder.is_dir():
            stems = {p.stem for p in images}
            for mask in list_images(mask_folder):
                if mask.stem.removesuffix("_mask") not in stems:
                    raise DataError(f"{mask}: mask without an image in {type_folder}")
    return items


def split_validation(paths: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """The seeded hold-out of validation normals from `train/good`.

    Returns:
        (train, validation): disjoint, together all of `paths`; validation holds
        round(fraction * n) images, at least 1 and at most n - 1.

    Raises:
        DataError: fewer than 2 images, so no hold-out is possible.
    """
    n = len(paths)
    if n < 2:
        raise DataError(f"need at least 2 training images to hold out validation normals, found {n}")
    n_val = min(max(1, round(fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(paths) if i not in val_idx]
    val = [p for i, p in enumerate(paths) if i in val_idx]
    return train, val


def _open(path: Path) -> Image.Image:
    """Opens and fully decodes an image, turning every decoder failure into a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except Exception as error:  # PIL raises many types for corrupt data; all mean the same here
        raise DataError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None
    return image


def to_rgb_array(image: Image.Image, path: Path | str = "image") -> np.ndarray:
    """Converts a PIL image of any mode to `[H, W, 3] float32 in [0, 1]`."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / peak, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise DataError(f"{path}: floating-point images (mode F) have no defined range; save as 8 or 16 bit")
    if mode in ("1", "L", "LA", "P", "PA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBX"):
        image = image.convert("RGB")
    elif mode != "RGB":
        raise DataError(f"{path}: unsupported image mode {mode}")
    return np.asarray(image, dtype=np.float32) / 255.0


def resize(array: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resizes `[H, W(, C)]` to `[size, size(, C)]`: area averaging when shrinking, cubic when growing."""
    height, width = array.shape[:2]
    if (height, width) == (size, size):
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if size < min(height, width) else cv2.INTER_CUBIC
    resized = cv2.resize(array, (size, size), interpolation=interpolation)
    return np.clip(resized, 0.0, 1.0) if not nearest and array.dtype.kind == "f" else resized


MIN_SIDE = 16
"""Images smaller than this on a side hold too little to inspect: refused rather than blown up."""


def load_image(path: Path, size: int | None = None) -> np.ndarray:
    """Reads one image as `[size, size, 3] float32 in [0, 1]` (original size if size is None).

    Raises:
        DataError: missing, empty, truncated or corrupt file, an unsupported mode, or an image
            smaller than MIN_SIDE px on a side.
    """
    image = _open(path)
    if min(image.size) < MIN_SIDE:
        raise DataError(f"{path}: image is only {image.width}x{image.height} px; need at least {MIN_SIDE} a side")
    array = to_rgb_array(image, path)
    return array if size is None else resize(array, size)


def load_mask(path: Path, size: int | None = None, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Reads a ground-truth mask as `[size, size] bool` (pixel > 127 is defect).

    Args:
        image_shape: the (height, width) of the image the mask belongs to; a mask of another
            size is an error, since a stretched mask would mark the wrong pixels.
    """
    image = _open(path)
    gray = np.asarray(image.convert("I") if image.mode.startswith("I;16") else image.convert("L"))
    if image.mode.startswith("I;16"):
        gray = gray / 257.0
    if image_shape is not None and gray.shape[:2] != tuple(image_shape):
        raise DataError(
            f"{path}: mask is {gray.shape[1]}x{gray.shape[0]} but its image is "
            f"{image_shape[1]}x{image_shape[0]}"
        )
    mask = (gray > 127).astype(np.uint8)
    if size is not None:
        mask = resize(mask, size, nearest=True)
    return mask.astype(bool)


def load_images(paths: list[Path], size: int, progress: str | None = None) -> np.ndarray:
    """Reads many images into `[N, size, size, 3] float32 in [0, 1]`, with a progress bar if named."""
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc=progress, disable=progress is None, leave=False)):
        out[i] = load_image(path, size)
    return out


@dataclasses.dataclass
class TestSet:
    """Test images and masks in memory, at the evaluation resolution."""

    images: np.ndarray  # [N, S, S, 3] float32 in [0, 1]
    masks: np.ndarray  # [N, S, S] bool
    defect_types: list[str]
    paths: list[Path]

    @property
    def labels(self) -> np.ndarray:
        """[N] int: 0 for good, 1 for any defect."""
        return np.array([t != GOOD for t in self.defect_types], dtype=int)


def load_test_set(category: Category, size: int, progress: bool = True) -> TestSet:
    """Loads every test image with its mask (all False for good images), resized to `size`."""
    from tqdm.auto import tqdm

    n = len(category.test)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    for i, item in enumerate(tqdm(category.test, desc="test images", disable=not progress, leave=False)):
        full = load_image(item.path)
        images[i] = resize(full, size)
        if item.mask_path is not None:
            masks[i] = load_mask(item.mask_path, size, image_shape=full.shape[:2])
    return TestSet(images, masks, [t.defect_type for t in category.test], [t.path for t in category.test])
