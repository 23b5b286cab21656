"""The `holes_semantic` stage: test holes that take a whole facial component.

Random free-form holes leave part of each eye, nose or mouth visible, and a
model can copy what remains. This second set of fixed test pairs hides a whole
component instead, as occlusions and damage do in real photos (Sharadga,
Hayajneh and Serpedin, *AI* 7(4):119, 2026, measured the drop it causes). It
is a test protocol only: training is unchanged.

For every test face and every component of `holes.semantic.components` (name:
the CelebAMask-HQ parts it covers, e.g. `eyes: [l_eye, r_eye, l_brow,
r_brow]`), the hole is the union of the component's parts at the annotation's
resolution, brought to `data.size` so that a working pixel touched by any part
counts (box filter, > 0), then dilated by a disk of radius
round(`holes.semantic.margin` x `data.size`) pixels, so that no outline of the
original is left at the hole's edge. A face on which none of a component's
parts is annotated (hidden eyes, a mouth out of frame) skips that component;
the skipped count per component is in the summary. Nothing is drawn at
random: every present (face, component) pair is tested, in the order of
`test.txt` and then of the components.

The training faces get their component holes too, for `holes.train_mix`
(`fgi.data.dataset.TrainSet`: that share of training holes is one of the
face's own components). Outputs under `<out>`:

    <component>/<image_id>.png         test faces, 255 = hole
    test_pairs.csv                     image_id, mask, hole_ratio, bin (= the component)
    train/<component>/<image_id>.png   training faces
    train_masks.csv                    image_id, mask, hole_ratio, bin
    summary.json                       pairs and skipped faces per component, margin in pixels

`test_pairs.csv` has the columns of the random-hole pairs (`fgi.data.holes`),
with the component in `bin`, so the same readers serve both sets.

A folder source (`data.source: folder`) has no part annotations, so it has no
component pairs: the stage writes only `summary.json` (`"available": false`),
and predict, evaluate and report leave out Table 6 and Fig. 6, as they do
whenever `test_pairs.csv` is absent.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from fgi import files, progress
from fgi.config import Params
from fgi.data.holes import PAIR_COLUMNS
from fgi.data.layout import read_ids, worker_count, write_csv
from fgi.data.sources import celebamask_part
from fgi.errors import UserError


def margin_pixels(margin: float, size: int) -> int:
    return round(margin * size)


def disk(radius: int) -> np.ndarray:
    """bool (2r+1, 2r+1): the pixels within `radius` of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2


def component_at_size(raw_root: Path, image_id: int, parts: list[str], size: int) -> np.ndarray | None:
    """bool (size, size): every working pixel that any annotated part of the component touches;
    None when none of its parts is annotated."""
    union = None
    for part in parts:
        path = celebamask_part(raw_root, image_id, part)
        if not path.exists():
            continue  # CelebAMask-HQ annotates a part only where it is visible
        mask = files.load_mask(path)
        if union is not None and mask.shape != union.shape:
            raise UserError(f"{path}: {mask.shape} differs from the other parts' {union.shape}; "
                            "the annotation is corrupt, download it again")
        union = mask if union is None else union | mask
    if union is None or not union.any():
        return None
    # A box filter keeps any overlap: a thin part must not vanish between working pixels.
    touched = Image.fromarray(union.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BOX)
    return np.asarray(touched) > 0


def semantic_hole(raw_root: Path, image_id: int, parts: list[str], size: int, margin_px: int) -> np.ndarray | None:
    """bool (size, size): the component dilated by `margin_px`; None when the face lacks it."""
    component = component_at_size(raw_root, image_id, parts, size)
    if component is None:
        return None
    return ndimage.binary_dilation(component, structure=disk(margin_px)) if margin_px else component


def _one(job: tuple[Path, str, dict[str, list[str]], int, int, Path, str]) -> list[dict | str]:
    """One face: a pair row per present component, the name of each missing one."""
    raw_root, name, components, size, margin_px, out, folder = job
    rows: list[dict | str] = []
    for component, parts in components.items():
        hole = semantic_hole(raw_root, int(name), parts, size, margin_px)
        if hole is None:
            rows.append(component)
            continue
        mask = f"{folder}{component}/{name}.png"
        files.save_mask(out / mask, hole)
        rows.append({"image_id": name, "mask": mask, "hole_ratio": round(float(hole.mean()), 6), "bin": component})
    return rows


def _faces(params: Params, raw_root: Path, names: list[str], out: Path, folder: str) -> tuple[list[dict], list[str]]:
    """The component holes of faces `names` under `out/<folder>`: (rows, the missing components)."""
    semantic = params.holes.semantic
    margin_px = margin_pixels(semantic.margin, params.data.size)
    for component in semantic.components:
        (out / folder / component).mkdir(parents=True, exist_ok=True)
    jobs = [(raw_root, name, semantic.components, params.data.size, margin_px, out, folder) for name in names]
    with Pool(worker_count(params.data.workers)) as pool:
        results = list(progress.bar(pool.imap(_one, jobs, chunksize=8), total=len(jobs),
                                    desc=f"holes_semantic {folder or 'test/'}", unit="face"))
    return ([row for rows in results for row in rows if isinstance(row, dict)],
            [row for rows in results for row in rows if isinstance(row, str)])


def build_semantic_holes(params: Params, raw_root: Path, prepared: Path, out: Path) -> dict:
    """The component holes of every test face (the pairs) and training face; return the summary."""
    if params.data.source == "folder":
        out.mkdir(parents=True, exist_ok=True)
        summary = {"available": False, "reason": "data.source: folder has no part annotations, so no component "
                                                 "pairs (Table 6) and no holes.train_mix"}
        files.write_json_atomic(out / "summary.json", summary)
        return summary
    components = params.holes.semantic.components
    test_names = read_ids(prepared / "test.txt")
    pairs, missing = _faces(params, raw_root, test_names, out, "")
    if not pairs:
        raise UserError(f"holes.semantic.components: no test face has any of their parts annotated under "
                        f"{raw_root}; check the part names (e.g. l_eye, nose, mouth)")
    train, train_missing = _faces(params, raw_root, read_ids(prepared / "train.txt"), out, "train/")
    write_csv(out / "test_pairs.csv", PAIR_COLUMNS, pairs)
    write_csv(out / "train_masks.csv", PAIR_COLUMNS, train)

    def per_component(rows: list[dict]) -> dict[str, int]:
        return {component: sum(row["bin"] == component for row in rows) for component in components}

    summary = {"faces": len(test_names), "margin_px": margin_pixels(params.holes.semantic.margin, params.data.size),
               "pairs": per_component(pairs),
               "skipped": {component: missing.count(component) for component in components},
               "mean_hole_ratio": {component: round(float(np.mean([row["hole_ratio"] for row in pairs
                                                                    if row["bin"] == component] or [0.0])), 4)
                                   for component in components},
               "train_masks": per_component(train),
               "train_skipped": {component: train_missing.count(component) for component in components}}
    files.write_json_atomic(out / "summary.json", summary)
    return summary
