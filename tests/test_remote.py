"""A shared DVC remote: one clone pushes the pipeline's outputs, a fresh clone pulls them
and `dvc repro` there has nothing to run (docs/scaling.md: "A shared DVC remote")."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ALWAYS_RUNS, run_dvc, stages_run

pytestmark = pytest.mark.e2e

GIT = ["git", "-c", "user.name=fgi-test", "-c", "user.email=test@fgi.invalid"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_a_fresh_clone_pulls_every_output_from_a_shared_remote_and_reruns_nothing(micro_pipeline, tmp_path):
    first, second, remote = tmp_path / "first", tmp_path / "second", tmp_path / "shared-remote"
    shutil.copytree(micro_pipeline, first, symlinks=True)
    # What the team does once: commit the results, name the remote, push.
    git(first, "add", "-A")
    git(first, "commit", "-q", "-m", "pipeline outputs")
    run_dvc(first, "remote", "add", "-d", "shared", str(remote))
    git(first, "commit", "-q", "-am", "the shared DVC remote")
    pushed = run_dvc(first, "push")
    assert "pushed" in pushed.stdout, pushed.stdout

    # A colleague on another machine: clone, pull, repro.
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    assert not (second / "models" / "ours" / "model.pt").exists()
    run_dvc(second, "pull")
    assert json.loads(run_dvc(second, "status", "--json").stdout) == ALWAYS_RUNS, "every output is up to date"
    repro = run_dvc(second, "repro")
    # Only the manifest stage runs (it re-lists the folder sources, here none) and it changes nothing.
    assert stages_run(repro) == set(ALWAYS_RUNS), repro.stdout
    assert "didn't change, skipping" in repro.stdout, repro.stdout
    assert git(second, "status", "--porcelain", "dvc.lock") == "", "dvc.lock stays as committed"
    for output in ("models/ours/model.pt", "data/holes/test_pairs.csv", "reports/per_image.csv",
                   "data/predictions/gc"):
        a, b = first / output, second / output
        if a.is_dir():
            assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        else:
            assert a.read_bytes() == b.read_bytes(), output
