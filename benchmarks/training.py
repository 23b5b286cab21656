"""training: seconds per training step per model on the CPU, what a step spends its time on,
and what the data loader must deliver to a GPU.

ours       `fgi.methods.base.make_objective(name, cfg, size, vgg=...)` and `Objective.step`,
           set up as `fgi.training.train` sets it up (`seed_everything`, `train.amp`'s
           autocast, channels_last under bfloat16), on a fixed batch:
           * the study profile (configs/study.yaml: 64², batch 8, width 0.5), every learned
             method, three ways: `before` (float32, the per-parameter Adam loop, deterministic
             mode's NaN fill of every new tensor: the training step as it was before the
             fused optimiser), `float32` (`train.amp: float32` today) and `bfloat16`
             (`train.amp: bfloat16`); `auto` is whichever of the two this CPU resolves to; on a
             CPU without native bfloat16 the `bfloat16` variant is left out (emulated, it is many
             times slower than float32 and `auto` never runs it);
           * on a CPU with native bfloat16, `before` and `float32` once more with every kernel
             limited to AVX2 (`AVX2_ONLY`): the stand-in for a CPU without it, where `auto` is
             float32 and the target is 1.2x;
           * the paper profile (configs/paper.yaml: 256², batch 5, width 1.0) in float32, with
             each model's peak memory.
           One warm-up step (FLOP-counted by torch's per-op formulas, `benchmarks.common.FlopCount`:
           forward and backward of every network, 2 FLOPs per multiply-accumulate), then the
           median of the timed steps; torch.profiler's top operators of `before` and `auto`.
reference  2048² float32 and (where native) bfloat16 matmuls in the parent process of the same run: a step's
           achieved GFLOP/s is reported as a share of the peak of the precision it ran in; the
           study step's speed-up is `auto` over `before`, summed over the methods.

Each measurement runs in its own fresh subprocess (`python -m benchmarks.training --child
NAME`), so its peak resident memory (`VmHWM`) is its own. Inputs are random images in [-1, 1]
with a doodle hole and an elliptical foreground: a step's cost does not depend on the pixels.
The data side (`benchmarks.loader`) measures the training DataLoader at 256² per worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Check, CpuMeter, Section, fmt, matmul_peak, median, say, table

NAME = "training"
SIZE, BATCH = 256, 5
MODELS = ("ours", "ce", "pconv", "gc", "lama")
STUDY_SIZE, STUDY_BATCH = 64, 8
VARIANTS = ("before", "float32", "bfloat16")
TARGET_NATIVE, TARGET_EMULATED = 1.8, 1.2  # the study step's speed-up, with and without native bfloat16
TOP_OPS = 5
# A CPU without native bfloat16, stood in for by this one: torch's kernels, oneDNN's and MKL's limited
# to AVX2 (what an AMD EPYC before Zen 4 or an Intel Xeon before Cooper Lake offers).
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def _memory_gib(field: str) -> float:
    """`VmHWM` (peak) or `VmRSS` (now) of this process from /proc/self/status, in GiB.

    Not `ru_maxrss`: Linux carries the parent's high-water mark across fork + exec, so a
    child of a big parent would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # not Linux: the best there is


def _as_before(objective) -> None:
    """The training step as it ran before the fused optimiser: Adam's per-parameter loop and
    deterministic mode's NaN fill of every new tensor."""
    import torch

    torch.utils.deterministic.fill_uninitialized_memory = True
    for optimizer in objective.optimizers.values():
        for group in optimizer.param_groups:
            group["fused"], group["foreach"] = False, False


def top_operators(step, count: int = TOP_OPS, steps: int = 2) -> list[list]:
    """[name, self CPU ms per step, share of the step's self CPU time] of the `count` costliest ops."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::") or "Optimizer" in e.key]
    total = sum(e.self_cpu_time_total for e in profiler.key_averages())
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [[e.key, e.self_cpu_time_total / steps / 1e3, e.self_cpu_time_total / total] for e in events[:count]]


def child(name: str, steps: int, batch: int, size: int, profile: str = "paper", variant: str = "float32",
          top_ops: bool = False) -> dict:
    """Build one model's objective, run warm-up + `steps` steps, return timings, FLOPs and memory."""
    import numpy as np
    import torch
    from benchmarks.common import FlopCount, paper_params, study_params
    from fgi.config import method_config
    from fgi.data.doodles import render_doodle
    from fgi.methods.base import make_objective
    from fgi.methods.vgg import VGG16Features
    from fgi.training.train import place, seed_everything

    baseline = _memory_gib("VmRSS")
    seed_everything(0, deterministic=True)  # as fgi.training.train runs on the CPU
    cfg = method_config(paper_params() if profile == "paper" else study_params(), name)
    layers = getattr(cfg, "vgg_layers", ("pool1",))
    objective = make_objective(name, cfg, size, vgg=lambda: VGG16Features(layers, weights=None, seed=0))
    memory, autocast = place(objective, torch.device("cpu"), "bfloat16" if variant == "bfloat16" else "float32")
    if variant == "before":
        _as_before(objective)
    for network in objective.networks().values():
        network.train()

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1  # (B, 3, S, S)
    rng = np.random.default_rng(0)
    holes = [np.asarray(render_doodle(rng, 0.1, 0.5).resize((size, size))) < 128 for _ in range(batch)]
    hole = torch.from_numpy(np.stack(holes)).float()[:, None]  # (B, 1, S, S)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    fg_mask = ((xx / 0.6) ** 2 + (yy / 0.8) ** 2 <= 1).float().expand(batch, 1, size, size)  # (B, 1, S, S)
    image, hole, fg_mask = (t.contiguous(memory_format=memory) for t in (image, hole, fg_mask))

    def step() -> None:
        terms = objective.step(image, hole, fg_mask, autocast=autocast)
        float(terms["g/total"].detach())  # the loss is ready: the step has finished

    with FlopCount() as counter:
        start = time.perf_counter()
        step()
        warmup = time.perf_counter() - start
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    parameters = sum(p.numel() for net in objective.networks().values() for p in net.parameters())
    return {"model": name, "variant": variant, "seconds": seconds, "warmup": warmup, "flops": counter.total,
            "parameters": parameters, "peak_rss_gib": _memory_gib("VmHWM"), "baseline_rss_gib": baseline,
            "threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability(),
            "top_ops": top_operators(step) if top_ops else []}


def measure(name: str, steps: int, batch: int = BATCH, size: int = SIZE, profile: str = "paper",
            variant: str = "float32", top_ops: bool = False, env: dict[str, str] | None = None) -> dict:
    """`child` in a fresh subprocess; `env` adds to its environment (e.g. `AVX2_ONLY`)."""
    command = [sys.executable, "-m", "benchmarks.training", "--child", name, "--steps", str(steps),
               "--batch", str(batch), "--size", str(size), "--profile", profile, "--variant", variant]
    done = subprocess.run(command + (["--top-ops"] if top_ops else []), check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def study_methods() -> list[str]:
    """The study profile's learned methods, in its tables' order."""
    from benchmarks.common import study_params
    from fgi import methods

    return [name for name in study_params().methods if methods.get(name).learned]


def _ops_text(ops: list[list]) -> str:
    return ", ".join(f"`{op.removeprefix('aten::')}` {ms:.0f} ms ({share:.0%})" for op, ms, share in ops)


def study_steps(steps: int, variants: tuple[str, ...], top_ops: tuple[str, ...] = (),
                env: dict[str, str] | None = None, label: str = "") -> tuple[list[tuple], dict[str, float]]:
    """[(method, {variant: child result}, {variant: median step s})] for every study method, and
    the median steps summed over the methods per variant."""
    measured = []
    for name in study_methods():
        results = {variant: measure(name, steps, STUDY_BATCH, STUDY_SIZE, "study", variant,
                                    top_ops=variant in top_ops, env=env) for variant in variants}
        step = {variant: median(r["seconds"]) for variant, r in results.items()}
        say(f"training: study {name}{label}: " + ", ".join(f"{v} {step[v]:.3f} s" for v in variants))
        measured.append((name, results, step))
    return measured, {variant: sum(step[variant] for _, _, step in measured) for variant in variants}


def study_section(steps: int, peaks: dict[str, float], auto: str) -> tuple[str, list[Check]]:
    """The study profile's step per method and variant, with the speed-up of `auto` over `before`."""
    rows, ops_rows = [], []
    native = auto == "bfloat16"
    variants = VARIANTS if native else ("before", "float32")  # emulated bfloat16: slow, and never `auto`
    measured, sums = study_steps(steps, variants, top_ops=("before", auto))
    for name, results, step in measured:
        flops = results["float32"]["flops"]
        shares = [f"{flops / step[v] / 1e9 / peaks[v]:.0%}" for v in ("float32", "bfloat16") if v in variants]
        rows.append([name, fmt(flops / 1e9), *(fmt(step[v]) for v in variants), *shares,
                     f"{step['before'] / step[auto]:.2f}×"])
        ops_rows.append([name, "before", _ops_text(results["before"]["top_ops"])])
        ops_rows.append([name, auto, _ops_text(results[auto]["top_ops"])])
    speedup = sums["before"] / sums[auto]
    target = TARGET_NATIVE if native else TARGET_EMULATED
    rows.append(["**sum**", "", *(fmt(sums[v]) for v in variants), *[""] * (len(variants) - 1),
                 f"**{speedup:.2f}×**"])
    check = Check(f"study step, {STUDY_SIZE}², batch {STUDY_BATCH}, sum over {len(study_methods())} methods, "
                  f"`train.amp: auto` ({auto})", sums[auto], sums["before"], "s", "the float32 step before the "
                  "fused optimiser, same run", speedup, target=f"≥ {target}× ({'native' if native else 'no native'} "
                  "bfloat16)", passed=speedup >= target)
    text = "\n\n".join([
        (f"The study profile (configs/study.yaml: {STUDY_SIZE}², batch {STUDY_BATCH}, width 0.5) as "
         f"`fgi.training.train` runs it, every learned method; median of {steps} timed steps after a warm-up. "
         "`before`: float32 with Adam's per-parameter loop and deterministic mode's NaN fill of every new tensor; "
         "`float32`: `train.amp: float32` (fused Adam, no fill); `bfloat16`: `train.amp: bfloat16` (autocast, "
         f"channels_last). `train.amp: auto` resolves to **{auto}** on this CPU"
         + ("" if native else ", which has no native bfloat16, so the `bfloat16` variant is left out") +
         ". Share of peak: the step's FLOPs per second over the matmul peak of its precision."),
        table(["model", "GFLOP / step", *(f"{v} s" for v in variants), "float32 of fp32 peak",
               *(["bfloat16 of bf16 peak"] if native else []), f"speed-up ({auto} ÷ before)"], rows),
        (f"Speed-up of the sum over methods: **{speedup:.2f}×** (target ≥ {target}× on a CPU "
         f"{'with' if native else 'without'} native bfloat16): **{'PASS' if check.passed else 'MISS'}**."
         + (f" float32 alone (no bfloat16): {sums['before'] / sums['float32']:.2f}×." if native else "")),
        (f"Where a step's time goes (torch.profiler, self CPU time per step, top {TOP_OPS} operators; the "
         f"share is of all self CPU time), before and with `auto`:"),
        table(["model", "variant", "top operators"], ops_rows),
    ])
    return text, [check]


def avx2_section(steps: int) -> tuple[str, list[Check]]:
    """The study step without native bfloat16, where `auto` is float32: `before` and `float32` on this
    CPU limited to AVX2, the stand-in for a CPU that has neither AMX nor AVX512."""
    rows = []
    measured, sums = study_steps(steps, ("before", "float32"), env=AVX2_ONLY, label=", AVX2 only")
    for name, results, step in measured:
        ran_at = {r["capability"] for r in results.values()}
        if ran_at != {"AVX2"}:
            raise RuntimeError(f"training: {name}'s AVX2-only steps ran at {ran_at}: this torch ignores "
                               "ATEN_CPU_CAPABILITY, so the stand-in would measure this CPU as it is")
        rows.append([name, fmt(step["before"]), fmt(step["float32"]), f"{step['before'] / step['float32']:.2f}×"])
    speedup = sums["before"] / sums["float32"]
    rows.append(["**sum**", fmt(sums["before"]), fmt(sums["float32"]), f"**{speedup:.2f}×**"])
    check = Check(f"study step, {STUDY_SIZE}², batch {STUDY_BATCH}, sum over {len(study_methods())} methods, "
                  "float32, this CPU limited to AVX2", sums["float32"], sums["before"], "s",
                  "the float32 step before the fused optimiser, same run and ISA", speedup,
                  target=f"≥ {TARGET_EMULATED}× (no native bfloat16)", passed=speedup >= TARGET_EMULATED)
    text = "\n\n".join([
        ("A CPU without native bfloat16 trains in float32 (`auto` resolves to it). None was at hand, so this CPU "
         "stands in for one: each step runs in a subprocess whose torch, oneDNN and MKL kernels are limited to "
         "AVX2 (" + ", ".join(f"`{k}={v}`" for k, v in AVX2_ONLY.items()) + "), the instruction set of an "
         f"AMD EPYC before Zen 4. Same steps as above; median of {steps} timed steps after a warm-up."),
        table(["model", "before s", "float32 s", "speed-up (float32 ÷ before)"], rows),
        (f"Speed-up of the sum over methods: **{speedup:.2f}×** (target ≥ {TARGET_EMULATED}× on a CPU without "
         f"native bfloat16): **{'PASS' if check.passed else 'MISS'}**. A stand-in: a real AVX2 CPU differs in "
         "clock, cache and memory bandwidth."),
    ])
    return text, [check]


def paper_section(steps: int, peak: float) -> tuple[str, list[Check], list[dict]]:
    results, checks, rows = [], [], []
    for name in MODELS:
        result = measure(name, steps)
        results.append(result)
        say(f"training: {name}: {median(result['seconds']):.1f} s/step, peak RSS {result['peak_rss_gib']:.2f} GiB")
    for r in results:
        step = median(r["seconds"])
        rate = r["flops"] / step / 1e9
        rows.append([r["model"], fmt(r["parameters"] / 1e6), fmt(step), fmt(BATCH / step), fmt(r["flops"] / 1e9),
                     fmt(rate), f"{rate / peak:.0%}", fmt(r["peak_rss_gib"])])
        checks.append(Check(f"{r['model']}: training step, 256², batch {BATCH}", step, peak, "s/step",
                            "2048² float32 matmul", rate / peak, note=f"{fmt(rate)} GFLOP/s, peak RSS "
                            f"{r['peak_rss_gib']:.2f} GiB", reference_unit="GFLOP/s"))
    baseline = max(r["baseline_rss_gib"] for r in results)
    text = "\n\n".join([
        (f"The paper profile (configs/paper.yaml: width 1.0), {SIZE}², batch {BATCH}, float32, random VGG16, "
         f"{results[0]['threads']} threads; median of {steps} timed step(s) after a warm-up:"),
        table(["model", "parameters (M, all networks)", "s / step", "images/s", "GFLOP / step", "GFLOP/s",
               "of fp32 matmul peak", "peak RSS GiB"], rows),
        (f"Peak RSS is the subprocess's `VmHWM` (/proc/self/status); {baseline:.2f} GiB of it is the "
         "interpreter with torch and fgi imported, before any network is built. No target: the paper run "
         "is meant for a GPU (`python -m benchmarks.gpu_train`)."),
    ])
    return text, checks, results


def run(quick: bool = False) -> Section:
    import torch
    from benchmarks import loader
    from fgi.inference import resolve_precision

    auto = resolve_precision("auto", torch.device("cpu"))
    with CpuMeter() as meter:
        peaks = {"float32": matmul_peak(torch.float32)}
        if auto == "bfloat16":  # emulated bfloat16 has no peak worth the name
            peaks["bfloat16"] = matmul_peak(torch.bfloat16)
        say(f"training: matmul peak {peaks['float32']:.0f} GFLOP/s float32, "
            + (f"{peaks['bfloat16']:.0f} bfloat16" if "bfloat16" in peaks else "no native bfloat16"))
        study_text, study_checks = study_section(3 if quick else 7, peaks, auto)
        if auto == "bfloat16":  # elsewhere the section above already measures the float32 target
            avx2_text, avx2_checks = avx2_section(3 if quick else 7)
            study_text, study_checks = f"{study_text}\n\n{avx2_text}", study_checks + avx2_checks
        paper_text, paper_checks, paper_results = paper_section(1 if quick else 2, peaks["float32"])
        data_text, data_checks = loader.data_side({r["model"]: r["flops"] for r in paper_results}, BATCH, SIZE,
                                                  quick)
    body = "\n\n".join([
        (f"{meter.describe()}. Matmul peak in this run: **{peaks['float32']:.0f} GFLOP/s** float32, "
         + (f"**{peaks['bfloat16']:.0f} GFLOP/s** bfloat16" if "bfloat16" in peaks else
            "no bfloat16 peak (this CPU has no native bfloat16)") + " (2048², best of 8)."),
        "### The study profile's step", study_text,
        "### The paper profile's step", paper_text,
        "### The data side of a GPU run", data_text,
    ])
    return Section(NAME, "training: seconds per step (CPU), and the data loader a GPU needs", body,
                   study_checks + paper_checks + data_checks)


def main() -> None:
    parser = argparse.ArgumentParser(description="one model's training step, in its own process")
    parser.add_argument("--child", required=True, choices=MODELS)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--profile", choices=("paper", "study"), default="paper")
    parser.add_argument("--variant", choices=VARIANTS, default="float32")
    parser.add_argument("--top-ops", action="store_true", help="also profile two steps' operators")
    args = parser.parse_args()
    print(json.dumps(child(args.child, args.steps, args.batch, args.size, args.profile, args.variant,
                           args.top_ops)), flush=True)


if __name__ == "__main__":
    main()
