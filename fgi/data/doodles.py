"""Quick-Draw-like hole masks in the QD-IMD layout (`qd_imd/{train,test}/<i:05d>_<split>.png`,
L 512x512, 0 = hole), the offline stand-in for QD-IMD (Iskakov, "Semi-parametric
Image Inpainting", 2018; the paper's "Quick Draw Mask"). Each mask is a few
smooth strokes 5-15 px wide whose hole ratio is drawn uniformly from
[ratio_min, ratio_max]. Every file depends only on (seed, split, index).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fgi.data.synthetic import check_count, run_jobs, save_image_atomic
from fgi.errors import UserError

QD_SIZE = 512


def _stroke_path(rng, length: float) -> np.ndarray:
    """A smooth-ish doodle stroke about `length` px long: a Catmull-Rom spline through
    a gently turning random walk, folded back into the canvas at its edges, (n, 2)."""
    steps = max(1, int(np.ceil(length / 150)))
    step = length / steps
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 1.0, steps))
    walk = np.cumsum(step * np.column_stack([np.cos(heading), np.sin(heading)]), axis=0)
    walk = np.concatenate([[(0, 0)], walk]) + rng.uniform(40, QD_SIZE - 40, 2)
    low, span = 10, QD_SIZE - 20
    folded = np.mod(walk - low, 2 * span)
    control = low + np.minimum(folded, 2 * span - folded)  # mirrored at the edges
    control = np.concatenate([control[:1], control, control[-1:]])
    p0, p1, p2, p3 = (control[i:len(control) - 3 + i, None] for i in range(4))  # (steps, 1, 2) each
    t = np.linspace(0, 1, max(2, int(step / 14)), endpoint=False)[:, None]
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                   + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return np.concatenate([curve.reshape(-1, 2), control[-2:-1]])


def _draw_stroke(draw: ImageDraw.ImageDraw, path: np.ndarray, width: int) -> None:
    """A polyline with round joints and caps (a disc at every vertex)."""
    draw.line(path.ravel().tolist(), fill=0, width=width)
    r = (width - 1) / 2  # PIL's ellipse spans both end pixels: this matches the line's width
    for x, y in path.tolist():
        draw.ellipse((x - r, y - r, x + r, y + r), fill=0)


def _holes(mask: Image.Image) -> int:
    return int(np.count_nonzero(np.asarray(mask) == 0))


def render_doodle(rng: np.random.Generator, ratio_min: float, ratio_max: float) -> Image.Image:
    """A QD-IMD-like mask (QD_SIZE², L, 0 = hole) of 4±2 strokes 5-15 px wide (more
    when they overlap a lot) whose hole ratio is drawn uniformly from
    [ratio_min, ratio_max] and reached to within one ~14 px step of a stroke."""
    area = QD_SIZE * QD_SIZE
    target = rng.uniform(ratio_min, ratio_max) * area
    n = int(rng.integers(2, 7))
    # Random strokes overlap: covering a fraction r takes about -ln(1 - r) canvases of ink.
    ink = -np.log1p(-target / area) * area
    mask = Image.new("L", (QD_SIZE, QD_SIZE), 255)
    draw = ImageDraw.Draw(mask)
    holes, drawn = 0, 0.0  # holes at the last count; most holes added since
    while True:
        width = int(rng.integers(5, 16))
        path = _stroke_path(rng, ink / n / width * rng.uniform(0.7, 1.3))
        for start in range(0, len(path), 16):
            piece = path[max(start - 1, 0):start + 16]
            most = width * (np.linalg.norm(np.diff(piece, axis=0), axis=1).sum() + width)
            if holes + drawn + most < target:  # cannot reach the target yet: no need to count
                _draw_stroke(draw, piece, width)
                drawn += most
                continue
            if drawn:
                holes, drawn = _holes(mask), 0.0
            # Count only inside the piece's box, then keep its shortest prefix that
            # reaches the target (binary search).
            lo = np.maximum(np.floor(piece.min(0) - width), 0).astype(int)
            hi = np.minimum(np.ceil(piece.max(0) + width), QD_SIZE).astype(int)
            box = (*lo.tolist(), *hi.tolist())
            before = mask.crop(box)
            base = holes - _holes(before)

            def reaches(length: int) -> bool:
                mask.paste(before, box[:2])
                _draw_stroke(draw, piece[:length], width)
                return base + _holes(mask.crop(box)) >= target

            if not reaches(len(piece)):
                holes = base + _holes(mask.crop(box))
                continue
            shortest, longest = 1, len(piece)
            while shortest < longest:
                mid = (shortest + longest) // 2
                shortest, longest = (shortest, mid) if reaches(mid) else (mid + 1, longest)
            reaches(shortest)
            if _holes(mask) > ratio_max * area and shortest > 1:  # one step past the range: step back
                reaches(shortest - 1)
            return mask



def _write_doodle(folder: Path, seed: int, ratio_min: float, ratio_max: float, job: tuple[str, int]) -> None:
    split, i = job
    rng = np.random.default_rng([seed, ("train", "test").index(split), i])
    path = folder / split / f"{i:05d}_{split}.png"
    save_image_atomic(render_doodle(rng, ratio_min, ratio_max), path, "PNG", compress_level=1)


def render_qd_imd(root: Path, train: int, test: int, seed: int, ratio_min: float = 0.01,
                  ratio_max: float = 0.60, workers: int = 0, progress: bool = False) -> None:
    """Write Quick-Draw-like hole masks under `root/qd_imd` in the QD-IMD layout (see module doc)."""
    check_count("holes.synthetic.train", train)
    check_count("holes.synthetic.test", test)
    check_count("data.workers", workers)
    if not 0 < ratio_min < ratio_max < 1:
        raise UserError(f"holes.ratio_min/ratio_max must satisfy 0 < min < max < 1, got "
                        f"{ratio_min}/{ratio_max}; fix them in params.yaml")
    folder = Path(root) / "qd_imd"
    jobs = [("train", i) for i in range(1, train + 1)] + [("test", i) for i in range(1, test + 1)]
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    run_jobs(partial(_write_doodle, folder, seed, ratio_min, ratio_max), jobs, workers, progress, "masks")
