"""Fetching MVTec AD: streamed, resumable, checked against its sha256, extracted safely.

The archive (5.3 GB) is written to `<root>/<archive name>.partial` while it downloads; a broken
connection leaves that file, and the next call continues it with an HTTP Range request. Only a
file whose sha256 matches is renamed to its final name and extracted. Extraction uses Python's
`tarfile` "data" filter, which refuses absolute paths, `..`, links that leave the target and
device files; with `categories`, only those top-level folders are extracted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from cae_keras.errors import DataError

MVTEC_URL = ("https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"
             "420938113-1629952094/mvtec_anomaly_detection.tar.xz")
MVTEC_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
MVTEC_SIZE = 5_264_982_680
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Archive:
    """Where to fetch an archive from and what it must hash to."""

    url: str = MVTEC_URL
    sha256: str = MVTEC_SHA256
    size: int | None = MVTEC_SIZE

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1] or "archive.tar"


def _manual_steps(archive: Archive, target: Path) -> str:
    return (f"download {archive.url} by hand (e.g. from mvtec.com), save it as {target}, "
            "and run the same command again: it checks and extracts a file that is already there")


def fetch(archive: Archive, root: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Downloads the archive into `root` (resuming a partial download) and verifies its sha256.

    Returns:
        the path of the verified archive.

    Raises:
        DataError: the server cannot be reached (with the manual steps), or the checksum is wrong
            (the bad file is removed so the next call starts again).
    """
    from tqdm import tqdm  # text bars: a notebook without widget support shows them right too

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / archive.filename
    if final.is_file():
        _verify(final, archive)
        return final
    partial = final.with_name(final.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # asked past the end: the partial file is complete
            response = None
        else:
            raise DataError(f"{archive.url}: HTTP {error.code} {error.reason}; {_manual_steps(archive, final)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"cannot reach {archive.url} ({reason}): offline? {_manual_steps(archive, final)}") from None
    if response is not None:
        with response:
            if have and response.status != 206:  # the server ignored the Range header: start over
                have = 0
            total = archive.size or (have + int(response.headers.get("Content-Length", 0)) or None)
            with open(partial, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=archive.filename,
                disable=not progress,
            ) as bar:
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                except (OSError, urllib.error.URLError) as error:
                    raise DataError(f"download of {archive.url} broke off ({error}); run the same command "
                                    f"again to continue from {partial.stat().st_size:,d} bytes") from None
    if archive.size is not None and partial.stat().st_size < archive.size:
        raise DataError(f"download of {archive.url} stopped at {partial.stat().st_size:,d} of {archive.size:,d} "
                        "bytes; run the same command again to continue")
    _verify(partial, archive)
    os.replace(partial, final)
    return final


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, archive: Archive) -> None:
    actual = sha256_of(path)
    if actual != archive.sha256:
        path.unlink()
        raise DataError(f"{path}: sha256 {actual} does not match the expected {archive.sha256}; "
                        "the file was removed, run the command again to download it anew")


def extract(path: Path, root: Path, categories: list[str] | None = None) -> list[str]:
    """Extracts a verified tar archive into `root`, safely; returns the top-level folders written.

    Raises:
        DataError: a member that would leave `root` (absolute path, `..`, a link pointing out, a
            device file), or a requested category that is not in the archive.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(categories or [])
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers()
                   if not wanted or Path(m.name).parts[:1] and Path(m.name).parts[0] in wanted]
        found = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
        missing = wanted - found
        if missing:
            raise DataError(f"{path}: no category {sorted(missing)} in the archive")
        if not hasattr(tarfile, "data_filter"):
            raise DataError("safe extraction needs Python 3.10.12, 3.11.4, 3.12 or newer (tarfile's data filter)")
        try:  # check every member before writing anything, so a bad archive leaves nothing behind
            for member in members:
                if member.name.startswith(("/", "\\")) or ".." in Path(member.name).parts:
                    raise tarfile.FilterError(f"{member.name!r} is absolute or climbs out with '..'")
                tarfile.data_filter(member, str(root))
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as error:
            raise DataError(f"{path}: refused unsafe archive member ({error}); nothing was extracted") from None
    return sorted(found)


def download(root: Path, categories: list[str] | None = None, archive: Archive = Archive(),
             progress: bool = True) -> list[str]:
    """Fetches, verifies and extracts; returns the category folders now under `root`."""
    return extract(fetch(archive, root, progress=progress), root, categories)
