"""File I/O shared by every stage: atomic writes, images and masks, checked
downloads and safe archive extraction.

Every output goes to a temp name in the same folder and is renamed over its
final name with `os.replace`, so an interrupted stage never leaves a
half-written file (docs/design.md §3). Downloads resume, retry and are
checked against a size and a sha256 before they take their final name;
archives are vetted member by member before a single byte is extracted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import lzma
import os
import secrets
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

import fgi.progress
from fgi.errors import UserError

# ---------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name in the same folder: os.replace is atomic only within one file system.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, sort_keys=True, indent=2) + "\n")


# ---------------------------------------------------------------- images and masks


def save_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 1) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as a PNG.

    zlib level 1, not Pillow's default 6: at 6 the encode was 70-90% of the prepare stage's time
    and level 1 writes ~4x faster for files ~17% larger (benchmarks/prepare.py); the pixels are
    the same either way.
    """
    if array.dtype != np.uint8 or array.shape[2:] not in ((), (3,)) or array.ndim < 2:
        raise ValueError(f"save_png wants uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", compress_level=compress_level)


def save_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a binary (H, W) mask (bool, or uint8 with values 0/1 or 0/255) as a 0/255 PNG."""
    if mask.ndim != 2:
        raise ValueError(f"save_mask wants an (H, W) mask, got shape {mask.shape}")
    if mask.dtype == np.uint8:
        values = set(np.unique(mask).tolist())
        if not (values <= {0, 1} or values <= {0, 255}):
            # A soft mask would be binarised by whoever loads it; make the caller choose where.
            raise ValueError(f"save_mask got a non-binary uint8 mask ({len(values)} values); threshold it first")
    elif mask.dtype != np.bool_:
        raise ValueError(f"save_mask wants bool or uint8, got {mask.dtype}")
    save_png(path, np.where(mask.astype(bool), 255, 0).astype(np.uint8))


def _decode(path: str | os.PathLike, mode: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image not found; check the path or rerun the stage that writes it")
    try:
        with Image.open(path) as image:
            # .load() forces a full decode, so a truncated file fails here and not later
            # (as long as ImageFile.LOAD_TRUNCATED_IMAGES stays False).
            image.load()
            return np.array(image.convert(mode), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(
            f"{path}: cannot decode image ({err}); the file is truncated or not an image, "
            "delete it and download or regenerate it"
        ) from err


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any image Pillow decodes as uint8 (H, W, 3) RGB."""
    return _decode(path, "RGB")


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as bool (H, W): True where the grey value is >= 128."""
    return _decode(path, "L") >= 128


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- downloads

# Worth another attempt: dropped connections, timeouts, short bodies, 5xx, 408, 429.
_TRANSIENT = (OSError, http.client.HTTPException)


def mismatch(path: Path, sha256: str, size_bytes: int) -> str:
    """Describe how `path` differs from the expected size/sha256; '' when it matches."""
    actual_size = path.stat().st_size
    if size_bytes and actual_size != size_bytes:
        return f"expected size {size_bytes} bytes, got {actual_size}"
    if sha256:
        actual = sha256_file(path)
        if actual.lower() != sha256.strip().lower():
            return f"expected sha256 {sha256}, got {actual}"
    return ""


def _fetch_once(url: str, part: Path, size_bytes: int, timeout: float, show: bool) -> None:
    """One GET that appends to (or restarts) `part`; raises on a short or dropped body."""
    have = part.stat().st_size if part.exists() else 0
    if size_bytes and have > size_bytes:
        part.unlink()  # longer than the whole file: not a prefix of it
        have = 0
    if size_bytes and have == size_bytes:
        return
    headers = {"User-Agent": "fgi-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            return  # nothing left to send: the part is complete (or too long) -- verification decides
        raise
    with response:
        if response.status == 206:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(have):
                part.unlink(missing_ok=True)
                raise http.client.HTTPException(f"server sent range {start!r}, asked for {have}; restarting")
        elif have:
            have = 0  # 200 to a range request: the server ignored the range and sends everything
        length = response.headers.get("Content-Length")
        end = have + int(length) if length and length.isdigit() else None
        with open(part, "ab" if have else "wb") as out, tqdm(
            total=end or size_bytes or None, initial=have, unit="B", unit_scale=True,
            unit_divisor=1024, desc=part.name.removesuffix(".part"), disable=not show,
        ) as bar:
            while block := response.read(1 << 16):
                out.write(block)
                bar.update(len(block))
        # http.client returns b"" on an early close instead of raising, so compare lengths.
        got = part.stat().st_size
        if end is not None and got < end:
            raise http.client.IncompleteRead(b"", end - got)


def download(
    url: str,
    dest: Path,
    sha256: str = "",
    size_bytes: int = 0,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 5,
) -> Path:
    """Download `url` to `dest`, resuming a `.part` left by an earlier try; check size and sha256.

    `dest` appears only once it verifies. An existing `dest` that verifies is returned
    without touching the network.
    """
    dest = Path(dest)
    if dest.is_file() and not mismatch(dest, sha256, size_bytes):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    show = progress and fgi.progress.enabled()
    by_hand = f"download it by hand and pass the local path instead of {url}"
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, size_bytes, timeout, show)
            break
        except ValueError as err:  # urllib's word for a malformed URL
            raise UserError(f"cannot download {url!r}: {err}; check the URL") from err
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code not in (408, 429):
                raise UserError(f"download of {url} failed: HTTP {err.code} {err.reason}; check the URL, or {by_hand}") from err
            failure: Exception = err
        except _TRANSIENT as err:
            failure = err
        if attempt == retries:
            raise UserError(
                f"download of {url} failed after {retries + 1} attempts ({failure}); "
                f"retry later (it resumes), or {by_hand}"
            ) from failure
        time.sleep(min(0.5 * 2**attempt, 30.0))
    problem = mismatch(part, sha256, size_bytes)
    if problem:
        part.unlink()
        raise UserError(f"download of {url}: {problem}; check the URL or the param that gives its sha256/size_bytes")
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------- archives


def _refuse(archive: Path, name: str, why: str) -> UserError:
    return UserError(f"{archive}: member {name!r} {why}; refusing the whole archive, get it from a trusted source")


def _member_path(archive: Path, name: str, is_dir: bool) -> PurePosixPath:
    """The relative path a member extracts to; UserError if it could land outside the target."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or PureWindowsPath(name).anchor or ".." in relative.parts:
        raise _refuse(archive, name, "would be written outside the target folder")
    if not relative.parts and not is_dir:
        raise _refuse(archive, name, "is a file without a name")
    return relative


def _zip_plan(archive: Path, zf: zipfile.ZipFile) -> list[tuple[PurePosixPath, zipfile.ZipInfo | None]]:
    plan = []
    for info in zf.infolist():
        relative = _member_path(archive, info.filename, info.is_dir())
        kind = stat.S_IFMT(info.external_attr >> 16)  # unix mode, 0 when made on Windows
        if kind == stat.S_IFLNK:
            raise _refuse(archive, info.filename, "is a symlink")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(archive, info.filename, "is a device, fifo or socket")
        plan.append((relative, None if info.is_dir() else info))
    return plan


def _tar_plan(archive: Path, tf: tarfile.TarFile) -> list[tuple[PurePosixPath, tarfile.TarInfo | None]]:
    plan = []
    for member in tf.getmembers():
        relative = _member_path(archive, member.name, member.isdir())
        if member.issym() or member.islnk():
            raise _refuse(archive, member.name, "is a symlink or hardlink")
        if not (member.isreg() or member.isdir()):
            raise _refuse(archive, member.name, "is a device, fifo or other special file")
        plan.append((relative, member if member.isreg() else None))
    return plan


def _extract_into(archive: Path, folder: Path) -> list[PurePosixPath]:
    """Vet every member, then write the archive's files under `folder`; return their relative paths."""
    # Tar first: a plain tar that ends with a zip member can pass is_zipfile, while a
    # zip never has a valid tar header checksum at offset 0.
    if tarfile.is_tarfile(archive):
        opened, plan_of, read = tarfile.open(archive), _tar_plan, lambda tf, info: tf.extractfile(info)
    elif zipfile.is_zipfile(archive):
        opened, plan_of, read = zipfile.ZipFile(archive), _zip_plan, lambda zf, info: zf.open(info)
    else:
        raise UserError(f"{archive}: not a zip or tar archive, or truncated; delete it and download it again")
    with opened as handle:
        plan = plan_of(archive, handle)  # all members are checked before anything is written
        folder.mkdir(parents=True)
        files: dict[PurePosixPath, None] = {}
        for relative, member in plan:
            out = folder.joinpath(*relative.parts)
            if member is None:
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with read(handle, member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            files[relative] = None
    return list(files)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a zip or (compressed) tar into `target`, refusing members that could escape it.

    Extraction goes to a hidden sibling that replaces `target` only once complete, so an
    interruption leaves the old `target` (or none) rather than half an archive.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found; check the path or download it again")
    partial = target.parent / f".{target.name}.partial"
    old = target.parent / f".{target.name}.old"
    if old.exists() and not target.exists():
        old.rename(target)  # an earlier run died between its two renames
    for leftover in (partial, old):
        _remove(leftover)
    try:
        relatives = _extract_into(archive, partial)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise  # a disk or permission problem, not a bad archive
        raise UserError(f"{archive}: corrupt or truncated archive ({err}); delete it and download it again") from err
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rename(old)
    partial.rename(target)
    _remove(old)
    return [target.joinpath(*relative.parts) for relative in relatives]
