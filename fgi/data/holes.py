"""The `holes` stage: the hole-mask pool at the working size and the fixed test pairs.

QD-IMD masks are black where the hole is (`holes.invert: true` reads masks of
the other convention, white = hole, e.g. NVIDIA's irregular masks); here they
become 255 = hole, binarised and resized to `data.size` with area averaging and a 0.5 threshold
(nearest neighbour would drop thin strokes at 64²). Each mask gets its hole
ratio, measured at the working size, and only masks with a ratio in
[`holes.ratio_min`, `holes.ratio_max`] are kept. Outputs under `<out>`:

    train/<name>.png, test/<name>.png    255 = hole
    masks.csv                            split, mask, hole_ratio, bin
    test_pairs.csv                       image_id, mask, hole_ratio, bin

Every test image gets one test mask; the pairs are balanced over the hole-ratio
bins (0.01,0.1], (0.1,0.2], … (0.5,0.6] and seeded, so every model is
evaluated on exactly the same pairs. Training masks are drawn at run time.

The pool is QD-IMD's layout under `raw_root` (synthetic doodles or the archive),
or a folder source (`holes.source: folder`): the files `data/manifest/holes.csv`
lists, read where they are, from a training and a test folder, or from one
folder of which a seeded `holes.folder.test_share` is held out for the test
pairs. A mask that is not square is centre-cropped first. A mask that does not
decode stops the stage, or with `data.on_corrupt: skip` is left out and counted.

A bin with fewer test masks than pairs deals its masks again: the summary
counts the distinct masks of every bin and the stage warns when one mask must
stand in for more than `REUSE_WARNING` pairs (real QD-IMD strokes cover little
of the canvas, so its upper bins can be sparse). When nearly every mask falls
outside the ratio range, the stage stops and says whether the masks look
inverted.
"""

from __future__ import annotations

import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from fgi import files, progress
from fgi.config import Params
from fgi.data.layout import read_ids, worker_count, write_csv
from fgi.data.manifest import read_manifest
from fgi.errors import UserError

PAIR_COLUMNS = ("image_id", "mask", "hole_ratio", "bin")
# A mask standing in for more pairs than this makes its bin's mean rest on few masks.
REUSE_WARNING = 5
# Below this share of the pool in [ratio_min, ratio_max], the masks are not what the params say.
KEPT_SHARE_MIN = 0.10


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


def _hole_at_size(white: np.ndarray, size: int, invert: bool) -> np.ndarray:
    """bool (size, size), True = hole, from a mask read as True = white (QD-IMD: black = hole,
    so the hole is where `white` is False; with `invert` where it is True); centre-cropped to a
    square first if it is not one."""
    height, width = white.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    white = white[top:top + side, left:left + side]
    hole = Image.fromarray(np.where(white == invert, 255, 0).astype(np.uint8))
    if hole.size != (size, size):
        hole = hole.resize((size, size), Image.Resampling.BOX)
    return np.asarray(hole) >= 128


def _one(job: tuple[Path, int, bool, bool, Path]) -> tuple[str, float, float] | str:
    """Write one mask; return its name, its hole ratio and the ratio it has when read inverted, or, when
    it does not decode and `skip` is set, why."""
    path, size, invert, skip, out = job
    try:
        white = files.load_mask(path)
    except UserError as err:
        if not skip:
            raise UserError(f"{err}, or set data.on_corrupt: skip to leave it out") from err
        return str(err)
    hole = _hole_at_size(white, size, invert)
    files.save_mask(out, hole)
    return out.name, float(hole.mean()), float(_hole_at_size(white, size, not invert).mean())


def held_out(count: int, share: float, seed: int) -> set[int]:
    """The indices of the `share` of `count` masks that one hole folder gives to the test pairs, seeded."""
    test = round(share * count)
    if not 1 <= test < count:
        raise UserError(f"holes.folder.test_share: {share} of the {count} mask(s) in holes.folder.train is {test}; "
                        "both the training and the test masks need at least one: add masks, change the share, "
                        "or give a test folder (holes.folder.test)")
    return set(np.random.default_rng([seed, 2]).permutation(count)[:test].tolist())


def pool_files(params: Params, raw_root: Path, manifest: Path) -> list[tuple[str, Path, str]]:
    """(split, file, output name) of every mask of the pool, train first."""
    if params.holes.source != "folder":
        return [(split, path, path.name) for split in ("train", "test")
                for path in sorted((raw_root / split).glob("*.png"))]
    folder = params.holes.folder
    rows = read_manifest(manifest, "holes")
    roots = {"train": Path(folder.train), "test": Path(folder.test)}
    listed = [(row["folder"], roots[row["folder"]] / row["path"], f"{row['stem']}.png") for row in rows]
    if folder.test.strip():
        return sorted(listed, key=lambda item: item[0] != "train")
    test = held_out(len(listed), folder.test_share, params.seed)
    split = [("test" if i in test else "train", path, name) for i, (_, path, name) in enumerate(listed)]
    return sorted(split, key=lambda item: item[0] != "train")


def make_test_pairs(test_ids: list[str], test_masks: list[dict], edges: list[float], seed: int) -> list[dict]:
    """One mask per test image, the images dealt round-robin over the bins, seeded."""
    rng = np.random.default_rng([seed, 1])
    by_bin: dict[str, list[dict]] = {bin_label(a, b): [] for a, b in zip(edges, edges[1:])}
    for mask in test_masks:
        by_bin[mask["bin"]].append(mask)
    empty = [label for label, masks in by_bin.items() if not masks]
    if empty:
        raise UserError(f"holes: no test mask with a hole ratio in {', '.join(empty)}; add masks "
                        "(holes.synthetic.test, a larger QD-IMD test set, or more of your own: holes.folder) or "
                        "narrow holes.ratio_min/ratio_max")
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


def check_pool(ratios: list[float], inverted: list[float], ratio_min: float, ratio_max: float,
               invert: bool) -> None:
    """Stop when the masks look inverted (more hole than image on average, and the other reading
    keeps more of them in range), or when nearly every mask is outside [ratio_min, ratio_max]."""
    def share(values):
        return sum(ratio_min <= r <= ratio_max for r in values) / max(len(values), 1)

    kept, kept_inverted, mean = share(ratios), share(inverted), float(np.mean(ratios)) if ratios else 0.0
    hole_colour, other_colour = ("white", "black") if invert else ("black", "white")
    if mean > 0.5 and kept_inverted > kept:
        example = "" if invert else ", as in NVIDIA's irregular masks"
        raise UserError(f"holes: the masks look inverted: read with {hole_colour} as the hole, their mean hole "
                        f"ratio is {mean:.2f} and {kept:.0%} fall in [{ratio_min}, {ratio_max}]; with "
                        f"{other_colour} as the hole {kept_inverted:.0%} would. They are {other_colour} = "
                        f"hole{example}: set holes.invert: {str(not invert).lower()} in params.yaml")
    if kept < KEPT_SHARE_MIN:
        raise UserError(f"holes: only {kept:.1%} of the {len(ratios)} masks have a hole ratio in [{ratio_min}, "
                        f"{ratio_max}] (mean ratio {mean:.3f}); check holes.ratio_min/ratio_max, holes.invert "
                        "and the mask source")


def reuse_by_bin(pairs: list[dict], labels: list[str]) -> dict[str, dict[str, int]]:
    """Per bin: its pairs, the distinct masks among them and the most pairs one mask stands in for."""
    report = {}
    for label in labels:
        masks = [pair["mask"] for pair in pairs if pair["bin"] == label]
        uses = {mask: masks.count(mask) for mask in set(masks)}
        report[label] = {"pairs": len(masks), "distinct_masks": len(uses),
                         "most_uses": max(uses.values(), default=0)}
    return report


def build_holes(params: Params, raw_root: Path, prepared: Path, out: Path,
                manifest: Path = Path("data/manifest")) -> dict:
    """Resize the pool, keep masks in range, write masks.csv and test_pairs.csv."""
    holes, size = params.holes, params.data.size
    edges = bin_edges(holes.ratio_min, holes.ratio_max)
    labels = [bin_label(a, b) for a, b in zip(edges, edges[1:])]
    skip = params.data.on_corrupt == "skip"
    jobs = [(path, size, holes.invert, skip, out / split / name) for split, path, name in
            pool_files(params, raw_root, manifest)]
    with Pool(worker_count(params.data.workers)) as pool:
        results = list(progress.bar(pool.imap(_one, jobs, chunksize=32), total=len(jobs),
                                    desc="holes", unit="mask"))
    skipped = sorted(str(job[0]) for job, result in zip(jobs, results) if isinstance(result, str))
    kept = [(job[-1], result) for job, result in zip(jobs, results) if not isinstance(result, str)]
    check_pool([ratio for _, (_, ratio, _) in kept], [other for _, (_, _, other) in kept],
               holes.ratio_min, holes.ratio_max, holes.invert)
    rows, dropped = [], 0
    for target, (name, ratio, _) in kept:
        label = bin_of(ratio, edges)
        if label is None:
            target.unlink()  # outside [ratio_min, ratio_max]: not part of the protocol
            dropped += 1
            continue
        rows.append({"split": target.parent.name, "mask": f"{target.parent.name}/{name}",
                     "hole_ratio": f"{ratio:.6f}", "bin": label})
    write_csv(out / "masks.csv", ("split", "mask", "hole_ratio", "bin"), rows)
    train_masks = [row for row in rows if row["split"] == "train"]
    if not train_masks:
        raise UserError(f"holes: no training mask has a hole ratio in [{holes.ratio_min}, "
                        f"{holes.ratio_max}]; check holes.ratio_min/ratio_max and the mask source")
    test_masks = [row for row in rows if row["split"] == "test"]
    pairs = make_test_pairs(read_ids(prepared / "test.txt"), test_masks, edges, params.seed)
    write_csv(out / "test_pairs.csv", PAIR_COLUMNS, pairs)
    reuse = reuse_by_bin(pairs, labels)
    for label, counts in reuse.items():
        if counts["most_uses"] > REUSE_WARNING:
            print(f"warning: holes: bin {label} holds {counts['distinct_masks']} test mask(s) for "
                  f"{counts['pairs']} pairs, so one mask stands in for up to {counts['most_uses']} pairs and "
                  "the bin's mean rests on few masks; add test masks or lower holes.ratio_max",
                  file=sys.stderr, flush=True)
    summary = {"size": size, "invert": holes.invert, "kept_train": len(train_masks),
               "kept_test": len(test_masks), "dropped_out_of_range": dropped, "test_pairs": len(pairs),
               "pairs_per_bin": {label: counts["pairs"] for label, counts in reuse.items()},
               "test_masks_per_bin": {label: sum(r["bin"] == label for r in test_masks) for label in labels},
               "distinct_masks_per_bin": {label: counts["distinct_masks"] for label, counts in reuse.items()},
               "most_uses_per_bin": {label: counts["most_uses"] for label, counts in reuse.items()}}
    if holes.source == "folder":  # (the other sources' summary keeps its keys, so its bytes stay as they were)
        summary.update({"source": "folder", "held_out_test": not holes.folder.test.strip()})
    if skipped:
        summary.update({"skipped_corrupt": len(skipped), "skipped_files": skipped})
    files.write_json_atomic(out / "summary.json", summary)
    return summary
