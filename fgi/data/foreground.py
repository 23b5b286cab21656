"""The `foreground` stage: the foreground mask M_F of every prepared face.

M_F is the union of the CelebAMask-HQ parts in `foreground.parts` (paper:
skin and hair). In CelebAMask-HQ the skin annotation has holes where the eyes,
brows and mouth are; with `foreground.fill_holes` those enclosed holes are
filled, so the facial components inside the face count as foreground. The
mask is then resized to the working size with nearest neighbour, as a label
map must not be blended. Output: `<out>/<id>.png`, 255 = foreground.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from fgi import files, progress
from fgi.config import Params
from fgi.data.layout import read_ids, worker_count
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


def build_foreground(params: Params, raw_root: Path, prepared: Path, out: Path) -> dict:
    """M_F for every id of the train and test splits; return a summary."""
    names = read_ids(prepared / "train.txt") + read_ids(prepared / "test.txt")
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
