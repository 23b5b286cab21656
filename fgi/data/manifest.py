"""The `manifest` stage: what a folder source holds, file by file, with sizes and sha256.

dvc.yaml lists the four folder keys (data.folder.images / .foreground, holes.folder.train /
.test) as this stage's deps, so DVC hashes those folders, outside the repository, and `dvc status`
names this stage when a file is added, changed or removed, before any `dvc repro`. DVC cannot
depend on an empty path, so a key that names no folder is `none` (the stand-in folder none/; fgi's
params read it as "", see fgi.config.NO_FOLDER). The stage lists the folders the params name:

    images.csv       stem, path, bytes, sha256           the faces (data.folder.images)
    foreground.csv   stem, path, bytes, sha256           their foreground masks (data.folder.foreground)
    holes.csv        folder, stem, path, bytes, sha256   the hole masks (holes.folder.train / .test)
    summary.json     each folder, its files, bytes and the files ignored

`path` is relative to its folder. A CSV changes only when its folder's files do, so an added,
changed or removed file reruns exactly the stages that read that CSV (prepare reads images.csv
and foreground.csv, foreground reads foreground.csv, holes reads holes.csv) and DVC skips the
rest. A source that is no folder gets a CSV with the header only.

A folder is searched recursively (FFHQ keeps its faces in 70 sub-folders). Its images are the
files whose extension Pillow opens; hidden files (`.DS_Store`, `._a.jpg`, `.git/`) and other
files are left out and counted. Refused, each with one line naming the file and the fix, before
anything is written: a folder that does not exist, a symlink that leads out of the folder, two
files of one stem (`a.png` and `a.jpg`, or `A.png`: outputs are named by the stem), a stem that
cannot name an output, an empty folder, images without a mask or masks without an image, and
a test folder of holes inside the training one or around it. (A folder that does not exist stops
`dvc repro` before this stage runs, DVC failing to hash its dep; `dvc status` shows it deleted.)

Hashing a large set takes minutes, so each file's sha256 is kept in `data/manifest_cache/` (no
DVC output, like `data/fid_cache/`) with the file's size and modification time, and computed
again only when one of them changes, as DVC's own hash cache does.
"""

from __future__ import annotations

import json
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from fgi import files, progress
from fgi.config import Params
from fgi.data.layout import read_csv, worker_count, write_csv
from fgi.errors import UserError

COLUMNS = ("stem", "path", "bytes", "sha256")
HOLE_COLUMNS = ("folder", *COLUMNS)
SHOWN = 5  # stems a message lists before it says how many more


def _openable_suffixes() -> frozenset[str]:
    Image.init()
    return frozenset(suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN)


IMAGE_SUFFIXES = _openable_suffixes()


@dataclass(frozen=True)
class Listed:
    stem: str
    path: str   # relative to the folder, POSIX
    file: Path  # where it is read


def _first(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _bad_stem(stem: str) -> bool:
    """A stem that cannot name an output file, or a line of train.txt, as it is."""
    return not stem or stem != stem.strip() or any(unicodedata.category(c).startswith("C") for c in stem)


def scan(folder: str, key: str) -> tuple[list[Listed], int]:
    """The image files under `folder` (params key `key`), sorted by path, and the count of files left out."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise UserError(f"{key}: {folder} {what}; give the folder that holds the files (an absolute path)")
    real_root = root.resolve()
    listed, ignored, seen, pending = [], 0, {real_root}, [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                if entry.name.startswith("."):
                    ignored += 1  # .DS_Store, macOS's ._a.jpg resource forks, .git/
                    continue
                real = path.resolve()
                if not real.is_relative_to(real_root):
                    raise UserError(f"{path}: a symlink to {real}, outside {key} ({root}); copy the file into the "
                                    "folder, or give a folder that holds both")
                if real.is_dir():
                    if real not in seen:  # a link back into the tree is walked once
                        seen.add(real)
                        pending.append(path)
                elif not real.exists():
                    raise UserError(f"{path}: a symlink to {real}, which does not exist; remove it or restore the file")
                elif path.suffix.lower() in IMAGE_SUFFIXES:
                    listed.append(Listed(path.stem, path.relative_to(root).as_posix(), path))
                else:
                    ignored += 1
    if not listed:
        raise UserError(f"{key}: {folder} holds no image file ({ignored} other file(s) left out); give the folder "
                        "of the images, in a format Pillow reads (PNG, JPEG, ...)")
    listed.sort(key=lambda item: item.path)
    _check_stems(listed, key)
    return listed, ignored


def _check_stems(listed: list[Listed], key: str) -> None:
    by_stem: dict[str, list[str]] = {}
    for item in listed:
        if _bad_stem(item.stem):
            raise UserError(f"{item.file}: its name {item.stem!r} starts or ends with a space or holds a control "
                            "character, and outputs are named by it; rename the file")
        by_stem.setdefault(item.stem.casefold(), []).append(item.path)
    clashes = [" and ".join(paths) for paths in by_stem.values() if len(paths) > 1]
    if clashes:
        raise UserError(f"{key}: {len(clashes)} stem(s) name more than one file ({_first(clashes)}); outputs are "
                        "named by the stem, so keep one file per stem (names may not differ only by extension or "
                        "case)")


def check_pairs(images: list[Listed], masks: list[Listed], folder: str) -> None:
    """Every image has a mask of its stem and every mask an image."""
    image_stems, mask_stems = {item.stem for item in images}, {item.stem for item in masks}
    no_mask, no_image = sorted(image_stems - mask_stems), sorted(mask_stems - image_stems)
    problems = []
    if no_mask:
        problems.append(f"{len(no_mask)} image(s) have no mask ({_first(no_mask)})")
    if no_image:
        problems.append(f"{len(no_image)} mask(s) have no image ({_first(no_image)})")
    if problems:
        raise UserError(f"data.folder.foreground: {' and '.join(problems)} in {folder}, matched by file stem "
                        "(a.jpg and a.png); give every image its mask and remove the masks of other images")


def check_apart(train: str, test: str) -> None:
    """Neither hole folder inside the other: a test mask must not also be a training mask."""
    a, b = Path(train).expanduser().resolve(), Path(test).expanduser().resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise UserError(f"holes.folder.test: {test} and holes.folder.train {train} overlap, so test masks would "
                        "be training masks; give two separate folders, or test \"\" to hold out "
                        "holes.folder.test_share of the training folder")


def hashes(listed: list[Listed], cache: Path, workers: int, desc: str) -> list[tuple[int, str]]:
    """(bytes, sha256) of each file, from `cache` where its size and modification time are unchanged."""
    try:
        known = json.loads(cache.read_text()) if cache.is_file() else {}
    except json.JSONDecodeError:
        known = {}  # a damaged cache costs a rehash, nothing more
    stats = [item.file.stat() for item in listed]
    keys = [str(item.file.resolve()) for item in listed]
    stale = [i for i, (key, stat) in enumerate(zip(keys, stats))
             if known.get(key, [None, None])[:2] != [stat.st_size, stat.st_mtime_ns]]
    # hashlib releases the GIL on large buffers, so threads hash files side by side.
    with ThreadPoolExecutor(worker_count(workers)) as pool:
        fresh = progress.bar(pool.map(files.sha256_file, (listed[i].file for i in stale)), total=len(stale),
                             desc=desc, unit="file")
        for i, digest in zip(stale, fresh):
            known[keys[i]] = [stats[i].st_size, stats[i].st_mtime_ns, digest]
    files.write_json_atomic(cache, {key: known[key] for key in keys})
    return [(stat.st_size, known[key][2]) for key, stat in zip(keys, stats)]


def _rows(listed: list[Listed], cache: Path, workers: int, desc: str) -> list[dict]:
    return [{"stem": item.stem, "path": item.path, "bytes": size, "sha256": digest}
            for item, (size, digest) in zip(listed, hashes(listed, cache, workers, desc))]


def build_manifests(params: Params, out: Path, cache: Path = Path("data/manifest_cache")) -> dict:
    """List the folders of the folder sources into `out`; return the files of each and its `summary.json`."""
    data, holes = params.data.folder, params.holes.folder
    found: dict[str, tuple[str, list[Listed], int]] = {}  # name: folder, its images, files left out
    if params.data.source == "folder":
        found["images"] = (data.images, *scan(data.images, "data.folder.images"))
        if data.foreground.strip():
            found["foreground"] = (data.foreground, *scan(data.foreground, "data.folder.foreground"))
            check_pairs(found["images"][1], found["foreground"][1], data.foreground)
    if params.holes.source == "folder":
        found["holes_train"] = (holes.train, *scan(holes.train, "holes.folder.train"))
        if holes.test.strip():
            check_apart(holes.train, holes.test)
            found["holes_test"] = (holes.test, *scan(holes.test, "holes.folder.test"))
    # Every folder is checked before the first file is hashed or written.
    rows = {name: _rows(listed, cache / f"{name}.json", params.data.workers, f"manifest {name}")
            for name, (_, listed, _) in found.items()}
    write_csv(out / "images.csv", COLUMNS, rows.get("images", []))
    write_csv(out / "foreground.csv", COLUMNS, rows.get("foreground", []))
    write_csv(out / "holes.csv", HOLE_COLUMNS, [{"folder": "train", **row} for row in rows.get("holes_train", [])]
              + [{"folder": "test", **row} for row in rows.get("holes_test", [])])
    folders = {name: {"folder": folder, "files": len(listed), "bytes": sum(row["bytes"] for row in rows[name]),
                      "left_out": ignored} for name, (folder, listed, ignored) in found.items()}
    files.write_json_atomic(out / "summary.json", folders)
    return {**{name: len(listed) for name, (_, listed, _) in found.items()}, "folders": folders}


def read_manifest(manifest: Path, name: str) -> list[dict]:
    """The rows of `<manifest>/<name>.csv` (images, foreground or holes)."""
    path = Path(manifest) / f"{name}.csv"
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro manifest`")
    return read_csv(path)
