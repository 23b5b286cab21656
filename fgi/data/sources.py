"""Raw data sources in their real layouts: CelebAMask-HQ and QD-IMD (docs/design.md §3).

Each source is either synthesised offline (`fgi.data.synthetic` writes exactly
the real layout) or taken from the real archive, downloaded from a URL
(resumable, checked) or read from a local path (archive or extracted folder),
extracted safely and checked. Either way the result is one folder:

    celebamask_hq/CelebA-HQ-img/<k>.jpg
    celebamask_hq/CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<part>.png
    qd_imd/{train,test}/<i:05d>_<split>.png          (black = hole)

A folder source (`data.source: folder`, `holes.source: folder`: a user's own
files) is not copied: the manifest stage lists it (`fgi.data.manifest`) and
prepare and holes read it where it is. Its folder here holds only
`source.json`, which says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fgi import files
from fgi.config import ArchiveSource, Params
from fgi.data import doodles, synthetic
from fgi.errors import UserError

IMAGE_DIR = "CelebA-HQ-img"
ANNOTATION_DIR = "CelebAMask-HQ-mask-anno"
DOWNLOADS = Path("downloads")


def celebamask_image(root: Path, image_id: int) -> Path:
    return root / IMAGE_DIR / f"{image_id}.jpg"


def celebamask_part(root: Path, image_id: int, part: str) -> Path:
    return root / ANNOTATION_DIR / str(image_id // 2000) / f"{image_id:05d}_{part}.png"


def _obtain(source: ArchiveSource, key: str, out: Path, marker: str) -> None:
    """Download or copy the archive of `source`, extract it safely, and move the folder
    holding `marker` (e.g. `CelebA-HQ-img`) into `out`."""
    if source.path:
        local = Path(source.path)
        if not local.exists():
            raise UserError(f"{key}.path: {local} does not exist; put the archive there or set "
                            f"{key}.url (README: 'The paper run')")
    else:
        name = source.url.rstrip("/").rsplit("/", 1)[-1] or "archive"
        local = files.download(source.url, DOWNLOADS / name, sha256=source.sha256,
                               size_bytes=source.size_bytes)
    if local.is_file() and source.path:
        problem = files.mismatch(local, source.sha256, source.size_bytes)
        if problem:
            raise UserError(f"{local}: {problem} ({key}.sha256 / {key}.size_bytes); the file is "
                            "incomplete, corrupt or a different release")
    staging = out.parent / f".{out.name}.extracted"
    if local.is_dir():
        found = _find_folder(local, marker, key)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(found, staging)
        found = staging
    else:
        files.safe_extract(local, staging)
        found = _find_folder(staging, marker, key)
    # Replace `out` only now that the data is complete.
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(found), str(out))
    shutil.rmtree(staging, ignore_errors=True)


def _find_folder(root: Path, marker: str, key: str) -> Path:
    """The folder (root itself or one below it, at most two levels) that holds `marker`."""
    for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir()),
                      *sorted(p for p in root.glob("*/*") if p.is_dir())):
        if (candidate / marker).is_dir():
            return candidate
    raise UserError(f"{root}: no folder {marker}/ inside; {key} must point at the official archive "
                    "or its extracted folder")


def _left_in_place(out: Path, source: str, key: str) -> dict:
    """The stage's output for a folder source: a note, as the files stay in the user's folder."""
    shutil.rmtree(out, ignore_errors=True)
    files.write_json_atomic(out / "source.json", {
        "source": source, "note": f"{key} is read where it is: data/manifest lists its files (stage manifest)"})
    return {"source": source}


# ------------------------------------------------------------ CelebAMask-HQ ----

def check_celebamask_layout(root: Path) -> list[int]:
    """Check the CelebAMask-HQ layout; return the ids that have an image and a skin mask."""
    for folder in (IMAGE_DIR, ANNOTATION_DIR):
        if not (root / folder).is_dir():
            raise UserError(f"{root}: missing folder {folder}/; the data is not in the CelebAMask-HQ layout")
    image_ids = {int(p.stem) for p in (root / IMAGE_DIR).glob("*.jpg") if p.stem.isdigit()}
    skin_ids = {int(p.name[:5]) for p in (root / ANNOTATION_DIR).glob("*/*_skin.png")}
    if not image_ids:
        raise UserError(f"{root / IMAGE_DIR}: no <k>.jpg images; the download is incomplete")
    without_image = sorted(skin_ids - image_ids)
    if without_image:
        raise UserError(f"{root / IMAGE_DIR}: missing image(s) for annotated id(s) "
                        f"{_ids(without_image)}; the download is incomplete")
    without_skin = sorted(image_ids - skin_ids)
    if without_skin:
        raise UserError(f"{root / ANNOTATION_DIR}: no skin annotation for id(s) {_ids(without_skin)}; "
                        "the foreground mask needs one for every image")
    return sorted(image_ids)


def _ids(ids: list[int], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(str(i) for i in ids[:shown]) + more


def fetch_celebamask_hq(params: Params, out: Path) -> dict:
    """Write the face data set to `out` in the CelebAMask-HQ layout; return a summary."""
    data = params.data
    if data.source == "folder":
        return _left_in_place(out, data.source, "data.folder.images")
    if data.source == "synthetic":
        staging = out.parent / f".{out.name}.rendering"
        shutil.rmtree(staging, ignore_errors=True)
        synthetic.render_celebamask_hq(staging, data.synthetic.count, params.seed,
                                       workers=data.workers, progress=True)
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    else:
        _obtain(data.celebamask_hq, "data.celebamask_hq", out, IMAGE_DIR)
    ids = check_celebamask_layout(out)
    return {"source": data.source, "images": len(ids)}


# ------------------------------------------------------------------ QD-IMD ----

def check_qd_imd_layout(root: Path) -> dict[str, int]:
    counts = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise UserError(f"{root}: missing folder {split}/; the data is not in the QD-IMD layout")
        counts[split] = sum(1 for p in folder.glob("*.png"))
        if counts[split] == 0:
            raise UserError(f"{folder}: no mask PNGs; the download is incomplete")
    return counts


def fetch_qd_imd(params: Params, out: Path) -> dict:
    """Write the hole-mask pool to `out` in the QD-IMD layout (black = hole); return a summary."""
    holes = params.holes
    if holes.source == "folder":
        return _left_in_place(out, holes.source, "holes.folder")
    if holes.source == "synthetic":
        staging = out.parent / f".{out.name}.rendering"
        shutil.rmtree(staging, ignore_errors=True)
        doodles.render_qd_imd(staging, holes.synthetic.train, holes.synthetic.test, params.seed,
                                ratio_min=holes.ratio_min, ratio_max=holes.ratio_max,
                                workers=params.data.workers)
        shutil.rmtree(out, ignore_errors=True)
        # The synthetic writer mirrors the archive, whose masks sit in qd_imd/{train,test}.
        shutil.move(str(staging / "qd_imd"), str(out))
        shutil.rmtree(staging, ignore_errors=True)
    else:
        _obtain(holes.qd_imd, "holes.qd_imd", out, "train")
    counts = check_qd_imd_layout(out)
    return {"source": holes.source, **{f"masks_{k}": v for k, v in counts.items()}}
