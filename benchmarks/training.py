"""training: seconds per step per model at 256², batch 5, on the CPU, and each model's peak memory.

ours       `fgi.methods.base.make_objective(name, cfg, 256, vgg=...)` with the paper
           profile's model sections (configs/paper.yaml: width 1.0, its losses and
           optimisers) for every learned method of that profile; and at 64², batch 8,
           with the study profile's sections (configs/study.yaml, width 0.5), Ours beside
           LaMa, whose Fourier units run FFTs (a slow path on CPUs, so measured before any
           optimisation). A seeded random VGG16 (as offline) and deterministic
           algorithms (as `fgi.training.train` on the CPU); `Objective.step` on a batch of 5:
           one warm-up step, FLOP-counted by torch's per-op formulas (`benchmarks.common.
           FlopCount`: forward and backward of every network, 2 FLOPs per multiply-accumulate), then timed steps.
reference  a 2048×2048 float32 matmul in the parent process of the same run: the
           achieved GFLOP/s of a training step is reported as a share of it.

Each model runs in its own fresh subprocess (`python -m benchmarks.training
--child NAME`), so its peak resident memory (`VmHWM`) is its own; the
interpreter with torch and fgi imported, before any model exists, is reported
beside it. Inputs are random images in [-1, 1] with a doodle hole and an
elliptical foreground: the step's cost does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Check, CpuMeter, Section, fmt, matmul_peak, median, say, table

NAME = "training"
SIZE = 256
BATCH = 5
MODELS = ("ours", "ce", "pconv", "gc", "lama")
SMALL_SIZE, SMALL_BATCH, SMALL_MODELS = 64, 8, ("ours", "lama")  # the study profile's training step
PAPER_EPOCH_IMAGES = 27_000


def _memory_gib(field: str) -> float:
    """`VmHWM` (peak) or `VmRSS` (now) of this process from /proc/self/status, in GiB.

    Not `ru_maxrss`: Linux carries the parent's high-water mark across fork + exec, so a
    child of a big parent would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # not Linux: the best there is


def child(name: str, steps: int, batch: int, size: int, profile: str = "paper") -> dict:
    """Build one model's objective, run warm-up + `steps` steps, return timings, FLOPs and memory."""
    import numpy as np
    import torch
    from benchmarks.common import FlopCount, paper_params, study_params
    from fgi.config import method_config
    from fgi.data.doodles import render_doodle
    from fgi.methods.vgg import VGG16Features
    from fgi.methods.base import make_objective

    baseline = _memory_gib("VmRSS")
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as fgi.training.train runs on the CPU
    cfg = method_config(paper_params() if profile == "paper" else study_params(), name)
    layers = getattr(cfg, "vgg_layers", ("pool1",))
    objective = make_objective(name, cfg, size, vgg=lambda: VGG16Features(layers, weights=None, seed=0))
    for network in objective.networks().values():
        network.train()

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1  # (B, 3, S, S)
    rng = np.random.default_rng(0)
    holes = [np.asarray(render_doodle(rng, 0.1, 0.5).resize((size, size))) < 128 for _ in range(batch)]
    hole = torch.from_numpy(np.stack(holes)).float()[:, None]  # (B, 1, S, S)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    fg_mask = ((xx / 0.6) ** 2 + (yy / 0.8) ** 2 <= 1).float().expand(batch, 1, size, size)  # (B, 1, S, S)

    with FlopCount() as counter:
        start = time.perf_counter()
        objective.step(image, hole, fg_mask)
        warmup = time.perf_counter() - start
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        terms = objective.step(image, hole, fg_mask)
        float(terms["g/total"].detach())  # the loss is ready: the step has finished
        seconds.append(time.perf_counter() - start)
    parameters = sum(p.numel() for net in objective.networks().values() for p in net.parameters())
    return {"model": name, "seconds": seconds, "warmup": warmup, "flops": counter.total,
            "parameters": parameters, "peak_rss_gib": _memory_gib("VmHWM"), "baseline_rss_gib": baseline,
            "threads": torch.get_num_threads()}


def measure(name: str, steps: int, batch: int = BATCH, size: int = SIZE, profile: str = "paper") -> dict:
    command = [sys.executable, "-m", "benchmarks.training", "--child", name, "--steps", str(steps),
               "--batch", str(batch), "--size", str(size), "--profile", profile]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> Section:
    steps = 1 if quick else 2
    results, checks, rows = [], [], []
    with CpuMeter() as meter:
        peak = matmul_peak()
        say(f"training: matmul peak {peak:.0f} GFLOP/s float32")
        for name in MODELS:
            result = measure(name, steps)
            results.append(result)
            say(f"training: {name}: {median(result['seconds']):.1f} s/step, peak RSS {result['peak_rss_gib']:.2f} GiB")
        small = [measure(name, 2 * steps + 1, SMALL_BATCH, SMALL_SIZE, "study") for name in SMALL_MODELS]
    for r in results:
        step = median(r["seconds"])
        rate = r["flops"] / step / 1e9
        epoch_hours = PAPER_EPOCH_IMAGES / BATCH * step / 3600
        rows.append([r["model"], fmt(r["parameters"] / 1e6), fmt(step), fmt(BATCH / step), fmt(r["flops"] / 1e9),
                     fmt(rate), f"{rate / peak:.0%}", fmt(r["peak_rss_gib"]), fmt(epoch_hours)])
        checks.append(Check(f"{r['model']}: training step, 256², batch {BATCH}", step, peak, "s/step",
                            "2048² float32 matmul", rate / peak, note=f"{fmt(rate)} GFLOP/s, peak RSS "
                            f"{r['peak_rss_gib']:.2f} GiB", reference_unit="GFLOP/s"))
    small_rows = []
    for r in small:
        step = median(r["seconds"])
        rate = r["flops"] / step / 1e9
        small_rows.append([r["model"], fmt(r["parameters"] / 1e6), fmt(step), fmt(SMALL_BATCH / step),
                           fmt(r["flops"] / 1e9), fmt(rate), f"{rate / peak:.0%}", fmt(r["peak_rss_gib"])])
        checks.append(Check(f"{r['model']}: training step, {SMALL_SIZE}², batch {SMALL_BATCH}, study profile", step,
                            peak, "s/step", "2048² float32 matmul", rate / peak, reference_unit="GFLOP/s",
                            note=f"{fmt(rate)} GFLOP/s"))
    baseline = max(r["baseline_rss_gib"] for r in results)
    body = "\n\n".join([
        (f"Paper profile (width 1.0), {SIZE}², batch {BATCH}, random VGG16, CPU with "
         f"{results[0]['threads']} threads; one warm-up step (FLOP-counted) then the median of {steps} timed "
         f"step(s), each model in a fresh subprocess; {meter.describe()}. Matmul peak in this run: "
         f"**{peak:.0f} GFLOP/s** float32."),
        table(["model", "parameters (M, all networks)", "s / step", "images/s", "GFLOP / step", "GFLOP/s",
               "of matmul peak", "peak RSS GiB", "h / paper epoch (27k images)"], rows),
        (f"Peak RSS is the subprocess's `VmHWM` (/proc/self/status); {baseline:.2f} GiB of it is the "
         "interpreter with torch and fgi imported, before any network is built. No target: the paper run "
         "is meant for a GPU (`python -m benchmarks.gpu_train`)."),
        (f"The study profile's step (configs/study.yaml: width 0.5), {SMALL_SIZE}², batch {SMALL_BATCH}, the same "
         "way:"),
        table(["model", "parameters (M, all networks)", "s / step", "images/s", "GFLOP / step", "GFLOP/s",
               "of matmul peak", "peak RSS GiB"], small_rows),
    ])
    return Section(NAME, f"training: seconds per step at {SIZE}², batch {BATCH} (CPU)", body, checks)


def main() -> None:
    parser = argparse.ArgumentParser(description="one model's training step, in its own process")
    parser.add_argument("--child", required=True, choices=MODELS)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--profile", choices=("paper", "study"), default="paper")
    args = parser.parse_args()
    print(json.dumps(child(args.child, args.steps, args.batch, args.size, args.profile)), flush=True)


if __name__ == "__main__":
    main()
