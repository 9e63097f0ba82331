"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one, and
after a power loss the new one is there once the write has returned.

The data is flushed to disk (`fsync`) before the rename, and the folder after it, so that the
rename itself is on disk; without the first, a crash can leave the new name pointing at an empty
file (ext4, XFS with delayed allocation). Folders cannot be fsynced on Windows: skipped there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Calls `write(tmp_path)` on a temporary file beside `path`, flushes it to disk, then renames
    it over `path` and flushes the folder.

    The temporary name keeps the suffix so that writers that look at it (Keras, matplotlib) work.
    The file gets the permissions a plainly created one would (0666 less the umask), not the
    owner-only 0600 of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _created_mode())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _created_mode() -> int:
    """0666 less the process's umask: the mode `open(path, "w")` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync(path: Path) -> None:
    """Flushes a file's or a folder's data to disk."""
    if path.is_dir() and os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_png(path: Path, image) -> None:
    """Writes `[H, W, 3]` RGB or `[H, W]` gray in [0, 1] as an 8-bit PNG, atomically."""
    import cv2
    import numpy as np

    array = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)

    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), array):
            raise OSError(f"{path}: could not write image")

    write_atomic(path, write)
