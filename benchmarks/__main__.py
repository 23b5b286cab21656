"""`python -m benchmarks [names] [--quick]`: run benchmarks, write reports/bench.md, print a summary.

    python -m benchmarks                      # prepare evaluate inference training (`make bench`)
    python -m benchmarks prepare evaluate     # a subset; the other sections of bench.md are kept
    python -m benchmarks --quick              # small counts, for a smoke run
    python -m benchmarks e2e                  # `make repro` and `make test` in a fresh clone (slow)
    python -m benchmarks releases             # ours against the released GC and LaMa (FGI_*_RELEASE clones)
    python -m benchmarks peer_metrics         # our evaluate against LaMa's evaluator (FGI_LAMA_RELEASE clone)
    python -m benchmarks.gpu_train            # on a CUDA machine only

Exit status 0 when every benchmark ran (a missed target is reported, not an
error); 1 when one failed, e.g. evaluate's numbers differ from its reference.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from benchmarks.common import CHECK_HEADERS, REPORT, ROOT, check_rows, machine, say, table, write_report
from fgi import records

DEFAULT = ("prepare", "evaluate", "inference", "training")
AVAILABLE = DEFAULT + ("e2e", "releases", "peer_metrics")  # releases, peer_metrics: not defaults, they need the clones
QUICK_NOTE = "**Quick run (`--quick`, small counts): a smoke test, not a measurement.**"
# The code each section measures (fgi.records): the benchmark's import closure, the methods it
# builds, and what it reads as it is. `fgi records` lists a section stale when any of it changes.
WHOLE_REPOSITORY = ["fgi", "stages", "tests", "dvc.yaml", "params.yaml", "Makefile", "pyproject.toml",
                    "requirements.lock", ".ci/run"]
CLOSURES = {
    "prepare": {"modules": ["benchmarks.prepare"], "paths": ["configs/paper.yaml"]},
    "evaluate": {"modules": ["benchmarks.evaluate"], "paths": ["configs/paper.yaml"]},
    "inference": {"modules": ["benchmarks.inference", "fgi.cli"], "methods": True, "paths": ["configs/paper.yaml"]},
    "training": {"modules": ["benchmarks.training"], "methods": True,
                 "paths": ["configs/paper.yaml", "configs/study.yaml"]},
    "e2e": {"modules": ["benchmarks.e2e"], "paths": WHOLE_REPOSITORY},  # `make repro` and `make test` run it all
    "releases": {"modules": ["benchmarks.releases"],  # the release tests' helpers, imported by path
                 "paths": ["configs/study.yaml", "tests/test_gc_release.py", "tests/test_lama_release.py",
                           "tests/test_golden.py", "tests/golden/make_golden.py"]},
    # the peer test's helpers, imported by path; the code that made the demo's predictions (the train and
    # predict stages' deps in dvc.lock, not the whole file: `make repro` at a new commit rewrites the
    # report's hashes there) and its methods (params.yaml)
    "peer_metrics": {"modules": ["benchmarks.peer_metrics"], "pipeline": ["train@*", "predict@*"],
                     "paths": ["tests/test_peer_metrics.py", "tests/test_golden.py", "tests/test_lama_release.py",
                               "params.yaml"]},
}


def stamp_section(name: str, out: Path, quick: bool) -> None:
    if out.resolve() != REPORT.resolve():
        return  # a report written elsewhere is no committed record
    records.stamp(ROOT, f"bench/{name}", [f"{REPORT.relative_to(ROOT).as_posix()}{records.SECTION}{name}"],
                  f"python -m benchmarks {name}{' --quick' if quick else ''}", CLOSURES[name],
                  params_file="configs/paper.yaml", machine=machine(), note="quick: a smoke run" if quick else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"benchmarks to run: {', '.join(AVAILABLE)} (default: {' '.join(DEFAULT)})")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"the Markdown report (default {REPORT})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in AVAILABLE]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(AVAILABLE)}"
                     + ("; gpu_train runs as `python -m benchmarks.gpu_train`" if "gpu_train" in unknown else ""))
    names = [name for name in AVAILABLE if name in (args.names or DEFAULT)]

    os.environ.setdefault("CI", "1")  # the stages' tqdm bars would interleave with our lines
    say(f"benchmarks: {' '.join(names)}{' (quick)' if args.quick else ''} on {machine()}")
    sections, failed = [], []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            section = module.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
            continue
        if args.quick:
            section.body = f"{QUICK_NOTE}\n\n{section.body}"
        sections.append(section)
        write_report(args.out, [section])  # after each one, so an interrupted run keeps what it measured
        stamp_section(name, args.out, args.quick)
        say(f"\n{table(CHECK_HEADERS, check_rows(section.checks))}\n")

    rows = [row for section in sections for row in check_rows(section.checks, section.name)]
    if rows:
        say("summary:\n" + table(["benchmark"] + CHECK_HEADERS, rows))
    say(f"wrote {args.out}" if sections else "nothing measured")
    if failed:
        say(f"FAILED: {', '.join(failed)} (traceback above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
