"""e2e: wall time of `make repro` (the demo profile) and `make test`, each in a fresh clone.

    python -m benchmarks e2e        # minutes; not part of `make bench`'s default run

The clone is `git clone` of this checkout into a temporary folder, so it holds
the committed HEAD (uncommitted edits are not measured) and no DVC cache:
`make repro` computes every stage. Setup is not timed: the clone's `.venv` is a
folder of links to this checkout's `.venv` entries (bin, lib, pyvenv.cfg, ...)
plus its own install stamp, dated after the clone's `requirements.lock` and
`pyproject.toml`, so `make` finds it up to date. The benchmark first checks
that the venv holds exactly the lock's versions (`pip freeze`), and refuses to
start unless `make -q setup` then says there is nothing to do: otherwise `make`
would `pip install -e .` from the clone into the shared venv and point its
editable `fgi` at a folder deleted afterwards. Nothing in this checkout's
`.venv` is written. `PYTHONPATH` names the clone, so every process (stages,
the `fgi` and `dvc` console scripts, the tests' subprocesses) imports the
clone's `fgi`. After `make repro` the clone's `git status` says whether the run
reproduced the committed `dvc.lock`, tables and metrics byte for byte, and where not, how far each method's PSNR
in Tables 1-3 moved: float32 kernels differ between CPUs (AVX-512 or AVX2),
and training carries the difference into the numbers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Check, CpuMeter, Section, say, table
from fgi.records import lock_outputs

NAME = "e2e"
TARGET_SECONDS = 600.0
STAMP = Path(".venv") / ".installed-from-lock"  # the Makefile's
TIMEOUT_SECONDS = 3600


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def lock_mismatches(repo: Path) -> list[str]:
    """Lines of requirements.lock that `pip freeze` of the repo's venv does not show."""
    frozen = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout.split()
    wanted = [line.strip() for line in (repo / "requirements.lock").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    return sorted(set(wanted) - set(frozen))


def make_clone(repo: Path, into: Path) -> tuple[Path, str]:
    """A fresh clone of `repo` that uses `repo`'s venv without reinstalling it; (clone, commit)."""
    venv = repo / ".venv"
    if not (venv / "bin" / "python").exists():
        raise RuntimeError(f"{venv}: no venv; run `make setup` in {repo} first (e2e reuses it)")
    missing = lock_mismatches(repo)
    if missing:
        raise RuntimeError(f"{venv} differs from requirements.lock ({', '.join(missing[:5])}); "
                           f"run `make setup` in {repo} first")
    clone = into / "fgi"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    (clone / ".venv").mkdir()
    for entry in venv.iterdir():
        if entry.name != STAMP.name:
            (clone / ".venv" / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    long_ago = time.time() - 60
    for name in ("requirements.lock", "pyproject.toml"):
        os.utime(clone / name, (long_ago, long_ago))
    (clone / STAMP).touch()
    if subprocess.run(["make", "-q", "setup"], cwd=clone, capture_output=True, check=False).returncode != 0:
        raise RuntimeError(f"`make setup` would reinstall the venv from the clone {clone}; not running it")
    return clone, _git("rev-parse", "--short", "HEAD", cwd=clone)


def timed_make(target: str, clone: Path, log: Path) -> tuple[float, int, str]:
    """(seconds, exit status, last lines of output) of `make <target>` in the clone."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("DVC_ROOT", None)  # the clone is its own DVC repository
    say(f"e2e: make {target} in {clone} (log: {log})")
    start = time.perf_counter()
    with open(log, "w") as out:
        try:
            status = subprocess.run(["make", target], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=TIMEOUT_SECONDS, check=False).returncode
        except subprocess.TimeoutExpired:
            status = 124
    seconds = time.perf_counter() - start
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    say(f"e2e: make {target}: {seconds:.0f} s, exit {status}")
    return seconds, status, tail


REPRODUCED = ("dvc.lock", "reports/tables", "reports/metrics.json", "reports/fid.json")


METRICS = "reports/metrics.json"
SHOWN_TABLES = ("table1_full", "table2_foreground", "table3_hole")


def metric_shifts(committed: dict, now: dict) -> list[tuple[str, str, str, float, float]]:
    """(table, method, metric, committed, now) of every number of metrics.json that moved, largest move first."""
    shifts = []
    for table_name, methods in committed.items():
        for method, values in methods.items():
            for metric, before in values.items():
                after = now.get(table_name, {}).get(method, {}).get(metric)
                if isinstance(before, (int, float)) and isinstance(after, (int, float)) and after != before:
                    shifts.append((table_name, method, metric, float(before), float(after)))
    return sorted(shifts, key=lambda shift: -abs(shift[4] - shift[3]))


def psnr_shifts(clone: Path) -> str:
    """Where `make repro` moved the tables: each method's PSNR in Tables 1-3, committed → now, in words."""
    committed = json.loads(_git("show", f"HEAD:{METRICS}", cwd=clone))
    now = json.loads((clone / METRICS).read_text())
    moved = [shift for shift in metric_shifts(committed, now) if shift[0] in SHOWN_TABLES and shift[2] == "psnr"]
    if not moved:
        return "no PSNR of Tables 1-3 moved"
    return "PSNR in dB, committed → this run: " + "; ".join(
        f"{method} {table_name.split('_')[1]} {before:.2f} → {after:.2f}" for table_name, method, _, before, after in moved)


def listed(paths: list[str], most: int = 6) -> str:
    """Paths in backticks; past `most` of them, a count per top folder ("`models/` (20 files)")."""
    if len(paths) <= most:
        return ", ".join(f"`{path}`" for path in paths)
    folders: dict[str, list[str]] = {}
    for path in paths:
        folders.setdefault(path.split("/")[0], []).append(path)
    return ", ".join(f"`{folder}/` ({len(inside)} files)" if len(inside) > 1 else f"`{inside[0]}`"
                     for folder, inside in folders.items())


def reproduction(clone: Path) -> str:
    """Whether `make repro` left the committed outputs as they were, in words."""
    changed = _git("diff", "--name-only", "--", *REPRODUCED, cwd=clone).splitlines()
    if not changed:
        return f"yes: {', '.join(f'`{path}`' for path in REPRODUCED)} are byte for byte the committed ones"
    words = []
    if "dvc.lock" in changed:
        committed = lock_outputs(_git("show", "HEAD:dvc.lock", cwd=clone))
        now = lock_outputs((clone / "dvc.lock").read_text())
        outs = sorted(out for out in now.keys() | committed.keys() if now.get(out) != committed.get(out))
        words.append(f"`dvc.lock` (the hashes of {listed(outs) or 'no output'})")
    if others := [path for path in changed if path != "dvc.lock"]:
        words.append(listed(others))
    shifts = f" ({psnr_shifts(clone)})" if METRICS in changed else ""
    return "no: " + ", ".join(words) + " differ from the committed ones" + shifts


def run(quick: bool = False) -> Section:
    repo = ROOT
    if not (repo / ".git").exists():
        raise RuntimeError(f"{repo}: not a git checkout; e2e clones the repository it belongs to")
    checks, rows, tails = [], [], []
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="fgi-bench-e2e-") as tmp:
        tmp = Path(tmp)
        clone, commit = make_clone(repo, tmp)
        for target in ("repro", "test"):
            with CpuMeter() as meter:
                seconds, status, tail = timed_make(target, clone, tmp / f"{target}.log")
            if target == "repro":
                reproduced = reproduction(clone) if status == 0 else "not checked: `make repro` failed"
                say(f"e2e: reproduced the committed outputs: {reproduced}")
            found = re.findall(r"=+ (.*(?:passed|failed|error).*) =+", tail) if target == "test" else []
            ok = status == 0 and seconds <= TARGET_SECONDS
            checks.append(Check(f"`make {target}` wall time (fresh clone, venv reused)", seconds / 60, None, "min",
                                "none: an absolute target", None, f"≤ {TARGET_SECONDS / 60:g} min, exit 0", ok,
                                note=f"exit {status}"))
            rows.append([f"`make {target}`", f"{seconds / 60:.1f}", str(status), found[-1] if found else "—",
                         meter.brief()])
            if status != 0:
                tails.append(f"Last lines of `make {target}`:\n\n```\n{tail}\n```")
        shutil.rmtree(clone, ignore_errors=True)
    body = "\n\n".join([
        (f"Measured {started}: a fresh `git clone` of commit {commit} in a temporary folder whose `.venv` links "
         "to this checkout's (checked against requirements.lock with `pip freeze`; setup not timed, `make -q "
         "setup` confirmed nothing to install), `PYTHONPATH` set to the clone, no DVC cache (every stage "
         "computed). Load: the 1-minute load average at the start and end of each command, and the average "
         "number of cores other processes kept busy meanwhile."),
        table(["command", "minutes", "exit", "pytest summary", "machine load"], rows),
        f"Did `make repro` reproduce the commit's results? {reproduced}.",
        *tails,
    ])
    return Section(NAME, "e2e: `make repro` (demo) and `make test`", body, checks)
