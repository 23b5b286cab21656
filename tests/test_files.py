"""fgi.files against real files, real archives and a real loopback HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgi.errors import UserError
from fgi.files import (
    atomic_path,
    download,
    load_image_rgb,
    load_mask,
    safe_extract,
    save_mask,
    save_png,
    sha256_file,
    write_json_atomic,
)

MAX_REQUESTS = 20  # per test; a retry loop gone wrong fails fast instead of hammering


def _image_bytes(fmt: str, seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    return {
        "faces/00000.png": _image_bytes("PNG", 0),
        "faces/00001.jpg": _image_bytes("JPEG", 1, size=32),
        "README.txt": b"three small files\n",
    }


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz", extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buffer.getvalue()


# ---------------------------------------------------------------- loopback server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        body = server.files.get(self.path)
        if len(server.requests) > MAX_REQUESTS or body is None:
            self.send_error(404 if body is None else 503)
            return
        start = 0
        requested = self.headers.get("Range")
        if requested and self.path not in server.ignore_range:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = server.cut_once.pop(self.path, None)
        if cut is None:
            self.wfile.write(body[start:])
        else:  # promise the whole body, send part of it, hang up
            self.wfile.write(body[start:cut])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_once, httpd.ignore_range = {}, [], {}, set()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# ---------------------------------------------------------------- downloads


def test_download_checks_size_and_sha256_then_reuses_dest(server, tmp_path, members):
    payload = _tar_bytes(members)
    server.files["/data.tar.gz"] = payload
    dest = tmp_path / "raw" / "data.tar.gz"
    digest = hashlib.sha256(payload).hexdigest()
    got = download(server.url("/data.tar.gz"), dest, sha256=digest, size_bytes=len(payload), progress=False)
    assert got == dest and dest.read_bytes() == payload
    assert not dest.with_name("data.tar.gz.part").exists()
    # A verified dest is returned without a request.
    download(server.url("/data.tar.gz"), dest, sha256=digest, size_bytes=len(payload), progress=False)
    assert len(server.requests) == 1


def test_download_resumes_after_connection_drop(server, tmp_path, members):
    payload = _zip_bytes(members) + bytes(range(256)) * 64
    half = len(payload) // 2
    server.files["/a.zip"] = payload
    server.cut_once["/a.zip"] = half
    dest = tmp_path / "a.zip"
    download(server.url("/a.zip"), dest, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert [r["range"] for r in server.requests] == [None, f"bytes={half}-"]


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    payload = bytes(range(256)) * 8
    server.files["/x.bin"] = payload
    server.ignore_range.add("/x.bin")
    dest = tmp_path / "x.bin"
    dest.with_name("x.bin.part").write_bytes(b"stale bytes from another file")
    download(server.url("/x.bin"), dest, size_bytes=len(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests[0]["range"] == "bytes=29-"


def test_download_complete_part_gets_416_and_is_verified(server, tmp_path):
    payload = b"0123456789" * 10
    server.files["/done.bin"] = payload
    dest = tmp_path / "done.bin"
    dest.with_name("done.bin.part").write_bytes(payload)
    download(server.url("/done.bin"), dest, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert [r["range"] for r in server.requests] == ["bytes=100-"]


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_download_mismatch_leaves_nothing(server, tmp_path, wrong):
    payload = b"payload" * 100
    server.files["/p.bin"] = payload
    dest = tmp_path / "p.bin"
    expected = {"size": {"size_bytes": 701}, "sha256": {"sha256": "0" * 64}}[wrong]
    with pytest.raises(UserError) as err:
        download(server.url("/p.bin"), dest, progress=False, **expected)
    message = str(err.value)
    assert server.url("/p.bin") in message
    actual = "700" if wrong == "size" else hashlib.sha256(payload).hexdigest()
    assert str(next(iter(expected.values()))) in message and actual in message
    assert "sha256" in message
    assert list(tmp_path.iterdir()) == []


def test_download_not_found_is_a_user_error_without_retries(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404.*by hand"):
        download(server.url("/missing.zip"), tmp_path / "m.zip", progress=False)
    assert len(server.requests) == 1


def test_download_unreachable_host_suggests_manual_download(tmp_path):
    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.zip"
    with pytest.raises(UserError, match="after 2 attempts.*by hand") as err:
        download(url, tmp_path / "f.zip", progress=False, timeout=2.0, retries=1)
    assert url in str(err.value)


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize("kind", ["zip", "w", "w:gz", "w:bz2", "w:xz"])
def test_safe_extract_good_archive(tmp_path, members, kind):
    archive = tmp_path / "good.archive"  # no telling suffix: detection is by content
    archive.write_bytes(_zip_bytes(members) if kind == "zip" else _tar_bytes(members, kind))
    target = tmp_path / "out"
    files = safe_extract(archive, target)
    assert sorted(files) == sorted(target / name for name in members)
    for name, data in members.items():
        assert (target / name).read_bytes() == data
    decoded = np.asarray(Image.open(io.BytesIO(members["faces/00000.png"])))
    np.testing.assert_array_equal(load_image_rgb(target / "faces/00000.png"), decoded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.archive", "out"]


def test_safe_extract_replaces_existing_target(tmp_path, members):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes(members))
    target = tmp_path / "out"
    (target / "old").mkdir(parents=True)
    (target / "old" / "stale.txt").write_text("from an earlier extraction")
    safe_extract(archive, target)
    assert not (target / "old").exists() and (target / "README.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(
    "archive_bytes, member",
    [
        (lambda: _zip_bytes({"ok.txt": b"fine", "../evil.txt": b"x"}), "../evil.txt"),
        (lambda: _zip_bytes({"ok.txt": b"fine", "C:\\evil.txt": b"x"}), "C:\\evil.txt"),
        (lambda: _tar_bytes({"ok.txt": b"fine", "/etc/fgi-evil": b"x"}), "/etc/fgi-evil"),
        (lambda: _tar_bytes({"ok.txt": b"fine", "a/../../evil": b"x"}), "a/../../evil"),
        (lambda: _tar_bytes({"ok.txt": b"fine"}, extra=(_special("link", tarfile.SYMTYPE, "/etc/passwd"),)), "link"),
        (lambda: _tar_bytes({"ok.txt": b"fine"}, extra=(_special("hard", tarfile.LNKTYPE, "ok.txt"),)), "hard"),
        (lambda: _tar_bytes({"ok.txt": b"fine"}, extra=(_special("pipe", tarfile.FIFOTYPE),)), "pipe"),
    ],
    ids=["zip-parent", "zip-drive", "tar-absolute", "tar-dotdot", "tar-symlink", "tar-hardlink", "tar-fifo"],
)
def test_safe_extract_refuses_escaping_members(tmp_path, archive_bytes, member):
    folder = tmp_path / "work"
    folder.mkdir()
    archive = folder / "bad.archive"
    archive.write_bytes(archive_bytes())
    with pytest.raises(UserError) as err:
        safe_extract(archive, folder / "sub" / "target")
    assert str(archive) in str(err.value) and repr(member) in str(err.value)
    # Refused before writing: not even "ok.txt", which precedes the bad member.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["work", "work/bad.archive"]


@pytest.mark.parametrize("content", ["truncated", "garbage"])
def test_safe_extract_corrupt_archive(tmp_path, members, content):
    whole = _tar_bytes(members, "w:gz")
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2] if content == "truncated" else b"not an archive" * 50)
    with pytest.raises(UserError, match="broken.tar.gz"):
        safe_extract(archive, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["broken.tar.gz"]


# ---------------------------------------------------------------- images, masks, atomic writes


def test_load_image_rgb_rejects_truncated_jpeg_and_missing_file(tmp_path):
    jpeg = _image_bytes("JPEG", 2, size=64)
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    whole.write_bytes(jpeg)
    cut.write_bytes(jpeg[: len(jpeg) // 2])
    assert load_image_rgb(whole).shape == (64, 64, 3)
    with pytest.raises(UserError, match="cut.jpg.*truncated"):
        load_image_rgb(cut)
    with pytest.raises(UserError, match="nothere.png.*not found"):
        load_image_rgb(tmp_path / "nothere.png")
    with pytest.raises(UserError, match="nothere.png"):
        load_mask(tmp_path / "nothere.png")


def test_png_and_mask_round_trip(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    save_png(tmp_path / "deep" / "img.png", rgb)
    np.testing.assert_array_equal(load_image_rgb(tmp_path / "deep" / "img.png"), rgb)
    hole = np.array([[True, False], [False, True]])
    save_mask(tmp_path / "m.png", hole)
    with Image.open(tmp_path / "m.png") as stored:
        assert stored.mode == "L"
        np.testing.assert_array_equal(np.asarray(stored), [[255, 0], [0, 255]])
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), hole)
    # A grey image thresholds at 128.
    Image.fromarray(np.array([[127, 128]], dtype=np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "g.png"), [[False, True]])
    with pytest.raises(ValueError, match="threshold"):
        save_mask(tmp_path / "soft.png", np.array([[0, 100]], dtype=np.uint8))


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_sha256_file_in_small_chunks(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 example
    assert sha256_file(tmp_path / "abc", chunk=1) == expected
