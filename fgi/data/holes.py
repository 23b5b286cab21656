"""The `holes` stage: the hole-mask pool at the working size and the fixed test pairs.

QD-IMD masks are black where the hole is; here they are inverted (255 = hole),
binarised and resized to `data.size` with area averaging and a 0.5 threshold
(nearest neighbour would drop thin strokes at 64²). Each mask gets its hole
ratio, measured at the working size, and only masks with a ratio in
[`holes.ratio_min`, `holes.ratio_max`] are kept. Outputs under `<out>`:

    train/<name>.png, test/<name>.png    255 = hole
    masks.csv                            split, mask, hole_ratio, bin
    test_pairs.csv                       image_id, mask, hole_ratio, bin

Every test image gets one test mask; the pairs are balanced over the hole-ratio
bins (0.01,0.1], (0.1,0.2], … (0.5,0.6] and seeded, so every model is
evaluated on exactly the same pairs. Training masks are drawn at run time.
"""

from __future__ import annotations

import csv
import io
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from fgi import files, progress
from fgi.config import Params
from fgi.data.prepare import read_ids, worker_count
from fgi.errors import UserError

PAIR_COLUMNS = ("image_id", "mask", "hole_ratio", "bin")


def bin_edges(ratio_min: float, ratio_max: float) -> list[float]:
    """[ratio_min, 0.1, 0.2, …, ratio_max]: the paper's bins cut at every tenth."""
    inner = [round(k / 10, 1) for k in range(1, 10) if ratio_min < k / 10 < ratio_max]
    return [ratio_min, *inner, ratio_max]


def bin_label(lower: float, upper: float) -> str:
    return f"({lower:g},{upper:g}]"


def bin_of(ratio: float, edges: list[float]) -> str | None:
    """The label of the bin (lower, upper] holding `ratio`; None outside [edges[0], edges[-1]]."""
    if ratio < edges[0] or ratio > edges[-1]:
        return None
    for lower, upper in zip(edges, edges[1:]):
        if ratio <= upper:
            return bin_label(lower, upper)
    return None


def hole_from_qd(path: Path, size: int) -> np.ndarray:
    """bool (size, size), True = hole, from a QD-IMD mask (black = hole)."""
    valid = files.load_mask(path)  # True where white, i.e. where the image is kept
    hole = Image.fromarray(np.where(valid, 0, 255).astype(np.uint8))
    if hole.size != (size, size):
        hole = hole.resize((size, size), Image.Resampling.BOX)
    return np.asarray(hole) >= 128


def _one(job: tuple[Path, int, Path]) -> tuple[str, float]:
    path, size, out = job
    hole = hole_from_qd(path, size)
    files.save_mask(out, hole)
    return out.name, float(hole.mean())


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text_atomic(path, text.getvalue())


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro holes`")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def make_test_pairs(test_ids: list[str], test_masks: list[dict], edges: list[float], seed: int) -> list[dict]:
    """One mask per test image, the images dealt round-robin over the bins, seeded."""
    rng = np.random.default_rng([seed, 1])
    by_bin: dict[str, list[dict]] = {bin_label(a, b): [] for a, b in zip(edges, edges[1:])}
    for mask in test_masks:
        by_bin[mask["bin"]].append(mask)
    empty = [label for label, masks in by_bin.items() if not masks]
    if empty:
        raise UserError(f"holes: no test mask with a hole ratio in {', '.join(empty)}; add masks "
                        "(holes.synthetic.test or a larger QD-IMD test set) or narrow "
                        "holes.ratio_min/ratio_max")
    labels = list(by_bin)
    decks = {label: [] for label in labels}
    pairs = []
    for k, image_id in enumerate(rng.permutation(test_ids)):
        label = labels[k % len(labels)]
        if not decks[label]:  # reshuffle the bin's masks once they are all dealt
            decks[label] = [by_bin[label][i] for i in rng.permutation(len(by_bin[label]))]
        mask = decks[label].pop()
        pairs.append({"image_id": str(image_id), "mask": mask["mask"],
                      "hole_ratio": mask["hole_ratio"], "bin": label})
    return sorted(pairs, key=lambda pair: pair["image_id"])


def build_holes(params: Params, raw_root: Path, prepared: Path, out: Path) -> dict:
    """Resize the pool, keep masks in range, write masks.csv and test_pairs.csv."""
    holes, size = params.holes, params.data.size
    edges = bin_edges(holes.ratio_min, holes.ratio_max)
    jobs = []
    for split in ("train", "test"):
        for path in sorted((raw_root / split).glob("*.png")):
            jobs.append((path, size, out / split / path.name))
    with Pool(worker_count(params.data.workers)) as pool:
        ratios = list(progress.bar(pool.imap(_one, jobs, chunksize=32), total=len(jobs),
                                   desc="holes", unit="mask"))
    rows, dropped = [], 0
    for (path, _, target), (name, ratio) in zip(jobs, ratios):
        label = bin_of(ratio, edges)
        if label is None:
            target.unlink()  # outside [ratio_min, ratio_max]: not part of the protocol
            dropped += 1
            continue
        rows.append({"split": target.parent.name, "mask": f"{target.parent.name}/{name}",
                     "hole_ratio": f"{ratio:.6f}", "bin": label})
    _write_csv(out / "masks.csv", ("split", "mask", "hole_ratio", "bin"), rows)
    train_masks = [row for row in rows if row["split"] == "train"]
    if not train_masks:
        raise UserError(f"holes: no training mask has a hole ratio in [{holes.ratio_min}, "
                        f"{holes.ratio_max}]; check holes.ratio_min/ratio_max and the mask source")
    pairs = make_test_pairs(read_ids(prepared / "test.txt"), [r for r in rows if r["split"] == "test"],
                       edges, params.seed)
    _write_csv(out / "test_pairs.csv", PAIR_COLUMNS, pairs)
    summary = {"size": size, "kept_train": len(train_masks), "kept_test": len(rows) - len(train_masks),
               "dropped_out_of_range": dropped, "test_pairs": len(pairs),
               "pairs_per_bin": {label: sum(p["bin"] == label for p in pairs)
                                 for label in (bin_label(a, b) for a, b in zip(edges, edges[1:]))}}
    files.write_json_atomic(out / "summary.json", summary)
    return summary
