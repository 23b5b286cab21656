"""The benchmarks' own logic: the GPU training script's code path (dry run on the CPU) and the
end-to-end benchmark's reproduction check. No timings are asserted: benchmarks measure, tests don't."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
import yaml

from benchmarks.e2e import reproduction
from benchmarks.gpu_train import run_all


def test_gpu_train_code_path_runs_on_the_cpu():
    """What a CUDA machine runs (bf16 autocast, channels_last, each objective's step), at 32²."""
    section = run_all(["ours", "gc"], [2], 32, steps=1, warmup=1, device=torch.device("cpu"), compile_modes=(False,))
    assert [check.what for check in section.checks] == ["ours, batch 2, eager: training",
                                                        "gc, batch 2, eager: training"]
    assert all(check.ours > 0 for check in section.checks)  # images/s
    assert "failed" not in section.body and "out of memory" not in section.body


def _lock(report_md5: str) -> str:
    stages = {"evaluate": {"cmd": "python -m stages.evaluate",
                           "outs": [{"path": "reports/metrics.json", "md5": "aaa"}]},
              "report": {"cmd": "python -m stages.report",
                         "outs": [{"path": "reports/report.html", "md5": report_md5}]}}
    return yaml.safe_dump({"schema": "2.0", "stages": stages})


def test_reproduction_names_the_outputs_that_changed(tmp_path):
    git = ["git", "-c", "user.name=fgi-test", "-c", "user.email=test@fgi.invalid"]
    (tmp_path / "reports" / "tables").mkdir(parents=True)
    (tmp_path / "dvc.lock").write_text(_lock("bbb"))
    (tmp_path / "reports" / "tables" / "table1_full.csv").write_text("method,psnr\nours,24.14\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "demo"], cwd=tmp_path, check=True)
    assert reproduction(tmp_path).startswith("yes: `dvc.lock`, `reports/tables`")

    (tmp_path / "dvc.lock").write_text(_lock("ccc"))
    (tmp_path / "reports" / "tables" / "table1_full.csv").write_text("method,psnr\nours,24.15\n")
    assert reproduction(Path(tmp_path)) == ("no: `dvc.lock` (the hashes of `reports/report.html`), "
                                            "`reports/tables/table1_full.csv` differ from the committed ones")
