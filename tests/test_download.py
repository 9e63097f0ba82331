"""The download path against a local HTTP server serving archives the tests make."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cae_keras import download
from cae_keras.cli import main
from cae_keras.errors import DataError


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, content = entry
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


GOOD = _tar([("bottle/train/good/000.png", b"png-bytes"), ("cable/train/good/000.png", b"png"),
             ("license.txt", b"CC BY-NC-SA 4.0")])


class Server:
    """Serves `files` by name; honours Range; `cut_after` bytes then drops the connection, once."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.requests: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                requested = self.headers.get("Range")
                server.requests.append(requested)
                start = int(requested.split("=")[1].split("-")[0]) if requested else 0
                self.send_response(206 if requested else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload, server.cut_after = payload[:server.cut_after], None
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def _archive(server: Server, name: str, body: bytes, sha: str | None = None) -> download.Archive:
    server.files[name] = body
    return download.Archive(url=server.url(name), sha256=sha or hashlib.sha256(body).hexdigest(), size=len(body))


def test_good_archive_is_fetched_verified_and_only_the_category_kept(server, tmp_path):
    archive = _archive(server, "mvtec.tar.xz", GOOD)
    found = download.download(tmp_path, ["bottle"], archive, progress=False)
    assert found == ["bottle"]
    assert (tmp_path / "bottle" / "train" / "good" / "000.png").read_bytes() == b"png-bytes"
    assert not (tmp_path / "cable").exists()
    assert (tmp_path / "mvtec.tar.xz").is_file() and not (tmp_path / "mvtec.tar.xz.partial").exists()
    server.files.clear()  # a second call uses the verified file already there, no network
    assert download.download(tmp_path, ["cable"], archive, progress=False) == ["cable"]


def test_broken_connection_resumes_with_a_range_request(server, tmp_path):
    archive = _archive(server, "mvtec.tar.xz", GOOD)
    server.cut_after = len(GOOD) // 2
    with pytest.raises(DataError, match="run the same command again"):
        download.fetch(archive, tmp_path, progress=False)
    partial = tmp_path / "mvtec.tar.xz.partial"
    assert partial.stat().st_size == len(GOOD) // 2
    path = download.fetch(archive, tmp_path, progress=False)
    assert server.requests[-1] == f"bytes={len(GOOD) // 2}-"
    assert path.read_bytes() == GOOD


def test_wrong_checksum_is_refused_and_removed(server, tmp_path):
    archive = _archive(server, "mvtec.tar.xz", GOOD, sha="0" * 64)
    with pytest.raises(DataError, match="does not match"):
        download.download(tmp_path, None, archive, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", [
    ("../evil.txt", b"x"),
    ("/tmp/cae_keras_evil_absolute.txt", b"x"),
    "symlink",
    "device",
])
def test_malicious_archive_extracts_nothing(server, tmp_path, entry):
    if entry == "symlink":
        entry = tarfile.TarInfo("bottle/link")
        entry.type, entry.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif entry == "device":
        entry = tarfile.TarInfo("bottle/dev")
        entry.type = tarfile.CHRTYPE
    body = _tar([("bottle/ok.txt", b"fine"), entry])
    archive = _archive(server, "bad.tar.xz", body)
    target = tmp_path / "root"
    with pytest.raises(DataError, match="unsafe archive member"):
        download.download(target, None, archive, progress=False)
    assert not (target / "bottle").exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/cae_keras_evil_absolute.txt").exists()


def test_offline_gives_one_message_with_the_manual_steps(tmp_path, capsys):
    code = main(["download", "--root", str(tmp_path), "--url", "http://127.0.0.1:9/mvtec.tar.xz"])
    error = capsys.readouterr().err
    assert code == 2 and "cannot reach" in error and "by hand" in error and "Traceback" not in error


def test_missing_category_in_archive(server, tmp_path):
    archive = _archive(server, "mvtec.tar.xz", GOOD)
    with pytest.raises(DataError, match="no category \\['zipper'\\]"):
        download.download(tmp_path, ["zipper"], archive, progress=False)
