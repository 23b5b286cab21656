"""The data side of a GPU training run: what the DataLoader delivers against what a GPU consumes.

ours       `fgi.data.dataset.TrainSet` at 256² (prepared faces as PNG, their foreground masks,
           a pool of doodle holes, mask augmentation on) in a `DataLoader` of batch 5, as
           `fgi.training.train` builds it, with 0 (in the training process), 1 and 2 worker
           processes: images per second after the first batch (worker start-up excluded).
reference  what one GPU trains per second, estimated per method from its training step's FLOPs
           (counted on the CPU by `benchmarks.training`) and a bfloat16 dense peak of
           989 TFLOP/s (H100 SXM and H200) at `UTILISATION` of it. The workers a paper run needs
           are that rate over one worker's, rounded up, for the most demanding method.

`python -m benchmarks.gpu_train` measures the real step on a GPU; this estimate only sizes
`train.num_workers` of configs/paper.yaml.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Check, fmt, say, table

GPU_PEAK_TFLOPS = 989.0  # NVIDIA H100 SXM / H200, bfloat16 dense
UTILISATION = 0.25  # of that peak: a GAN step on batches of 5 at 256² rarely reaches more
FACES, HOLES = 64, 32
WORKERS = (0, 1, 2)


def make_training_data(root: Path, size: int, faces: int = FACES, holes: int = HOLES) -> tuple[Path, Path, Path]:
    """prepared/, foreground/ and holes/ as the prepare, foreground and holes stages lay them out,
    from synthetic faces and doodles at `size`²."""
    from PIL import Image
    from scipy import ndimage

    from fgi import files
    from fgi.data.doodles import render_doodle
    from fgi.data.layout import write_csv
    from fgi.data.synthetic import render_face

    prepared, foreground, hole_dir = root / "prepared", root / "foreground", root / "holes"
    (prepared / "images").mkdir(parents=True)
    foreground.mkdir()
    (hole_dir / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"{index:05d}" for index in range(faces)]
    for image_id in ids:
        photo, parts = render_face(rng)
        files.save_png(prepared / "images" / f"{image_id}.png",
                       np.asarray(photo.resize((size, size), Image.Resampling.LANCZOS)))
        region = ndimage.binary_fill_holes(parts["skin"] | parts.get("hair", False))
        files.save_mask(foreground / f"{image_id}.png",
                        np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.NEAREST)))
    (prepared / "train.txt").write_text("\n".join(ids) + "\n")
    rows = []
    for index in range(holes):
        doodle = np.asarray(render_doodle(rng, 0.05, 0.5).resize((size, size), Image.Resampling.NEAREST)) < 128
        files.save_mask(hole_dir / "train" / f"{index:05d}.png", doodle)
        rows.append({"mask": f"train/{index:05d}.png", "split": "train"})
    write_csv(hole_dir / "masks.csv", ("mask", "split"), rows)
    return prepared, foreground, hole_dir


def loader_rate(prepared: Path, foreground: Path, holes: Path, workers: int, batch: int, batches: int) -> float:
    """Images per second the training DataLoader yields with `workers` processes, after its first batch."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from fgi.data.dataset import TrainSet

    dataset = TrainSet(prepared, foreground, holes, augment=True)
    generator = torch.Generator().manual_seed(0)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (batches + 1), generator=generator)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, generator=generator)
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch
    start = time.perf_counter()
    count = sum(len(image) for image, _, _ in iterator)
    return count / (time.perf_counter() - start)


def data_side(flops: dict[str, float], batch: int, size: int, quick: bool = False) -> tuple[str, list[Check]]:
    """Loader images/s per worker count, each method's estimated GPU images/s, the workers needed."""
    batches = 8 if quick else 40
    with tempfile.TemporaryDirectory(prefix="fgi-bench-loader-") as tmp:
        data = make_training_data(Path(tmp), size)
        rates = {workers: loader_rate(*data, workers, batch, batches) for workers in WORKERS}
    say("training: loader " + ", ".join(f"{w} workers {r:.0f} images/s" for w, r in rates.items()))
    per_worker = rates[1]
    gpu_rows, needed = [], {}
    for name, step_flops in flops.items():
        gpu_step = step_flops / (GPU_PEAK_TFLOPS * 1e12 * UTILISATION)
        consumed = batch / gpu_step
        needed[name] = math.ceil(consumed / per_worker)
        gpu_rows.append([name, fmt(step_flops / 1e12), fmt(gpu_step * 1e3), fmt(consumed), str(needed[name])])
    hungriest = max(needed, key=needed.get)
    text = "\n\n".join([
        (f"`TrainSet` at {size}² ({FACES} synthetic faces as PNG, their foreground masks, {HOLES} doodle holes, "
         f"mask augmentation on), batch {batch}, {batches} batches after the first:"),
        table(["worker processes", "images/s"], [[str(w), fmt(r)] for w, r in rates.items()]),
        (f"What one GPU trains per second, estimated from each step's FLOPs (the paper profile above, "
         f"batch {batch}) at {UTILISATION:.0%} of a {GPU_PEAK_TFLOPS:.0f} TFLOP/s bfloat16 peak (H100 SXM, H200), "
         f"and the workers that rate needs at {fmt(per_worker)} images/s per worker:"),
        table(["model", "TFLOP / step", "GPU ms / step (est.)", "images/s consumed (est.)", "workers needed"],
              gpu_rows),
        (f"The most demanding method, {hungriest}, needs **{needed[hungriest]}** workers per GPU; "
         "configs/paper.yaml's `train.num_workers` follows from this table."),
    ])
    check = Check(f"data loader at {size}², one worker process", per_worker, batch / (
        flops[hungriest] / (GPU_PEAK_TFLOPS * 1e12 * UTILISATION)), "images/s",
        f"{hungriest}'s estimated GPU consumption", per_worker / (batch / (
            flops[hungriest] / (GPU_PEAK_TFLOPS * 1e12 * UTILISATION))),
        note=f"{needed[hungriest]} workers per GPU needed")
    return text, [check]
