"""Reading datasets: image and mask files, the category index, the validation split.

The default layout is MVTec AD's (other layouts: `cae_keras.layouts`):

    <root>/<category>/train/good/*
    <root>/<category>/validation/good/*           (optional: replaces the hold-out)
    <root>/<category>/test/good/*
    <root>/<category>/test/<defect type>/*
    <root>/<category>/ground_truth/<defect type>/<image stem>_mask.png

Decisions (also listed in the README):
- Hidden files (name starts with '.') and `Thumbs.db` / `desktop.ini` are system files: ignored.
- Any other file whose extension is not an image extension is an error, so nothing is skipped
  silently.
- Images of every mode are converted to `[H, W, 3] float32 in [0, 1]`: grayscale is repeated
  over 3 channels, the alpha channel of RGBA / LA is dropped, palette images are expanded,
  16-bit images (gray or colour) are scaled by 1/65535 at full precision, EXIF orientation is
  applied. Then resized (not cropped) to the requested square size.
- Masks are read by one rule for every convention (`MASK_RULE`). A defective test image needs
  its mask, the mask must have the image's size and hold at least one defect pixel.
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
    """One test image: its path, its defect type ('good' for normals) and its mask files.

    `mask_paths` is empty for good images, and for defective images of a layout without masks
    (then pixel figures are not computed); it holds several files where a layout has several
    masks per image (MVTec LOCO).
    """

    path: Path
    defect_type: str
    mask_paths: tuple[Path, ...] = ()

    @property
    def is_defective(self) -> bool:
        return self.defect_type != GOOD


@dataclasses.dataclass(frozen=True)
class Category:
    """The files of one category: training normals, labelled test images, and the layout's own
    validation normals (None where the layout has none: a share of `train` is held out)."""

    root: Path
    name: str
    train: list[Path]
    test: list[TestImage]
    validation: list[Path] | None = None
    layout: str = "mvtec"

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
    """The category folders under a root: those in a known layout (`cae_keras.layouts`)."""
    from cae_keras.layouts import detect

    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not is_system_file(p) and detect(p))


def read_category(root: Path, category: str, layout: str | None = None, with_test: bool = True) -> Category:
    """Indexes one category: training normals, validation normals if the layout has them, test
    images by defect type with their masks.

    Args:
        root: the dataset root that holds category folders.
        category: the category folder's name, e.g. 'bottle'.
        layout: one of `cae_keras.layouts.LAYOUTS`; None or 'auto' detects it.
        with_test: index the test split and require test images (evaluation); False reads only the
            training and validation normals (training reads only what it uses).

    Raises:
        DataError: unknown root or category, no training images, a defective test image without
            its mask, a mask without an image. The message names the path.
    """
    from cae_keras import layouts

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    folder = root / category
    if not folder.is_dir():
        found = list_categories(root)
        hint = f"categories found there: {', '.join(found)}" if found else "no category folders found there"
        raise DataError(f"{folder}: unknown category '{category}' ({hint})")
    chosen = layouts.read(root, category, layout, with_test=with_test)
    if with_test and not chosen.test:
        raise DataError(f"{folder}: no test images (needed for evaluation; {chosen.layout} layout)")
    return chosen


def category_of(config, with_test: bool = False) -> Category:
    """The category a run's config names (`data`, `category`, `layout`); its test split only if asked."""
    dataset = config.dataset
    return read_category(Path(dataset.data), dataset.category, layout=dataset.layout, with_test=with_test)


def validation_split(category: Category, fraction: float, seed: int) -> tuple[list[Path], list[Path], str]:
    """The training normals and the validation normals of a category, and where the latter come from.

    The layout's own validation normals when it has them (MVTec AD 2, LOCO, 3D-AD), else the
    seeded hold-out of `fraction` of the training normals (`split_validation`).

    Returns:
        (train, validation, source) where source reads e.g. 'validation/good (29 images)'.
    """
    if category.validation:
        return list(category.train), list(category.validation), \
            f"the layout's validation folder ({_count(len(category.validation), 'image')})"
    train, val = split_validation(category.train, fraction, seed)
    return train, val, f"a seeded {fraction:.0%} hold-out of the training normals ({_count(len(val), 'image')})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


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


_EXIF_ORIENTATION = 0x0112


def _bits_per_channel(image: Image.Image, path: Path) -> int:
    """Bits per channel as stored in the file (PIL reads 16-bit colour PNG / TIFF as 8-bit RGB)."""
    if image.format == "PNG":
        with open(path, "rb") as file:
            header = file.read(25)
        return header[24] if len(header) == 25 else 8  # IHDR's bit depth
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(258, (8,))
        return int(max(bits) if isinstance(bits, tuple) else bits)
    return 8


def _oriented(array: np.ndarray, image: Image.Image) -> np.ndarray:
    """Applies the EXIF orientation tag to an array, as `ImageOps.exif_transpose` does to an image."""
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    steps = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
             7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1), 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(steps[orientation](array)) if orientation in steps else array


def _read_16bit_colour(path: Path, image: Image.Image) -> np.ndarray:
    """A 16-bit RGB(A) PNG / TIFF at full precision: `[H, W, 3] float32 in [0, 1]` (alpha dropped)."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None or array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"{path}: 16-bit colour image that OpenCV cannot read at full precision; "
                        "save it as 8-bit or 16-bit RGB PNG")
    rgb = array[..., 2::-1].astype(np.float32) / 65535.0  # OpenCV's BGR(A) -> RGB
    return _oriented(rgb, image)


def to_rgb_array(image: Image.Image, path: Path | str = "image") -> np.ndarray:
    """Converts a PIL image of any mode to `[H, W, 3] float32 in [0, 1]`, at the file's full precision.

    8-bit images are divided by 255, 16-bit ones (gray or colour, PNG or TIFF) by 65535; 1, 2 and
    4-bit images and palettes are expanded to their colours.

    Raises:
        DataError: a floating-point or 32-bit integer image (no defined range), or an unknown mode.
    """
    mode = image.mode
    if mode in ("RGB", "RGBA") and _bits_per_channel(image, Path(path)) == 16:
        return _read_16bit_colour(Path(path), image)
    image = ImageOps.exif_transpose(image)
    if mode.startswith("I;16") or (mode == "I" and _bits_per_channel(image, Path(path)) == 16):
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    if mode == "I":
        raise DataError(f"{path}: 32-bit integer image has no defined range; save as 8 or 16 bit")
    if mode == "F":
        raise DataError(f"{path}: floating-point images (mode F) have no defined range; save as 8 or 16 bit")
    if mode in ("1", "L", "LA", "P", "PA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBX"):
        image = image.convert("RGB")
    elif mode != "RGB":
        raise DataError(f"{path}: unsupported image mode {mode}")
    return np.asarray(image, dtype=np.float32) / 255.0


def resize(array: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resizes `[H, W(, C)]` to `[size, size(, C)]`: area averaging when shrinking, cubic when growing."""
    return resize_to(array, size, size, nearest)


def resize_to(array: np.ndarray, height: int, width: int, nearest: bool = False,
              upper: float | None = 1.0) -> np.ndarray:
    """Resizes `[H, W(, C)]` to `[height, width(, C)]`: area averaging when both sides shrink, else
    OpenCV's bicubic, whose overshoot is clipped: float results to [0, `upper`] (None: no upper
    bound, for anomaly maps). `cae_keras.resizing` does the same inside exported graphs; a test
    keeps the two equal."""
    if array.shape[:2] == (height, width):
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if height < array.shape[0] and width < array.shape[1] else cv2.INTER_CUBIC
    resized = cv2.resize(array, (width, height), interpolation=interpolation)
    return np.clip(resized, 0.0, upper) if not nearest and array.dtype.kind == "f" else resized


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


MASK_RULE = ("a pixel is defect when its value is above half of full scale (> 127 in 8 bit, > 32767 in 16 "
             "bit); in a mask with no value that high (0/1 or class-id masks) every non-zero pixel is defect; "
             "in a palette mask every non-zero palette index; transparent pixels are never defect; several "
             "masks of one image are joined")
"""How a ground-truth mask is read, whatever convention wrote it (0/255, 0/1, class ids, palette
PNGs from labelling tools, anti-aliased gray edges, colour masks, 16 bit)."""


def _mask_values(image: Image.Image, path: Path) -> tuple[np.ndarray, int | None]:
    """A mask's raw values `[H, W]` and its full scale (None: palette indices, where 0 is background)."""
    mode = image.mode
    if mode in ("P", "PA"):
        indices = np.asarray(image.convert("P") if mode == "PA" else image)
        if mode == "PA":
            indices = np.where(np.asarray(image.getchannel("A")) > 0, indices, 0)
        return indices.astype(np.int64), None
    if mode == "F":
        raise DataError(f"{path}: floating-point mask; save it as an 8-bit PNG (0 = good, 255 = defect)")
    if mode.startswith("I;16") or mode == "I":
        return np.asarray(image, dtype=np.int64), 65535
    if mode in ("RGB", "RGBA") and _bits_per_channel(image, path) == 16:
        colour = _read_16bit_colour(path, image)
        return np.round(colour.max(axis=2) * 65535).astype(np.int64), 65535
    values = np.asarray(image.convert("RGBA" if "A" in mode or mode == "RGBa" else "RGB"), dtype=np.int64)
    gray = values[..., :3].max(axis=2)  # a colour label (red on black) counts by its brightest channel
    if values.shape[2] == 4:
        gray = np.where(values[..., 3] > 0, gray, 0)
    return gray, 255


class MaskWarning(UserWarning):
    """A mask holds labelled pixels that the mask rule does not count as defect, or a defect that
    the evaluation size cannot show."""


def defect_pixels(path: Path) -> np.ndarray:
    """The defect pixels of one mask file at its own size, `[H, W] bool`, by the rule `MASK_RULE`.

    Warns (`MaskWarning`, naming the file) when the rule leaves out labelled pixels that are not
    the anti-aliased edge of a counted defect (more than 2 px from one): a mask with two
    conventions in it, such as a class id 1 inside a 255 border, loses ground truth otherwise
    without a word. Lossy JPEG masks are not checked (their noise is not a label).

    Raises:
        DataError: unreadable file, or a floating-point mask.
    """
    path = Path(path)
    image = _open(path)
    values, full_scale = _mask_values(image, path)
    if full_scale is None:
        return values != 0
    half = full_scale // 2
    if values.max() <= half:
        return values != 0
    defect = values > half
    if image.format != "JPEG":
        near_defect = cv2.dilate(defect.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        dropped = int(((values > 0) & ~near_defect).sum())
        if dropped:
            warnings.warn(f"{path}: {dropped} labelled pixels (values 1-{half}) are not counted as defect, "
                          f"because the mask also holds values above {half}: {MASK_RULE}", MaskWarning,
                          stacklevel=2)
    return defect


def load_mask(path: Path | list[Path], size: int | None = None, image_shape: tuple[int, int] | None = None,
              allow_empty: bool = False) -> np.ndarray:
    """Reads the ground truth of one defective image as `[size, size] bool` (its own size if None).

    Every mask convention is read by one rule (`MASK_RULE`); several mask files of one image (as
    MVTec LOCO has) are joined.

    Args:
        path: one mask file or several.
        image_shape: the (height, width) of the image the mask belongs to; a mask of another
            size is an error, since a stretched mask would mark the wrong pixels.
        allow_empty: accept a mask without any defect pixel (the image still counts as defective
            for image figures); otherwise that is an error, since it would drop ground truth.

    Raises:
        DataError: unreadable mask, a size that is not the image's, or no defect pixel. The
            message names the file.
    """
    paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    mask = None
    for one in paths:
        pixels = defect_pixels(one)
        if image_shape is not None and pixels.shape != tuple(image_shape):
            raise DataError(
                f"{one}: mask is {pixels.shape[1]}x{pixels.shape[0]} but its image is "
                f"{image_shape[1]}x{image_shape[0]}"
            )
        if mask is not None and pixels.shape != mask.shape:
            raise DataError(f"{one}: mask is {pixels.shape[1]}x{pixels.shape[0]}, another mask of the same "
                            f"image is {mask.shape[1]}x{mask.shape[0]}")
        mask = pixels if mask is None else mask | pixels
    if mask is None:
        raise DataError("no mask file given")
    if not mask.any() and not allow_empty:
        raise DataError(f"{', '.join(map(str, paths))}: the mask of a defective image holds no defect pixel "
                        "(all zero); fix the mask, move the image to test/good, or evaluate with "
                        "--allow-empty-masks to keep it (defective for image figures, its pixels normal)")
    if size is not None:
        mask = resize(mask.astype(np.uint8), size, nearest=True)
    return mask.astype(bool)


def load_images(paths: list[Path], size: int, progress: str | None = None) -> np.ndarray:
    """Reads many images into `[N, size, size, 3] float32 in [0, 1]`, with a progress bar if named."""
    from tqdm import tqdm  # text bars: a notebook without widget support shows them right too

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
    empty_masks: list[Path] = dataclasses.field(default_factory=list)  # accepted with allow_empty_masks
    without_masks: int = 0  # defective images of a layout that gives no masks
    lost_at_size: list[Path] = dataclasses.field(default_factory=list)  # masks whose defect vanished in the resize

    @property
    def labels(self) -> np.ndarray:
        """[N] int: 0 for good, 1 for any defect."""
        return np.array([t != GOOD for t in self.defect_types], dtype=int)


def load_test_set(category: Category, size: int, progress: bool = True, allow_empty_masks: bool = False) -> TestSet:
    """Loads every test image with its mask (all False for good images), resized to `size`.

    Args:
        allow_empty_masks: accept defective images whose mask holds no defect pixel (listed in
            `TestSet.empty_masks`); otherwise each is an error naming the file.

    Raises:
        DataError: an unreadable image or mask, a mask of another size, an empty mask.
    """
    from tqdm import tqdm  # text bars: a notebook without widget support shows them right too

    n = len(category.test)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    empty, without, lost = [], 0, []
    for i, item in enumerate(tqdm(category.test, desc="test images", disable=not progress, leave=False)):
        full = load_image(item.path)
        images[i] = resize(full, size)
        if item.mask_paths:
            full_mask = load_mask(list(item.mask_paths), image_shape=full.shape[:2], allow_empty=allow_empty_masks)
            if not full_mask.any():
                empty.append(item.mask_paths[0])
            masks[i] = resize(full_mask.astype(np.uint8), size, nearest=True).astype(bool)
            if full_mask.any() and not masks[i].any():
                lost.append(item.mask_paths[0])
        elif item.is_defective:
            without += 1
    if lost:  # nearest-neighbour resizing (the protocol's) can miss a defect of a pixel or a line
        warnings.warn(f"{len(lost)} defective test image(s) keep no defect pixel at {size} px (their defect is "
                      f"smaller than the resize step), so their pixels count as normal in the pixel figures: "
                      f"{', '.join(map(str, lost))}", MaskWarning, stacklevel=2)
    return TestSet(images, masks, [t.defect_type for t in category.test], [t.path for t in category.test],
                   empty_masks=empty, without_masks=without, lost_at_size=lost)
