"""Committed records and the code they measured: `fgi records`.

A record is evidence committed to git that no `dvc repro` of the workspace rewrites: a recorded
CPU study run or variant (`docs/study/`), a section of `reports/bench.md`, the demo's training
seeds (`reports/seeds.*`), a screenshot in `docs/`, the model summary in `docs/fidelity.md`.
The demo's own outputs (`reports/tables/`, ...) are not records: `dvc.lock` ties them to their
code and `dvc status` says when they are stale.

`docs/records.json` holds one stamp per record: the files it covers, the command that made it,
the commit it ran, and git's hash of every file of its code closure, with the params it read:

    closure.pipeline   the code deps of the stages of dvc.lock (a record made through `dvc repro`):
                       true for every stage, or a list of names and patterns ("train@*")
    closure.modules    the import closure of these modules (fgi.codebase, as the deps test reads it)
    closure.methods    and the module of every method of `params_file`'s `methods`
    closure.paths      and these files or folders as they are (a Makefile, a profile, web assets)
    params             {key: value} that the record's run read, from `params_file` and `overrides`

A record is current while every file of its closure has the hash it had (git's blob id; a YAML
file's parsed values) and every param the value; otherwise stale, naming what changed. The
command that makes a record stamps it (`stamp`); a stamp made from an earlier commit (`commit=`)
hashes that commit's files, so a record made before stamps existed says what it ran.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import yaml

from fgi import codebase, files
from fgi.config import flatten
from fgi.errors import UserError

REGISTRY = Path("docs") / "records.json"
PIPELINE_CODE = ("fgi/", "stages/")  # dvc.lock deps that are code (the rest is data)
SECTION = "#"  # "reports/bench.md#training": one section of a file, between its bench markers
# Modules a record's maker imports only to stamp it: they compute nothing the record holds.
STAMPING = ("fgi/records.py", "fgi/codebase.py")


# ----------------------------------------------------------------------------- git


def git(root: Path, *args: str, binary: bool = False):
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    if result.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed in {root}: {result.stderr.decode().strip()[-300:]}")
    return result.stdout if binary else result.stdout.decode().strip()


def is_repository(root: Path) -> bool:
    """Whether `root` is the top of a git work tree: only there are records committed."""
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                            check=False)
    return result.returncode == 0 and Path(result.stdout.strip()).resolve() == root.resolve()


def head_commit(root: Path) -> str:
    return git(root, "rev-parse", "--short=12", "HEAD")


def checkout_copy(root: Path, commit: str, into: Path) -> Path:
    """The tracked files of `commit`, written under `into` (no .git)."""
    archive = git(root, "archive", "--format=tar", commit, binary=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


# ----------------------------------------------------------------------------- closures


def content_id(path: Path) -> str | None:
    """A closure file's hash: git's blob id, except for a YAML file, whose parsed values count (a
    profile's comments are no code)."""
    if path.suffix in (".yaml", ".yml") and path.is_file():
        values = json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), sort_keys=True, default=str)
        return "yaml:" + codebase.blob_id(values.encode())
    return codebase.file_id(path)


def _files_under(root: Path, path: str) -> list[str]:
    target = root / path
    if target.is_file():
        return [path]
    return sorted(p.relative_to(root).as_posix() for p in target.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))


def stages_of(lock_text: str) -> dict:
    """{stage name: its entry} of a dvc.lock's text."""
    return (yaml.safe_load(lock_text) or {}).get("stages", {})


def lock_stages(root: Path) -> dict:
    lock = root / "dvc.lock"
    if not lock.is_file():
        raise UserError(f"{lock}: not found; a record made through `dvc repro` needs the dvc.lock it ran with")
    return stages_of(lock.read_text(encoding="utf-8"))


def lock_outputs(lock_text: str) -> dict[str, str]:
    """{output path: md5} of every stage of a dvc.lock's text."""
    return {out["path"]: out.get("md5", "") for stage in stages_of(lock_text).values() for out in stage.get("outs", [])}


def _stages(root: Path, which) -> list[dict]:
    """The dvc.lock stages `which` names: True for all, else a list of names or patterns (train@*)."""
    return [stage for name, stage in lock_stages(root).items()
            if which is True or any(fnmatch.fnmatchcase(name, pattern) for pattern in which)]


def pipeline_code(root: Path, which=True) -> list[str]:
    """The code files that the stages of `root`'s dvc.lock depend on, folders expanded."""
    deps = {dep["path"] for stage in _stages(root, which) for dep in stage.get("deps", [])}
    return sorted({f for dep in deps if dep.startswith(PIPELINE_CODE) for f in _files_under(root, dep)})


def pipeline_params(root: Path, which=True) -> list[str]:
    return sorted({key for stage in _stages(root, which)
                   for values in (stage.get("params") or {}).values() for key in values})


def method_modules(root: Path, params_file: str) -> list[str]:
    from fgi.methods import module_name  # noqa: PLC0415 - the registry, only where a record asks for it

    profile = yaml.safe_load((root / params_file).read_text(encoding="utf-8"))
    return [module_name(name) for name in profile.get("methods", {})]


def closure_files(root: Path, closure: dict, params_file: str | None) -> list[str]:
    """The repo-relative files of a closure spec, read under `root`."""
    found: set[str] = set()
    if closure.get("pipeline"):
        found.update(pipeline_code(root, closure["pipeline"]))
    modules = [[m] for m in closure.get("modules", [])]
    if closure.get("methods"):
        modules += [[m] for m in method_modules(root, params_file)]
    if modules:
        codebase.module_file.cache_clear()
        codebase.imports.cache_clear()
        codebase.tree.cache_clear()
        found.update(set(codebase.closure(root, modules)) - set(STAMPING))
    for path in closure.get("paths", []):
        found.update(_files_under(root, path))
    return sorted(found)


def run_params(root: Path, params_file: str | None, keys: list[str], overrides: dict) -> dict[str, object]:
    if not params_file or not keys:
        return {}
    values = flatten(yaml.safe_load((root / params_file).read_text(encoding="utf-8")))
    values.update(overrides)
    return {key: _param(values, key) for key in keys}


def _param(values: dict[str, object], key: str) -> object:
    """The value of `key` among the flattened params: a leaf's value, or for a section that a stage
    reads whole (dvc.yaml's `- foreground`) its leaves {relative key: value}; None when absent."""
    if key in values:
        return values[key]
    below = {name[len(key) + 1:]: value for name, value in values.items() if name.startswith(key + ".")}
    return dict(sorted(below.items())) or None


def _changes(key: str, then: object, now: object) -> list[str]:
    """`key: then -> now`, or, for a section, one such line per leaf that changed."""
    if then is None and isinstance(now, dict):  # a section stamped before sections were recorded by value
        return [f"{key}: its values were not recorded (stamped before sections were); restamp"]
    if isinstance(then, dict) and isinstance(now, dict):
        return [f"{key}.{leaf}: {then.get(leaf)!r} -> {now.get(leaf)!r}" for leaf in sorted(set(then) | set(now))
                if then.get(leaf) != now.get(leaf)]
    return [f"{key}: {then!r} -> {now!r}"] if then != now else []


# ----------------------------------------------------------------------------- stamping


def load(root: Path) -> dict[str, dict]:
    path = root / REGISTRY
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err}); restore it with `git checkout {REGISTRY}`") from err


def stamp(root: Path, name: str, record_files: list[str], made_by: str, closure: dict,
          params_file: str | None = None, overrides: dict | None = None, commit: str | None = None,
          note: str = "", machine: str | None = None) -> dict:
    """Stamp record `name` in docs/records.json with its code: the work tree's files, or those of
    `commit` for a record that an earlier commit made. Returns the entry."""
    overrides = overrides or {}
    with tempfile.TemporaryDirectory() as tmp:
        source = checkout_copy(root, commit, Path(tmp)) if commit else root
        code = {path: content_id(source / path) for path in closure_files(source, closure, params_file)}
        keys = pipeline_params(source, closure["pipeline"]) if closure.get("pipeline") else []
        params = run_params(source, params_file, keys, overrides)
        ran = git(root, "rev-parse", "--short=12", commit) if commit else head_commit(root)
        if not commit and any(git(root, "ls-files", "--modified", "--others", "--exclude-standard", "--", p)
                              for p in code):
            ran += "+changes"  # the hashes hold the uncommitted code exactly
    entry = {"files": sorted(record_files), "made_by": made_by, "commit": ran,
             "recorded": datetime.date.today().isoformat(), "closure": closure,
             **({"params_file": params_file} if params_file else {}),
             **({"overrides": overrides} if overrides else {}), "params": params, "code": code}
    if machine:
        entry["machine"] = machine
    if note:
        entry["note"] = note
    registry = load(root)
    registry[name] = entry
    files.write_text_atomic(root / REGISTRY, json.dumps(dict(sorted(registry.items())), indent=1,
                                                        ensure_ascii=False) + "\n")
    return entry


# ----------------------------------------------------------------------------- status


@dataclass
class Status:
    name: str
    entry: dict
    changed: list[str] = field(default_factory=list)  # code files whose hash differs (or that are gone)
    params: list[str] = field(default_factory=list)   # "key: recorded -> now"
    missing: list[str] = field(default_factory=list)  # the record's own files that are not there

    @property
    def stale(self) -> bool:
        return bool(self.changed or self.params or self.missing)

    @property
    def commit(self) -> str:
        return self.entry["commit"].removesuffix("+changes")


def record_status(root: Path, name: str, entry: dict) -> Status:
    status = Status(name, entry)
    status.changed = sorted(path for path, blob in entry.get("code", {}).items()
                            if content_id(root / path) != blob)
    params_file = entry.get("params_file")
    if entry.get("params") and params_file:
        if (root / params_file).is_file():
            now = run_params(root, params_file, list(entry["params"]), entry.get("overrides", {}))
            status.params = [line for key, value in entry["params"].items() for line in _changes(key, value, now[key])]
        else:
            status.params = [f"{params_file}: gone"]
    status.missing = [f for f in entry["files"] if not (root / f.split(SECTION)[0]).exists()]
    return status


def statuses(root: Path) -> list[Status]:
    return [record_status(root, name, entry) for name, entry in load(root).items()]


def section_text(root: Path, path: str) -> str:
    """A record file's text: a whole file, or for `file#NAME` one marked section of it, between
    `<!-- bench:begin NAME ...` and `<!-- bench:end NAME -->` (reports/bench.md) or between
    `<!-- NAME:begin -->` and `<!-- NAME:end -->`; "" when the file has no such section."""
    file, _, section = path.partition(SECTION)
    text = (root / file).read_text(encoding="utf-8")
    if not section:
        return text
    for begin, end in ((f"<!-- bench:begin {section} ", f"<!-- bench:end {section} -->"),
                       (f"<!-- {section}:begin -->", f"<!-- {section}:end -->")):
        if begin in text and end in text:
            return text[text.index(begin):text.index(end)]
    return ""


def covering(statuses_: list[Status], path: str) -> list[tuple[Status, str]]:
    """(record, the record file) for each record with a file at `path`: the file itself, a folder
    above it, or a section of it."""
    out = []
    for status in statuses_:
        for record_file in status.entry["files"]:
            file = record_file.split(SECTION)[0]
            if path == file or path.startswith(file.rstrip("/") + "/"):
                out.append((status, record_file))
    return out


def describe(status: Status) -> str:
    head = f"{'stale' if status.stale else 'current':8} {status.name}: recorded at {status.entry['commit']}"
    lines = [head + f" by {status.entry['made_by']}"]
    if status.changed:
        lines.append(f"           code changed since: {', '.join(status.changed)}")
    if status.params:
        lines.append(f"           params changed since: {'; '.join(status.params)}")
    if status.missing:
        lines.append(f"           files missing: {', '.join(status.missing)}")
    return "\n".join(lines)


def cmd_records(args: argparse.Namespace) -> int:
    root = Path(args.root)
    found = statuses(root)
    if not found:
        raise UserError(f"{root / REGISTRY}: no records; run from the repository's root")
    for status in found:
        print(describe(status))
    stale = sum(s.stale for s in found)
    print(f"\n{len(found) - stale} current, {stale} stale. The demo's outputs (reports/tables/, "
          "reports/metrics.json, ...) are tied to their code by dvc.lock: `dvc status` says when they are stale.")
    return 1 if stale and args.check else 0


def register(commands: argparse._SubParsersAction) -> None:
    records = commands.add_parser("records", help="list each committed record as current or stale against today's code")
    records.add_argument("--root", default=".", help="the repository (default: here)")
    records.add_argument("--check", action="store_true", help="exit 1 when a record is stale")
    records.set_defaults(run=cmd_records)
