"""Released weights in the `weights` stage: each method whose `models.<name>.released` is set.

A profile may give a baseline its authors' released weights instead of training it
(README: "Baselines from released weights"):

    models:
      lama:
        released: {url: https://.../lama-celeba-hq.zip, path: "", sha256: ""}

The weights stage brings what `url` or `path` names into `data/weights/released/<name>/`,
where `train@<name>` imports it (`fgi.training.released`):

* `url`: downloaded to `downloads/released/<name>/` (resumable, `fgi.files.download`), with
  its sha256 checked when given; an archive (zip, tar) is extracted safely, anything else
  copied as it is.
* `path`: a local file (archive or checkpoint), handled the same way, or a folder (the
  release as unpacked), copied.

Its sha256 (of the file, or of every file of a folder) is recorded in `provenance.json`
under `released/<name>`; a mismatch with the given `sha256`, a missing path or a failed
download is one error naming the key and the fix, and nothing is left under
`released/<name>/` half-written. This module reads the raw `models` mappings, so the weights
stage imports no method.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fgi import files
from fgi.config import Params, ReleasedWeights
from fgi.errors import UserError
from fgi.schema import ParamsError, build_section

FOLDER = "released"
DOWNLOADS = Path("downloads") / FOLDER
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def requested(params: Params) -> dict[str, ReleasedWeights]:
    """{method: its `released` section} for each section under `models` with url or path set,
    listed under `methods` or not: the stage's params are those keys alone (dvc.yaml)."""
    found, problems = {}, []
    for name, raw in params.models.items():
        if not isinstance(raw, dict) or "released" not in raw:
            continue  # a method that cannot import has no such key (its section check says so)
        section = build_section(raw["released"], ReleasedWeights, f"models.{name}.released", problems)
        if section is not None and section.given:
            found[name] = section
    if problems:
        raise ParamsError(problems)
    return found


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVES)


def _local(name: str, released: ReleasedWeights) -> Path:
    """The file or folder the release is, downloading it first when `url` names it."""
    key = f"models.{name}.released"
    if released.path.strip():
        local = Path(released.path).expanduser()
        if not local.exists():
            raise UserError(f"{key}.path: {local} does not exist; put the release there, or set {key}.url")
        if local.is_file() and released.sha256.strip():
            problem = files.mismatch(local, released.sha256, 0)
            if problem:
                raise UserError(f"{local}: {problem} ({key}.sha256); the file is incomplete, corrupt or "
                                "another release: download it again, or correct the sha256")
        if local.is_dir() and released.sha256.strip():
            raise UserError(f"{key}.sha256 checks one file, and {local} is a folder; give the archive or "
                            f"checkpoint file as {key}.path, or leave {key}.sha256 empty")
        return local
    url = released.url.strip()
    target = DOWNLOADS / name / (url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "release")
    try:
        return files.download(url, target, sha256=released.sha256)
    except UserError as err:
        raise UserError(f"{key}.url: {err}. Offline, download it on a machine with internet and set "
                        f"{key}.path to the file") from err


def _file_hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): files.sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def fetch_one(name: str, released: ReleasedWeights, out: Path) -> dict:
    """Bring method `name`'s release into `out/released/<name>/`; its provenance entry."""
    local = _local(name, released)
    target = out / FOLDER / name
    staging = target.parent / f".{name}.incoming"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    entry = {"status": "released", "source": released.url.strip() or str(local)}
    if local.is_dir():
        shutil.copytree(local, staging)
        entry["form"] = "folder"
    elif is_archive(local):
        files.safe_extract(local, staging)
        entry.update(form="archive", sha256=files.sha256_file(local))
    else:
        staging.mkdir()
        shutil.copyfile(local, staging / local.name)
        entry.update(form="file", sha256=files.sha256_file(local))
    entry["checksum"] = "checked" if released.sha256.strip() else "recorded, not checked (no sha256 given)"
    entry["files"] = _file_hashes(staging)
    if not entry["files"]:
        shutil.rmtree(staging)
        raise UserError(f"{local}: nothing in it; models.{name}.released must name the release's checkpoint "
                        "file, an archive holding it, or its folder")
    shutil.rmtree(target, ignore_errors=True)  # replaced only now that the new copy is whole
    staging.rename(target)
    return entry


def fetch_released(params: Params, out: Path) -> dict:
    """{`released/<name>`: provenance entry} for every method with released weights; folders of
    methods no longer asking for them are removed."""
    wanted = requested(params)
    entries = {f"{FOLDER}/{name}": fetch_one(name, released, out) for name, released in wanted.items()}
    if (out / FOLDER).is_dir():
        for folder in (out / FOLDER).iterdir():
            if folder.name not in wanted:
                shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
    return entries


def released_folder(weights: Path, name: str) -> Path:
    """Where the weights stage put method `name`'s release."""
    return weights / FOLDER / name
