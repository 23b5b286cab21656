"""The `foreground` stage: the foreground mask M_F of every prepared face.

M_F is the union of the CelebAMask-HQ parts in `foreground.parts` (paper:
skin and hair). In CelebAMask-HQ the skin annotation has holes where the eyes,
brows and mouth are; with `foreground.fill_holes` those enclosed holes are
filled, so the facial components inside the face count as foreground. The
mask is then resized to the working size with nearest neighbour, as a label
map must not be blended. Output: `<out>/<id>.png`, 255 = foreground.

A folder source (`data.source: folder`) brings its own masks, one per image, from
a face parser: binary, or label maps whose `data.folder.label_ids` are foreground
(`fgi.data.folder_source`); `foreground.fill_holes` applies to them too, and
`foreground.parts` does not. Without a mask folder there is no M_F: the stage
writes only `summary.json` with `"available": false`, the foreground region of
every table is n/a, and a method that learns from M_F is refused
(`fgi.config.foreground_refusal`).
"""

from __future__ import annotations

import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from fgi import files, progress
from fgi.config import Params
from fgi.data import folder_source
from fgi.data.layout import read_ids, worker_count
from fgi.data.manifest import read_manifest
from fgi.data.sources import celebamask_part
from fgi.errors import UserError


def foreground_mask(raw_root: Path, image_id: int, parts: list[str], fill_holes: bool,
                    size: int) -> np.ndarray:
    """bool (size, size): union of `parts`, enclosed holes filled, nearest-resized."""
    union = None
    for part in parts:
        path = celebamask_part(raw_root, image_id, part)
        if not path.exists():
            continue  # a part is annotated only when visible (no hair on a bald head)
        mask = files.load_mask(path)
        if union is not None and mask.shape != union.shape:
            raise UserError(f"{path}: {mask.shape} differs from the other parts' {union.shape}; "
                            "the annotation is corrupt, download it again")
        union = mask if union is None else union | mask
    if union is None:
        raise UserError(f"{celebamask_part(raw_root, image_id, parts[0]).parent}: id {image_id:05d} "
                        f"has none of the parts {', '.join(parts)}; check foreground.parts")
    if fill_holes:
        union = ndimage.binary_fill_holes(union)
    resized = Image.fromarray(union).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=bool)


def _one(job: tuple[Path, str, list[str], bool, int, Path]) -> float:
    raw_root, name, parts, fill_holes, size, out = job
    mask = foreground_mask(raw_root, int(name), parts, fill_holes, size)
    files.save_mask(out / f"{name}.png", mask)
    return float(mask.mean())


def _one_from_folder(job: tuple[Path, list[int], int, bool, str, int, Path]) -> float:
    path, label_ids, label_count, fill_holes, square, size, out = job
    mask = folder_source.foreground_mask(path, label_ids, label_count, fill_holes, square, size)
    files.save_mask(out, mask)
    return float(mask.mean())


def from_folder(params: Params, names: list[str], out: Path, manifest: Path) -> dict:
    """M_F of a folder source's faces from their masks, or the summary saying there is none."""
    folder, fill_holes = params.data.folder, params.foreground.fill_holes
    out.mkdir(parents=True, exist_ok=True)
    if not folder.foreground.strip():
        summary = {"available": False, "masks": 0, "source": "folder",
                   "reason": "data.folder.foreground is empty: no foreground masks, so the foreground region is "
                             "n/a and a method that learns from them is refused"}
        files.write_json_atomic(out / "summary.json", summary)
        return summary
    paths = {row["stem"]: Path(folder.foreground) / row["path"] for row in read_manifest(manifest, "foreground")}
    unlisted = [name for name in names if name not in paths]
    if unlisted:
        raise UserError(f"{Path(manifest) / 'foreground.csv'}: no mask listed for face(s) {', '.join(unlisted[:5])}; "
                        "the manifest and the prepared faces disagree: run `dvc repro`")
    jobs = [(paths[name], folder.label_ids, folder.label_count, fill_holes, folder.square, params.data.size,
             out / f"{name}.png") for name in names]
    with Pool(worker_count(params.data.workers)) as pool:
        fractions = list(progress.bar(pool.imap(_one_from_folder, jobs, chunksize=16), total=len(jobs),
                                      desc="foreground", unit="mask"))
    empty = sorted(name for name, fraction in zip(names, fractions) if fraction == 0)
    if empty:
        print(f"warning: foreground: {len(empty)} mask(s) hold no foreground ({', '.join(empty[:5])}"
              f"{' ...' if len(empty) > 5 else ''}): check data.folder.label_ids, or the parser's output for "
              "those faces; their foreground metrics are n/a", file=sys.stderr, flush=True)
    summary = {"available": True, "masks": len(fractions), "source": "folder",
               "label_ids": list(folder.label_ids), "fill_holes": fill_holes, "empty_masks": len(empty),
               "mean_foreground_fraction": round(float(np.mean(fractions)), 4) if fractions else 0.0}
    files.write_json_atomic(out / "summary.json", summary)
    return summary


def build_foreground(params: Params, raw_root: Path, prepared: Path, out: Path,
                     manifest: Path = Path("data/manifest")) -> dict:
    """M_F for every id of the train and test splits; return a summary."""
    names = read_ids(prepared / "train.txt") + read_ids(prepared / "test.txt")
    if params.data.source == "folder":
        return from_folder(params, names, out, manifest)
    fg = params.foreground
    jobs = [(raw_root, name, fg.parts, fg.fill_holes, params.data.size, out) for name in names]
    out.mkdir(parents=True, exist_ok=True)
    with Pool(worker_count(params.data.workers)) as pool:
        fractions = list(progress.bar(pool.imap(_one, jobs, chunksize=16), total=len(jobs),
                                      desc="foreground", unit="mask"))
    summary = {"masks": len(fractions), "parts": list(fg.parts), "fill_holes": fg.fill_holes,
               "mean_foreground_fraction": round(float(np.mean(fractions)), 4) if fractions else 0.0}
    files.write_json_atomic(out / "summary.json", summary)
    return summary
