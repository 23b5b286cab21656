"""gpu_train: training images per second per model on a CUDA GPU, bf16 autocast, with and without torch.compile.

    python -m benchmarks.gpu_train                     # batch 5 (the paper's) and 32, every model
    python -m benchmarks.gpu_train --models ours --batches 5 --steps 50

Without a CUDA device it prints why and exits 0, writing nothing.

Each run builds the model as `fgi.training.train` does on CUDA: the paper profile's
model section (configs/paper.yaml, width 1.0) via `make_objective`, a seeded
random VGG16, networks and inputs in channels_last, `Objective.step` under
`torch.autocast("cuda", dtype=torch.bfloat16)`, and with `--compile` the
generator (only it, as `train.compile` does) wrapped in `torch.compile`. After
`--warmup` untimed steps (the first one compiles), `--steps` steps are timed
between `torch.cuda.synchronize()` calls. FLOPs per image come from
`FlopCounterMode` on one eager step; the achieved TFLOP/s is compared with a
bf16 8192² matmul on the same GPU. The paper profile's training time follows:
100 epochs × 27,000 images ÷ images/s at batch 5. On a CUDA machine the table
also replaces the `gpu_train` section of reports/bench.md.

`--device cpu --size 64 --batches 2 --steps 1 --warmup 1` runs the same code
path on the CPU (bf16 autocast on the CPU, no compile) as a dry run; it writes
nothing.
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import REPORT, Check, Section, fmt, matmul_peak, paper_params, say, table, write_report
from fgi.config import method_config
from fgi.methods.vgg import VGG16Features
from fgi.methods.base import make_objective

MODELS = ("ours", "ce", "pconv", "gc", "lama")
PAPER_IMAGES = 100 * 27_000  # epochs × training images (configs/paper.yaml)


def build(name: str, size: int, device: torch.device):
    torch.manual_seed(0)
    cfg = method_config(paper_params(), name)
    layers = getattr(cfg, "vgg_layers", ("pool1",))
    objective = make_objective(name, cfg, size, vgg=lambda: VGG16Features(layers, weights=None, seed=0))
    objective.to(device, torch.channels_last)
    for network in objective.networks().values():
        network.train()
    return objective


def batch_of(size: int, batch: int, device: torch.device) -> list[torch.Tensor]:
    """Random images in [-1, 1], a hole of a third of each image, an elliptical foreground."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1  # (B, 3, S, S)
    hole = torch.zeros(batch, 1, size, size)
    hole[..., size // 3: 2 * size // 3, size // 4: 3 * size // 4] = 1  # (B, 1, S, S)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    fg_mask = ((xx / 0.6) ** 2 + (yy / 0.8) ** 2 <= 1).float().expand(batch, 1, size, size).contiguous()
    return [t.to(device).contiguous(memory_format=torch.channels_last) for t in (image, hole, fg_mask)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_image(name: str, size: int, device: torch.device) -> float:
    """FLOPs of one eager bf16 training step at batch 2, per image."""
    objective = build(name, size, device)
    batch = batch_of(size, 2, device)
    with FlopCounterMode(display=False) as counter:
        objective.step(*batch, autocast=functools.partial(torch.autocast, device.type, dtype=torch.bfloat16))
    return counter.get_total_flops() / 2


def measure(name: str, size: int, batch: int, compiled: bool, steps: int, warmup: int,
            device: torch.device) -> dict:
    """images/s, first-step seconds (the compile) and peak memory of one configuration."""
    objective = build(name, size, device)
    if compiled:
        torch._dynamo.reset()  # every model compiles afresh, within the recompile limit
        objective.generator = torch.compile(objective.generator)
    inputs = batch_of(size, batch, device)
    autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    objective.step(*inputs, autocast=autocast)
    synchronize(device)
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        objective.step(*inputs, autocast=autocast)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        objective.step(*inputs, autocast=autocast)
    synchronize(device)
    seconds = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"images_per_s": batch * steps / seconds, "first_step_s": first, "peak_gib": memory}


def run_all(models, batches, size, steps, warmup, device, compile_modes) -> Section:
    # A CPU run is a dry run of the code path; where bf16 is emulated (AMD EPYC) one 1024² bf16
    # matmul takes seconds, so its reference peak comes from small matrices.
    peak = _cuda_matmul_peak(device) if device.type == "cuda" else matmul_peak(torch.bfloat16, n=256)
    say(f"gpu_train: bf16 matmul peak {peak / 1000:.1f} TFLOP/s on {_device_name(device)}")
    rows, checks, paper_hours = [], [], {}
    for name in models:
        per_image = flops_per_image(name, size, device)
        for batch in batches:
            for compiled in compile_modes:
                label = f"{name}, batch {batch}, {'compiled' if compiled else 'eager'}"
                try:
                    result = measure(name, size, batch, compiled, steps, warmup, device)
                except torch.cuda.OutOfMemoryError:
                    rows.append([name, str(batch), "yes" if compiled else "no", "out of memory", "", "", "", ""])
                    say(f"gpu_train: {label}: out of memory")
                    continue
                except Exception as err:  # noqa: BLE001 - a compile failure must not hide the eager numbers
                    rows.append([name, str(batch), "yes" if compiled else "no", f"failed: {type(err).__name__}",
                                 "", "", "", ""])
                    say(f"gpu_train: {label}: {type(err).__name__}: {err}")
                    continue
                finally:
                    gc.collect()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rate = result["images_per_s"]
                achieved = per_image * rate / 1e9  # GFLOP/s
                hours = PAPER_IMAGES / rate / 3600
                if batch == 5:
                    paper_hours[name] = min(hours, paper_hours.get(name, float("inf")))
                rows.append([name, str(batch), "yes" if compiled else "no", fmt(rate), fmt(achieved / 1000),
                             f"{achieved / peak:.0%}", fmt(result["first_step_s"]), fmt(result["peak_gib"])])
                checks.append(Check(f"{label}: training", rate, peak / 1000, "images/s", "bf16 matmul",
                                    achieved / peak, note=f"{fmt(achieved / 1000)} TFLOP/s; paper profile "
                                    f"{hours:.1f} h", reference_unit="TFLOP/s"))
                say(f"gpu_train: {label}: {rate:.1f} images/s, {achieved / 1000:.1f} TFLOP/s")
    total = sum(paper_hours.values())
    body = "\n\n".join([
        (f"{_device_name(device)}; {size}², paper profile (width 1.0), bf16 autocast, channels_last, random "
         f"VGG16; {warmup} warm-up step(s) then {steps} timed; compiled = `torch.compile` of the generator "
         f"(as `train.compile`). bf16 matmul peak in this run: {peak / 1000:.1f} TFLOP/s."),
        table(["model", "batch", "compiled", "images/s", "TFLOP/s", "of bf16 peak", "first step s",
               "peak GiB"], rows),
        ("Paper profile (100 epochs × 27,000 images, batch 5, the faster of eager and compiled): "
         + ", ".join(f"{name} {hours:.1f} h" for name, hours in paper_hours.items())
         + f"; together {total:.1f} h on this GPU." if paper_hours else
         "Batch 5 (the paper's) was not measured: no paper-profile estimate."),
    ])
    return Section("gpu_train", "gpu_train: training throughput on a CUDA GPU", body, checks)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"


def _cuda_matmul_peak(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_train", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[5, 32], help="batch sizes (default 5 32)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (the first compiles)")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_train: no CUDA device here (torch.cuda.is_available() is False); nothing measured, "
              "nothing written. Run it on a machine with an NVIDIA GPU.")
        return 0
    device = torch.device(args.device)
    compile_modes = (False, True) if device.type == "cuda" else (False,)
    section = run_all(args.models, args.batches, args.size, args.steps, max(1, args.warmup), device,
                      compile_modes)
    say("\n" + section.body)
    if device.type == "cuda":
        write_report(REPORT, [section])
        say(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
