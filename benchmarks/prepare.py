"""prepare: 1024² JPEG -> 256² PNG, images per second, ours against a naive reference.

ours       `fgi.data.prepare.prepare` (the `prepare` stage): JPEG draft decode at a
           reduced DCT scale (1/4 for 1024 -> 256), Lanczos only when the draft is not
           already the working size, a Pool over every core, PNG write, split files.
reference  what one would write first: PIL full decode, `resize((256, 256), LANCZOS)`,
           PNG write, one process.

The input faces are rendered by `fgi.data.synthetic.render_celebamask_hq` (the
demo's CelebA-HQ stand-in, 1024² JPEG quality 90) into a temporary folder. Both
sides read the same JPEGs from the page cache and run alternately; each side's
best run counts. The two outputs are compared pixel by pixel: the draft decode
changes the resampling, so the bytes differ slightly.

PNG encoding at zlib level 6 (Pillow's default) cost ~4x more than decoding
and resizing with the draft, so `fgi.files.save_png` writes at level 1; the
row "ours at level 6" runs the same `prepare` with the default level, to show
what that choice gives.
"""

from __future__ import annotations

import tempfile
import unittest.mock
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import Check, CpuMeter, Section, clocked, cores, fmt, paper_params, replace, say, table, timed
from fgi import files
from fgi.data.prepare import image_name, load_resized, prepare
from fgi.data.sources import celebamask_image, check_celebamask_layout
from fgi.data.synthetic import render_celebamask_hq

NAME = "prepare"
TARGET_RATIO = 3.0


def reference_prepare(raw_root: Path, ids: list[int], size: int, out: Path) -> None:
    """The naive reference: full decode, Lanczos resize, PNG write, one image after another."""
    out.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        with Image.open(celebamask_image(raw_root, image_id)) as image:
            small = image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        small.save(out / f"{image_name(image_id)}.png", format="PNG")


_save_png = files.save_png


def default_level_save_png(path, array: np.ndarray) -> None:
    """`fgi.files.save_png` at Pillow's default zlib level 6, what it wrote before level 1."""
    _save_png(path, array, compress_level=6)


def cost_split(raw_root: Path, ids: list[int], size: int, out: Path) -> tuple[float, float]:
    """Mean seconds per image of ours' two steps, in this process: `load_resized` and `save_png`."""
    decode = encode = 0.0
    for image_id in ids:
        seconds, image = clocked(load_resized, celebamask_image(raw_root, image_id), size)
        decode += seconds
        encode += timed(files.save_png, out / f"{image_name(image_id)}.png", image)
    return decode / len(ids), encode / len(ids)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.png"))


def _difference(ids: list[int], ours: Path, reference: Path) -> tuple[float, int, float]:
    """Mean and max absolute difference (0-255 levels) and PSNR of ours against the reference."""
    total, count, largest, squared = 0.0, 0, 0, 0.0
    for image_id in ids:
        a = files.load_image_rgb(ours / f"{image_name(image_id)}.png").astype(np.int64)
        b = files.load_image_rgb(reference / f"{image_name(image_id)}.png").astype(np.int64)
        diff = np.abs(a - b)
        total, count = total + diff.sum(), count + diff.size
        largest, squared = max(largest, int(diff.max())), squared + float((diff**2).sum())
    mse = squared / count
    return total / count, largest, float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def run(quick: bool = False) -> Section:
    count, repeats = (24, 1) if quick else (96, 2)
    size = 256
    with tempfile.TemporaryDirectory(prefix="fgi-bench-prepare-") as tmp:
        tmp = Path(tmp)
        raw = tmp / "raw"
        say(f"prepare: rendering {count} synthetic 1024² faces")
        render_celebamask_hq(raw, count, seed=0)
        ids = check_celebamask_layout(raw)
        test = max(1, count // 8)
        params = replace(paper_params(), data__size=size, data__workers=0, split__train=count - test,
                         split__test=test)
        ours_times, reference_times = [], []
        with CpuMeter() as meter:
            for attempt in range(repeats):
                reference_times.append(timed(reference_prepare, raw, ids, size, tmp / f"ref{attempt}"))
                ours_times.append(timed(prepare, params, raw, tmp / f"ours{attempt}"))
                say(f"prepare: run {attempt + 1}/{repeats}: reference {reference_times[-1]:.2f} s, "
                    f"ours {ours_times[-1]:.2f} s for {count} images")
            one_process = timed(prepare, replace(params, data__workers=1), raw, tmp / "ours_one")
            # Patched before the Pool forks, so its workers write at level 6 too.
            with unittest.mock.patch.object(files, "save_png", default_level_save_png):
                level6 = min(timed(prepare, params, raw, tmp / f"level6_{attempt}") for attempt in range(repeats))
            decode, encode = cost_split(raw, ids, size, tmp / "split")
        png_bytes = _folder_bytes(tmp / "ours0" / "images"), _folder_bytes(tmp / "level6_0" / "images")
        mean_diff, max_diff, psnr = _difference(ids, tmp / "ours0" / "images", tmp / "ref0")

    ours_rate, reference_rate = count / min(ours_times), count / min(reference_times)
    one_rate, level6_rate = count / one_process, count / level6
    ratio = ours_rate / reference_rate
    check = Check("1024² JPEG → 256² PNG", ours_rate, reference_rate, "images/s",
                  "PIL full decode + LANCZOS, one process", ratio, f"≥ {TARGET_RATIO:g}×", ratio >= TARGET_RATIO)
    rows = [
        ["ours: `fgi.data.prepare.prepare`, draft decode + Pool, PNG level 1", f"{cores()}", fmt(ours_rate),
         fmt(1000 / ours_rate), f"{ratio:.2f}×"],
        ["ours in one process (`data.workers: 1`)", "1", fmt(one_rate), fmt(1000 / one_rate),
         f"{one_rate / reference_rate:.2f}×"],
        ["ours at Pillow's default zlib level 6 (before)", f"{cores()}", fmt(level6_rate),
         fmt(1000 / level6_rate), f"{level6_rate / reference_rate:.2f}×"],
        ["reference: PIL full decode + LANCZOS + PNG", "1", fmt(reference_rate), fmt(1000 / reference_rate), "1×"],
    ]
    body = "\n\n".join([
        (f"{count} synthetic faces (1024² JPEG, quality 90) → {size}² PNG; best of {repeats} alternating "
         f"run(s) per side; {meter.describe()}."),
        table(["variant", "processes", "images/s", "ms/image (wall)", "vs reference"], rows),
        (f"Where ours' time goes, per image in one process: `load_resized` (draft decode + resize) "
         f"{decode * 1000:.1f} ms, `files.save_png` (zlib level 1 encode + atomic write) {encode * 1000:.1f} ms "
         f"({encode / (decode + encode):.0%})."),
        (f"Ours against the reference, same images: mean |Δ| {mean_diff:.2f} levels, max |Δ| {max_diff}, "
         f"PSNR {psnr:.1f} dB (the 1/4-scale DCT draft replaces the first 4× of the Lanczos "
         "down-sampling). Ours also writes `train.txt`, `test.txt` and `summary.json` inside its time."),
        (f"PNG size per image: {png_bytes[0] / count / 1024:.1f} KiB at level 1 (ours), "
         f"{png_bytes[1] / count / 1024:.1f} KiB at Pillow's default level 6; the reference writes level 6."),
        f"Target ≥ {TARGET_RATIO:g}× the reference: **{'PASS' if check.passed else 'MISS'}** ({ratio:.2f}×).",
    ])
    return Section(NAME, "prepare: 1024² JPEG → 256² PNG", body, [check])
