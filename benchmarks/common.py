"""What every benchmark shares: timing, the CPU-load meter, the matmul peak, the report file.

A benchmark's `run(quick)` returns a `Section`: its Markdown and its `Check`s
(one measurement of ours against a named reference, with the ratio and the
target). `write_report` merges sections into `reports/bench.md`, so running a
subset (`python -m benchmarks evaluate`) replaces only those sections and the
summary table is rebuilt from every section in the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from fgi.config import Params, load_params
from fgi.inference import bfloat16_is_native, cpu_name

ROOT = Path(__file__).resolve().parent.parent  # the repository
PAPER_PROFILE = ROOT / "configs" / "paper.yaml"
STUDY_PROFILE = ROOT / "configs" / "study.yaml"
REPORT = ROOT / "reports" / "bench.md"
ORDER = ("prepare", "evaluate", "inference", "training", "e2e", "gpu_train")


@dataclass
class Check:
    """One measurement of ours against its reference; `passed` is None when there is no target.

    `ratio` is ours ÷ reference in the reference's unit: a speed-up for prepare and
    evaluate, the share of the matmul peak for inference and training.
    """

    what: str
    ours: float
    reference: float | None
    unit: str
    reference_name: str
    ratio: float | None
    target: str = ""
    passed: bool | None = None
    note: str = ""  # shown after ours' value, e.g. the GFLOP/s behind a latency
    reference_unit: str = ""  # when it differs from `unit`


@dataclass
class Section:
    name: str
    title: str
    body: str
    checks: list[Check] = field(default_factory=list)


def say(message: str) -> None:
    print(message, flush=True)


def paper_params() -> Params:
    return load_params(PAPER_PROFILE)


def study_params() -> Params:
    return load_params(STUDY_PROFILE)


def replace(params, **changes):
    """`dataclasses.replace` that reaches into nested sections: replace(params, data__workers=1)."""
    direct = {key: value for key, value in changes.items() if "__" not in key}
    nested: dict[str, dict] = {}
    for key, value in changes.items():
        if "__" in key:
            head, rest = key.split("__", 1)
            nested.setdefault(head, {})[rest] = value
    for head, inner in nested.items():
        direct[head] = replace(getattr(params, head), **inner)
    return dataclasses.replace(params, **direct)


# ---------------------------------------------------------------- timing


class FlopCount(TorchDispatchMode):
    """Total FLOPs of what runs inside it, by torch's own per-op formulas (`flop_registry`, the
    ones `FlopCounterMode` uses: 2 per multiply-accumulate). Unlike `FlopCounterMode` it tracks no
    modules, whose backward hooks `torch.autograd.grad` refuses (an R1 penalty's create_graph)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out



def clocked(fn: Callable[..., Any], *args, **kwargs) -> tuple[float, Any]:
    """(seconds, result) of one call `fn(*args, **kwargs)`."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def timed(fn: Callable[..., object], *args, **kwargs) -> float:
    """Seconds of one call `fn(*args, **kwargs)`."""
    return clocked(fn, *args, **kwargs)[0]


def interleave(arms: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each arm's calls, the arms alternating (A, B, A, B, ...) after `warmup` untimed rounds,
    so that a change of load on a shared CPU hits every arm alike."""
    for _ in range(warmup):
        for arm in arms.values():
            arm()
    times = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            times[name].append(timed(arm))
    return times


def locate(find):
    """(root, "") where a release test would run (`find` is its locating function), else (None, its skip
    reason): a benchmark against a release runs where the release's tests do."""
    import pytest  # noqa: PLC0415 - the release tests' skip, only for the benchmarks that need it

    try:
        return find(), ""
    except pytest.skip.Exception as skipped:
        return None, str(skipped.msg)


def latencies(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(repeats)]


def median(values: list[float]) -> float:
    return statistics.median(values)


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of the best of `repeats` n x n matmuls (2·n³ FLOPs each) with torch's threads."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(dtype)
    b = torch.randn(n, n, generator=generator).to(dtype)
    best = min(latencies(lambda: a @ b, repeats, warmup=2))
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------- machine load


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent busy since boot (user+nice+system+irq+softirq), Linux only."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class CpuMeter:
    """How loaded the machine was while a block ran: load averages and other processes' CPU use.

    Other processes' use = every busy CPU second minus our own (and our children's),
    divided by the wall time: the average number of cores they took from us.
    """

    def __enter__(self) -> Self:
        self.load_start = os.getloadavg()[0]
        self.busy, self.own, self.start = _busy_seconds(), _own_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.start
        self.load_end = os.getloadavg()[0]
        busy = _busy_seconds()
        self.others = None if busy is None or self.busy is None else max(
            0.0, (busy - self.busy - (_own_seconds() - self.own)) / max(self.wall, 1e-9))

    def brief(self) -> str:
        others = "" if self.others is None else f", other processes {self.others:.2f} cores"
        return f"load {self.load_start:.2f} → {self.load_end:.2f}{others}"

    def describe(self) -> str:
        others = "" if self.others is None else (
            f"; other processes kept {self.others:.2f} of the {cores()} cores busy on average")
        return (f"measured {time.strftime('%Y-%m-%d %H:%M')} in {self.wall:.0f} s; 1-min load average "
                f"{self.load_start:.2f} at the start, {self.load_end:.2f} at the end{others}")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def instruction_set() -> str:
    """The vector kernels torch picked on this CPU and whether its bfloat16 is native, e.g. "AVX2, no
    native bfloat16": two CPUs of one model name can differ (an AMD EPYC with or without AVX-512)."""
    where = torch.device("cpu")
    return (f"{torch.backends.cpu.get_cpu_capability()}, "
            f"{'native' if bfloat16_is_native(where) else 'no native'} bfloat16")


def machine() -> str:
    return (f"{cpu_name()} ({instruction_set()}), {cores()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


# ---------------------------------------------------------------- Markdown


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with `digits` significant digits (no exponent for ordinary sizes)."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(check: Check) -> str:
    """PASS or MISS against the target; UNDECIDED where a target's interval spans it; — without a target."""
    if check.passed is None:
        return "UNDECIDED" if check.target else "—"
    return "PASS" if check.passed else "MISS"


def check_rows(checks: list[Check], benchmark: str | None = None) -> list[list[str]]:
    return [([benchmark] if benchmark else []) + [
        c.what, f"{fmt(c.ours)} {c.unit}" + (f" ({c.note})" if c.note else ""),
        c.reference_name if c.reference is None
        else f"{fmt(c.reference)} {c.reference_unit or c.unit} ({c.reference_name})",
        "—" if c.ratio is None else f"{c.ratio:.2f}×", c.target or "—", verdict(c)] for c in checks]


CHECK_HEADERS = ["measurement", "ours", "reference", "ratio", "target", "result"]

_SECTION = re.compile(r"<!-- bench:begin (\w+) (.*?) -->\n(.*?)<!-- bench:end \1 -->\n", re.DOTALL)


def _encode(checks: list[Check]) -> str:
    # JSON never holds "--" outside strings; inside them the escape keeps the HTML comment valid.
    return json.dumps([dataclasses.asdict(c) for c in checks]).replace("--", "\\u002d\\u002d")


def read_sections(path: Path) -> dict[str, Section]:
    """The sections an earlier run left in `path` (none when it is missing or foreign)."""
    if not path.is_file():
        return {}
    sections = {}
    for name, encoded, text in _SECTION.findall(path.read_text()):
        title, _, body = text.partition("\n\n")
        checks = [Check(**c) for c in json.loads(encoded)]
        sections[name] = Section(name, title.removeprefix("## ").strip(), body.rstrip("\n"), checks)
    return sections


def write_report(path: Path, new: list[Section]) -> None:
    """Replace `new`'s sections in `path`, keep the others, rebuild the summary."""
    sections = read_sections(path)
    sections.update({s.name: s for s in new})
    ordered = sorted(sections.values(), key=lambda s: ORDER.index(s.name) if s.name in ORDER else len(ORDER))
    summary = [row for s in ordered for row in check_rows(s.checks, s.name)]
    parts = [
        "# Benchmarks\n",
        ("Written by `make bench` (`python -m benchmarks [names] [--quick]`); each benchmark measures ours "
         "and its named reference in the same run. The ratio is ours ÷ reference in the reference's unit: "
         "a speed-up for prepare and evaluate (> 1: ours is faster), the share of the CPU's float32 "
         "matmul peak that the network achieves for inference and training. Each section "
         "says when it was measured and how loaded the machine was; a subset run replaces only its "
         "sections.\n"),
        f"Last run on: {machine()}.\n",
        "## Summary\n",
        table(["benchmark"] + CHECK_HEADERS, summary) + "\n",
    ]
    for s in ordered:
        parts.append(f"<!-- bench:begin {s.name} {_encode(s.checks)} -->\n## {s.title}\n\n{s.body.rstrip()}\n\n"
                     f"<!-- bench:end {s.name} -->\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, path)
