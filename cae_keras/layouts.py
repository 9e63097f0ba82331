"""The dataset layouts people have, each read into one `data.Category` by its own reader.

| layout | training normals | validation normals | test images | masks |
| --- | --- | --- | --- | --- |
| `mvtec` (MVTec AD; MVTec 3D-AD's RGB images once arranged so) | `train/good` | `validation/good` if present | `test/<type>` | `ground_truth/<type>/<stem>_mask.png` |
| `mvtec_ad2` (MVTec AD 2) | `train/good` | `validation/good` | `test_public/{good,bad}` | `test_public/ground_truth/bad/<stem>_mask.png` |
| `loco` (MVTec LOCO AD) | `train/good` | `validation/good` | `test/<type>` | `ground_truth/<type>/<stem>/*.png` (several, joined) |
| `btad` (BTAD) | `train/ok` | - | `test/{ok,ko}` | `ground_truth/ko/<stem>.<any image ext>` |
| `visa` (VisA) | `split_csv/1cls.csv`, split `train` | - | split `test` | the CSV's `mask` column |
| `folder` (a folder per kind) | `normal/` | - | `normal_test/`, `abnormal/` | `mask/<stem>[_mask].<ext>` |

Paths are `<root>/<category>/...` except VisA's CSV, which lies at `<root>/split_csv/1cls.csv` and
names images relative to `<root>`. Where a layout has validation normals they replace the seeded
hold-out from the training normals. In the `folder` layout without `normal_test/`, every fifth
normal image (sorted by name) is held out as a test normal when there are abnormal images, so
that image AUROC can be measured (as the field's reference library, anomalib, splits its
`Folder` dataset).

Each reader checks what it reads: a defective test image without its mask and a mask without an
image are errors naming the file. With `with_test=False` (training) the test split is not read.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cae_keras.data import GOOD, IMAGE_EXTENSIONS, Category, TestImage, is_system_file, list_images
from cae_keras.errors import DataError

LAYOUTS = ("mvtec", "mvtec_ad2", "visa", "btad", "loco", "folder")


def detect(folder: Path) -> str | None:
    """The layout of a category folder, or None if no layout fits."""
    if (folder / "test_public").is_dir():
        return "mvtec_ad2"
    if (folder / "Data" / "Images").is_dir():
        return "visa"
    if (folder / "train" / "ok").is_dir():
        return "btad"
    if (folder / "train" / GOOD).is_dir():
        truth = folder / "ground_truth"
        per_image_folders = truth.is_dir() and any(  # hidden folders (.ipynb_checkpoints) are not masks
            child.is_dir() and not is_system_file(child)
            for kind in truth.iterdir() if kind.is_dir() and not is_system_file(kind) for child in kind.iterdir())
        return "loco" if per_image_folders else "mvtec"
    if (folder / "normal").is_dir():
        return "folder"
    return None


def read(root: Path, name: str, layout: str | None = None, with_test: bool = True) -> Category:
    """Reads `<root>/<name>` in `layout` (detected when None).

    Raises:
        DataError: unknown layout, a folder no layout fits, no training images, or a problem in
            the files (each message names the path).
    """
    folder = root / name
    if layout is None or layout == "auto":
        layout = detect(folder)
        if layout is None:
            raise DataError(f"{folder}: no known dataset layout (expected train/good, train/ok, test_public, "
                            "Data/Images or normal/; see `cae_keras.layouts`)")
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    train, validation, test = READERS[layout](root, folder, with_test)
    if not train:
        raise DataError(f"{folder / TRAINING_NORMALS[layout]}: no training images ({layout} layout)")
    return Category(root=root, name=name, train=train, test=test, validation=validation, layout=layout)


def _folder_or_none(folder: Path) -> list[Path] | None:
    return list_images(folder) if folder.is_dir() else None


def _typed_test(test_root: Path, mask_for, with_test: bool, good: str = GOOD) -> list[TestImage]:
    """Test images from `test_root/<type>/`; `mask_for(type, image)` gives the mask files of a
    defective image (a missing one is an error)."""
    if not with_test or not test_root.is_dir():
        return []
    items: list[TestImage] = []
    for type_folder in sorted(p for p in test_root.iterdir() if not is_system_file(p)):
        if not type_folder.is_dir():
            raise DataError(f"{type_folder}: expected only defect-type folders inside {test_root.name}/")
        if type_folder.name == "ground_truth":  # MVTec AD 2 keeps its masks inside test_public/
            continue
        images = list_images(type_folder)
        if not images:
            raise DataError(f"{type_folder}: empty test folder; remove it or add its images")
        defect_type = GOOD if type_folder.name == good else type_folder.name
        for path in images:
            masks = () if defect_type == GOOD else tuple(mask_for(type_folder.name, path))
            items.append(TestImage(path=path, defect_type=defect_type, mask_paths=masks))
    return items


def _check_no_orphans(mask_folder: Path, images: list[Path], stem_of) -> None:
    """A mask (file or per-image folder) whose image is missing is an error."""
    if not mask_folder.is_dir():
        return
    stems = {p.stem for p in images}
    for mask in sorted(p for p in mask_folder.iterdir() if not is_system_file(p)):
        if stem_of(mask) not in stems:
            raise DataError(f"{mask}: mask without an image")


def _require(path: Path, image: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{image}: defective test image without its mask (expected {path})")
    return path


def _mvtec(root: Path, folder: Path, with_test: bool):
    def mask_for(defect_type, image):
        return [_require(folder / "ground_truth" / defect_type / f"{image.stem}_mask.png", image)]

    test = _typed_test(folder / "test", mask_for, with_test)
    for defect_type in {item.defect_type for item in test if item.is_defective}:  # the test images already listed
        _check_no_orphans(folder / "ground_truth" / defect_type,
                          [item.path for item in test if item.defect_type == defect_type],
                          lambda mask: mask.stem.removesuffix("_mask"))
    return list_images(folder / "train" / GOOD), _folder_or_none(folder / "validation" / GOOD), test


def _mvtec_ad2(root: Path, folder: Path, with_test: bool):
    public = folder / "test_public"

    def mask_for(defect_type, image):
        return [_require(public / "ground_truth" / defect_type / f"{image.stem}_mask.png", image)]

    test = _typed_test(public, mask_for, with_test)
    return list_images(folder / "train" / GOOD), _folder_or_none(folder / "validation" / GOOD), test


def _loco(root: Path, folder: Path, with_test: bool):
    def mask_for(defect_type, image):
        mask_folder = folder / "ground_truth" / defect_type / image.stem
        masks = list_images(mask_folder) if mask_folder.is_dir() else []
        if not masks:
            raise DataError(f"{image}: defective test image without its masks (expected a folder of masks "
                            f"{mask_folder})")
        return masks

    test = _typed_test(folder / "test", mask_for, with_test)
    return list_images(folder / "train" / GOOD), _folder_or_none(folder / "validation" / GOOD), test


def _mask_by_stem(mask_folder: Path, image: Path, suffixes=("", "_mask")) -> Path:
    """The mask of `image` in `mask_folder`, named by the image's stem (optionally + '_mask'),
    with any image extension."""
    found = [mask_folder / f"{image.stem}{suffix}{ext}" for suffix in suffixes
             for ext in sorted(IMAGE_EXTENSIONS | {e.upper() for e in IMAGE_EXTENSIONS})]
    found = sorted({p for p in found if p.is_file()})
    if not found:
        raise DataError(f"{image}: defective test image without its mask (expected {mask_folder}/{image.stem}.png)")
    if len(found) > 1:
        raise DataError(f"{image}: several masks match it ({', '.join(p.name for p in found)}); keep one")
    return found[0]


def _btad(root: Path, folder: Path, with_test: bool):
    test = _typed_test(folder / "test", lambda kind, image: [_mask_by_stem(folder / "ground_truth" / kind, image)],
                       with_test, good="ok")
    return list_images(folder / "train" / "ok"), None, test


def _visa(root: Path, folder: Path, with_test: bool):
    table = root / "split_csv" / "1cls.csv"
    if not table.is_file():
        raise DataError(f"{table}: VisA's split file not found; VisA has no train/test folders, its split is "
                        "this CSV (it comes with the dataset)")
    train, test = [], []
    with open(table, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("object") == folder.name]
    if not rows:
        raise DataError(f"{table}: no rows for object {folder.name!r}")
    for number, row in enumerate(rows, 2):
        try:
            image = root / row["image"]
            split, label, mask = row["split"], row["label"], (row.get("mask") or "").strip()
        except KeyError as missing:
            raise DataError(f"{table}: no column {missing} (expected object,split,label,image,mask)") from None
        if not image.is_file():
            raise DataError(f"{table}, line {number}: image {image} not found")
        if split == "train":
            if label != "normal":
                raise DataError(f"{table}, line {number}: a training image labelled {label!r}")
            train.append(image)
        elif split == "test" and with_test:
            if label == "normal":
                test.append(TestImage(path=image, defect_type=GOOD, mask_paths=()))
            elif not mask:
                raise DataError(f"{image}: defective test image without its mask ({table}, line {number})")
            else:
                test.append(TestImage(path=image, defect_type="anomaly",
                                      mask_paths=(_require(root / mask, image),)))
        elif split != "test":
            raise DataError(f"{table}, line {number}: unknown split {split!r}")
    return sorted(train), None, test


def _folder(root: Path, folder: Path, with_test: bool):
    normal = list_images(folder / "normal")
    abnormal = _folder_or_none(folder / "abnormal") or []
    normal_test = _folder_or_none(folder / "normal_test")
    train = normal
    if normal_test is None and abnormal:
        normal_test = normal[::5]
        train = [path for index, path in enumerate(normal) if index % 5]
    test: list[TestImage] = []
    if with_test:
        test = [TestImage(path=path, defect_type=GOOD, mask_paths=()) for path in normal_test or []]
        mask_folder = folder / "mask"
        for image in abnormal:
            masks = (_mask_by_stem(mask_folder, image),) if mask_folder.is_dir() else ()
            test.append(TestImage(path=image, defect_type="abnormal", mask_paths=masks))
        _check_no_orphans(mask_folder, abnormal, lambda mask: mask.stem.removesuffix("_mask"))
    return train, None, test


TRAINING_NORMALS = {"mvtec": "train/good", "mvtec_ad2": "train/good", "loco": "train/good", "btad": "train/ok",
                    "visa": "../split_csv/1cls.csv", "folder": "normal"}
READERS = {"mvtec": _mvtec, "mvtec_ad2": _mvtec_ad2, "visa": _visa, "btad": _btad, "loco": _loco,
           "folder": _folder}
