"""The benchmarks' own logic: the GPU training script's code path (dry run on the CPU) and the
end-to-end benchmark's reproduction check. No timings are asserted: benchmarks measure, tests don't."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest
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

    # Where the metrics moved, each method's PSNR of Tables 1-3, the largest move first.
    def metrics(lama_full: float, ours_hole: float) -> str:
        return json.dumps({"table1_full": {"lama": {"psnr": lama_full, "ssim": 0.69, "fid": None},
                                           "ours": {"psnr": 24.0, "ssim": 0.7, "fid": None}},
                           "table3_hole": {"ours": {"psnr": ours_hole}},
                           "table6_components": {"ours": {"psnr": 30.0}}})

    (tmp_path / "reports" / "metrics.json").write_text(metrics(25.21, 18.5))
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "metrics"], cwd=tmp_path, check=True)
    (tmp_path / "reports" / "metrics.json").write_text(
        metrics(25.62, 18.49).replace('"psnr": 30.0', '"psnr": 31.0'))
    assert reproduction(Path(tmp_path)).endswith(
        "`reports/metrics.json` differ from the committed ones (PSNR in dB, committed → this run: "
        "lama full 25.21 → 25.62; ours hole 18.50 → 18.49)")

    # Past six paths, a count per top folder.
    for index in range(7):
        (tmp_path / "reports" / "tables" / f"table{index}.md").write_text(f"{index}\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tables"], cwd=tmp_path, check=True)
    for index in range(7):
        (tmp_path / "reports" / "tables" / f"table{index}.md").write_text(f"{index + 1}\n")
    assert reproduction(Path(tmp_path)) == "no: `reports/` (7 files) differ from the committed ones"


def test_loader_benchmark_reads_the_layout_the_stages_write(tmp_path):
    """The loader benchmark's data is what TrainSet trains on: shapes, ranges, every worker count."""
    from benchmarks.loader import loader_rate, make_training_data
    from fgi.data.dataset import TrainSet

    prepared, foreground, holes = make_training_data(tmp_path, 32, faces=4, holes=3)
    image, hole, fg_mask = TrainSet(prepared, foreground, holes)[0]
    assert image.shape == (3, 32, 32) and -1 <= image.min() and image.max() <= 1
    assert hole.shape == fg_mask.shape == (1, 32, 32)
    assert 0 < hole.mean() < 1 and 0 < fg_mask.mean() < 1
    assert loader_rate(prepared, foreground, holes, workers=1, batch=2, batches=2) > 0


def test_training_benchmark_before_variant_is_the_unfused_step():
    """`before` runs Adam's per-parameter loop with NaN-filled new tensors, training's own
    objective the fused Adam; every variant gives a finite step with its FLOPs counted."""
    from benchmarks.common import study_params
    from benchmarks.training import _as_before, child
    from fgi.config import method_config
    from fgi.methods.base import make_objective

    objective = make_objective("pconv", method_config(study_params(), "pconv"), 32)
    assert all(group["fused"] for opt in objective.optimizers.values() for group in opt.param_groups)
    try:
        _as_before(objective)
        assert torch.utils.deterministic.fill_uninitialized_memory
        assert not any(group["fused"] or group["foreach"]
                       for opt in objective.optimizers.values() for group in opt.param_groups)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = True
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    try:  # child() sets up the process as training does: deterministic mode, no NaN fill
        results = {variant: child("pconv", 1, 2, 32, "study", variant)
                   for variant in ("before", "float32", "bfloat16")}
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.utils.deterministic.fill_uninitialized_memory = True
    assert all(r["flops"] > 0 and r["seconds"][0] > 0 for r in results.values())
    assert results["before"]["flops"] == results["float32"]["flops"]  # the same work, only the route differs


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="AVX2 is an x86-64 instruction set")
def test_training_benchmark_avx2_stand_in_reaches_the_child():
    """The stand-in for a CPU without native bfloat16 must reach the child's kernels: a child
    that ignored it would measure this CPU as it is and call that a CPU without bfloat16."""
    from benchmarks.training import AVX2_ONLY, measure

    result = measure("pconv", 1, 2, 32, "study", "float32", env=AVX2_ONLY)
    assert result["capability"] == "AVX2"
    assert result["seconds"][0] > 0


def test_releases_benchmark_interleaves_and_says_what_it_skipped(monkeypatch):
    """The release and ours alternate call by call after the warm-up rounds; without the clones the
    section is still written, with the release tests' own skip reasons, and times nothing."""
    from benchmarks import releases

    calls = []
    times = releases.interleave({"release": lambda: calls.append("release"), "ours": lambda: calls.append("ours")},
                                warmup=1, repeats=3)
    assert calls == ["release", "ours"] * 4
    assert [len(seconds) for seconds in times.values()] == [3, 3]

    gc, lama, _ = releases.helpers()
    monkeypatch.setattr(gc, "RELEASE", "")
    monkeypatch.setattr(lama, "RELEASE", "")
    section = releases.run(quick=True)
    assert section.name == "releases" and section.checks == []
    assert "GC (cases 1 and 2) skipped" in section.body  # no TensorFlow, or no FGI_GC_RELEASE
    assert "LaMa (cases 3 and 4) skipped" in section.body and "FGI_LAMA_RELEASE" in section.body


def test_releases_median_interval_is_the_order_statistics_interval():
    """At n = 15 the 95 % interval of a median is the 4th to 12th smallest (P(Binomial(15, 1/2) ≤ 3) =
    0.0176 ≤ 0.025 < P(≤ 4) = 0.0592), whatever order the values come in; too few values give the range."""
    from benchmarks.releases import median_interval

    ratios = [1.5, 0.9, 1.2, 1.1, 1.3, 0.8, 1.0, 1.25, 1.15, 0.95, 1.05, 1.4, 1.35, 0.85, 1.45]
    assert median_interval(ratios) == (1.15, 0.95, 1.35)  # sorted: 0.8 0.85 0.9 0.95 ... 1.35 1.4 1.45 1.5
    assert median_interval([2.0, 1.0, 3.0]) == (2.0, 1.0, 3.0)
    assert median_interval(ratios, level=0.5)[1:] == (1.05, 1.25)  # P(≤ 5) = 0.151 ≤ 0.25 < P(≤ 6) = 0.304
