"""fgi.records: a committed record knows the code it measured, and says when that code moved on.

The mechanism runs on a small git repository made here: a package whose modules import each
other, a profile, a dvc.lock. The registry of this repository is checked for what it must hold:
every committed record stamped, every stamp's files there, and a changed file of a real record's
closure listed by name.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fgi import records
from fgi.cli import main

REPO = Path(__file__).resolve().parent.parent


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """fgi/top.py imports fgi/middle.py, which imports fgi/bottom.py inside a function, and
    fgi/records.py, which stamps; fgi/aside.py is imported by nobody; a stage file; a dvc.lock naming stages/run.py and fgi/middle.py."""
    root = tmp_path / "project"
    write(root, "fgi/__init__.py", '"""package"""\n')
    write(root, "fgi/top.py", "from fgi import middle, records\n")
    write(root, "fgi/records.py", "STAMP = 1\n")  # the stamping module: no part of what a record measured
    write(root, "fgi/middle.py", "def f():\n    from fgi.bottom import g\n    return g()\n")
    write(root, "fgi/bottom.py", "def g():\n    return 1\n")
    write(root, "fgi/aside.py", "X = 1\n")
    write(root, "stages/run.py", "import fgi.middle\n")
    write(root, "params.yaml", "train:\n  steps: 10  # a comment\n  seed: 0\nserve:\n  port: 1\n")
    lock = {"schema": "2.0", "stages": {"run": {
        "cmd": "python -m stages.run",
        "deps": [{"path": "stages/run.py", "md5": "x"}, {"path": "fgi/middle.py", "md5": "y"},
                 {"path": "data/raw", "md5": "z.dir"}],
        "params": {"params.yaml": {"train.steps": 10}}}}}
    write(root, "dvc.lock", yaml.safe_dump(lock))
    write(root, "docs/evidence.md", "Ours took 0.117 s.\n")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return root


def stale_files(root: Path, name: str) -> list[str]:
    return next(s for s in records.statuses(root) if s.name == name).changed


def test_a_changed_file_of_the_import_closure_makes_the_record_stale_and_is_named(project):
    entry = records.stamp(project, "bench/x", ["docs/evidence.md"], "python -m x", {"modules": ["fgi.top"]})
    assert sorted(entry["code"]) == ["fgi/__init__.py", "fgi/bottom.py", "fgi/middle.py", "fgi/top.py"]
    assert entry["commit"] == git(project, "rev-parse", "--short=12", "HEAD")
    assert stale_files(project, "bench/x") == []

    write(project, "fgi/aside.py", "X = 2\n")  # outside the closure
    assert stale_files(project, "bench/x") == []
    write(project, "fgi/bottom.py", "def g():\n    return 2\n")  # imported inside a function
    assert stale_files(project, "bench/x") == ["fgi/bottom.py"]
    (project / "fgi/middle.py").unlink()
    assert stale_files(project, "bench/x") == ["fgi/bottom.py", "fgi/middle.py"]


def test_a_pipeline_record_holds_the_lock_s_code_and_params(project):
    entry = records.stamp(project, "run", ["docs/evidence.md"], "dvc repro", {"pipeline": True},
                          params_file="params.yaml", overrides={"train.seed": 3})
    assert sorted(entry["code"]) == ["fgi/middle.py", "stages/run.py"]  # data deps are no code
    assert entry["params"] == {"train.steps": 10}
    write(project, "params.yaml", "train:\n  steps: 10\n  seed: 5\nserve:\n  port: 2\n")  # keys it never read
    status = next(s for s in records.statuses(project) if s.name == "run")
    assert not status.stale
    write(project, "params.yaml", "train:\n  steps: 20\n  seed: 0\n")
    status = next(s for s in records.statuses(project) if s.name == "run")
    assert status.params == ["train.steps: 10 -> 20"] and status.stale


def test_a_section_read_whole_is_recorded_by_its_values(project):
    # dvc.yaml may list a whole section (`- foreground`): its leaves are the record's, not None.
    assert records.run_params(project, "params.yaml", ["train", "serve.port"], {"train.seed": 3}) == {
        "train": {"seed": 3, "steps": 10}, "serve.port": 1}
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["run"]["params"]["params.yaml"] = {"train": {"steps": 10, "seed": 0}}
    write(project, "dvc.lock", yaml.safe_dump(lock))
    records.stamp(project, "run", ["docs/evidence.md"], "dvc repro", {"pipeline": True}, params_file="params.yaml")
    write(project, "params.yaml", "train:\n  steps: 12\n  seed: 0\nserve:\n  port: 1\n")
    status = next(s for s in records.statuses(project) if s.name == "run")
    assert status.stale and status.params == ["train.steps: 10 -> 12"]


def test_a_profile_s_comment_is_no_change_but_its_values_are(project):
    records.stamp(project, "r", ["docs/evidence.md"], "x", {"paths": ["params.yaml"]})
    write(project, "params.yaml", "train:\n  steps: 10  # another comment\n  seed: 0\nserve:\n  port: 1\n")
    assert stale_files(project, "r") == []
    write(project, "params.yaml", "train:\n  steps: 11\n  seed: 0\nserve:\n  port: 1\n")
    assert stale_files(project, "r") == ["params.yaml"]


def test_a_stamp_from_an_earlier_commit_hashes_that_commit_s_files(project):
    first = git(project, "rev-parse", "--short=12", "HEAD")
    write(project, "fgi/bottom.py", "def g():\n    return 3\n")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "second")
    entry = records.stamp(project, "old", ["docs/evidence.md"], "x", {"modules": ["fgi.top"]}, commit=first)
    assert entry["commit"] == first
    assert stale_files(project, "old") == ["fgi/bottom.py"]
    current = records.stamp(project, "new", ["docs/evidence.md"], "x", {"modules": ["fgi.top"]})
    assert stale_files(project, "new") == [] and current["code"]["fgi/bottom.py"] != entry["code"]["fgi/bottom.py"]


def test_uncommitted_code_is_marked_in_the_commit(project):
    write(project, "fgi/top.py", "from fgi import middle, records  # edited\n")
    entry = records.stamp(project, "dirty", ["docs/evidence.md"], "x", {"modules": ["fgi.top"]})
    assert entry["commit"].endswith("+changes")
    assert stale_files(project, "dirty") == []


def test_fgi_records_lists_stale_and_current_and_check_exits_1(project, capsys):
    records.stamp(project, "a", ["docs/evidence.md"], "x", {"modules": ["fgi.top"]})
    records.stamp(project, "b", ["docs/evidence.md"], "y", {"modules": ["fgi.aside"]})
    write(project, "fgi/aside.py", "X = 3\n")
    assert main(["records", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert "current  a: recorded at" in out and "stale    b: recorded at" in out
    assert "code changed since: fgi/aside.py" in out and "1 current, 1 stale" in out
    assert main(["records", "--root", str(project), "--check"]) == 1


def test_a_corrupt_registry_names_the_file_and_the_fix(project, capsys):
    write(project, "docs/records.json", "{not json")
    with pytest.raises(SystemExit) as exited:
        main(["records", "--root", str(project)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "docs/records.json" in err and "git checkout" in err


# ----------------------------------------------------------------------------- this repository


@pytest.fixture(scope="module")
def registry() -> dict[str, dict]:
    return records.load(REPO)


def test_every_record_s_files_exist(registry):
    missing = [f"{name}: {file}" for name, entry in registry.items() for file in entry["files"]
               if not (REPO / file.split(records.SECTION)[0]).exists()
               or (records.SECTION in file and not records.section_text(REPO, file))]
    assert not missing, "docs/records.json names files that are not there:\n" + "\n".join(missing)


def evidence_files() -> list[str]:
    """What this repository commits as hand-made evidence: the study's record, reports that no
    DVC stage writes, and the images of docs/."""
    found = [p.relative_to(REPO).as_posix() for p in (REPO / "docs" / "study").rglob("*") if p.is_file()]
    found += [p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.png")]
    found += [p.relative_to(REPO).as_posix() for p in (REPO / "reports").glob("seeds*")]
    text = (REPO / "reports" / "bench.md").read_text(encoding="utf-8")
    found += [f"reports/bench.md#{name}" for name in
              re.findall(r"<!-- bench:begin (\w+) ", text)]
    return sorted(found)


def test_every_committed_record_is_stamped(registry):
    statuses = records.statuses(REPO)
    unstamped = [path for path in evidence_files()
                 if not any(record_file == path or (records.SECTION not in path and
                            records.covering([s], path)) for s in statuses for record_file in s.entry["files"])]
    assert not unstamped, ("evidence committed without a stamp in docs/records.json (its maker stamps it; see "
                           "fgi/records.py):\n" + "\n".join(unstamped))


def test_changing_a_file_of_a_real_record_s_closure_lists_it_stale_by_name(registry, tmp_path):
    """The registry's first current record (else its first): its closure copied as it is here
    gives the same status; one file of it changed is then named."""
    statuses = records.statuses(REPO)
    status = next((s for s in statuses if not s.stale), statuses[0])
    for path in status.entry["code"]:
        if (REPO / path).is_file():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / path, tmp_path / path)
    for file in status.entry["files"] + [status.entry.get("params_file") or status.entry["files"][0]]:
        source = REPO / file.split(records.SECTION)[0]
        target = tmp_path / file.split(records.SECTION)[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    copied = records.record_status(tmp_path, status.name, status.entry)
    assert copied.changed == status.changed and copied.params == status.params

    victim = next(p for p in sorted(status.entry["code"]) if p.endswith(".py") and p not in status.changed)
    with (tmp_path / victim).open("a", encoding="utf-8") as handle:
        handle.write("\n# changed\n")
    after = records.record_status(tmp_path, status.name, status.entry)
    assert after.stale and victim in after.changed
    assert f"code changed since: {', '.join(after.changed)}" in records.describe(after)
    json.dumps(status.entry)  # a stamp stays plain JSON
