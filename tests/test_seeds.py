"""`fgi seeds`: the runs of one profile that differ only in train.seed, as mean ± sd."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from fgi.evaluation import seeds
from fgi.errors import UserError
from conftest import built_in_cards


def run_data(seed: int, psnr: dict[str, float], lr: float = 1e-4) -> dict:
    params = {"profile": "demo", "seed": 0, "train": {"seed": seed, "max_steps": 150},
              "models": {"ours": {"lr_g": lr}}}
    metrics = {table: {method: {"psnr": value + offset, "ssim": 0.5, "mae": 3.0} for method, value in psnr.items()}
               for table, offset in (("table1_full", 0.0), ("table2_foreground", 1.0), ("table3_hole", -5.0))}
    return {"params": {"params.yaml": {"data": params}}, "metrics": {"reports/metrics.json": {"data": metrics}}}


def exp_show() -> list[dict]:
    """The layout of `dvc exp show --json`: the workspace, then the commit with its experiments."""
    return [
        {"rev": "workspace", "name": None, "data": run_data(0, {"ours": 24.0, "ce": 20.0}), "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": run_data(0, {"ours": 99.0, "ce": 99.0}), "experiments": [
            {"name": "seed-1", "revs": [{"rev": "b" * 40, "name": "seed-1",
                                         "data": run_data(1, {"ours": 25.0, "ce": 21.0})}]},
            {"name": "seed-2", "revs": [{"rev": "c" * 40, "name": "seed-2",
                                         "data": run_data(2, {"ours": 26.5, "ce": 19.0})}]},
            {"name": "other-lr", "revs": [{"rev": "d" * 40, "name": "other-lr",
                                           "data": run_data(3, {"ours": 10.0, "ce": 10.0}, lr=1e-3)}]},
            {"name": "queued", "revs": [{"rev": "e" * 40, "name": "queued", "data": None}]},
        ]},
    ]


def test_only_runs_that_differ_in_the_seed_count_and_the_workspace_wins_its_seed():
    runs = seeds.seed_runs(seeds.experiments(exp_show()))
    assert sorted(runs) == [0, 1, 2]  # not the other lr, not the queued one
    assert runs[0]["table1_full"]["ours"]["psnr"] == 24.0  # the workspace, not the commit's seed 0


def test_mean_and_sample_sd_across_seeds():
    frame = seeds.seeds_frame(seeds.seed_runs(seeds.experiments(exp_show())), built_in_cards())
    ours = frame[frame["Method"] == "Ours"].iloc[0]
    assert ours["Seeds"] == 3
    assert ours["full PSNR ↑ mean"] == pytest.approx(np.mean([24.0, 25.0, 26.5]))
    assert ours["full PSNR ↑ sd"] == pytest.approx(np.std([24.0, 25.0, 26.5], ddof=1))
    assert ours["hole PSNR ↑ mean"] == pytest.approx(np.mean([19.0, 20.0, 21.5]))
    assert ours["full SSIM ↑ sd"] == 0.0
    markdown = seeds.to_markdown(frame, [0, 1, 2])
    assert f"| Ours | 3 | 25.17 ± {np.std([24.0, 25.0, 26.5], ddof=1):.2f} |" in markdown
    assert "Training seeds (`train.seed`): 0, 1, 2" in markdown


def test_no_run_at_all_says_what_to_run():
    empty = copy.deepcopy(exp_show())
    for entry in empty:
        entry["data"] = None
        entry["experiments"] = None
    with pytest.raises(UserError, match="run `dvc repro` first"):
        seeds.seed_runs(seeds.experiments(empty))


def test_a_section_no_stage_reads_does_not_split_the_seeds():
    shown = exp_show()
    shown[0]["data"]["params"]["params.yaml"]["data"]["serve"] = {"max_pixels": 1000}  # edited after queueing
    assert sorted(seeds.seed_runs(seeds.experiments(shown))) == [0, 1, 2]


def test_every_value_behind_the_mean_is_a_row_per_method_and_seed():
    runs = seeds.seed_runs(seeds.experiments(exp_show()))
    per_seed = seeds.per_seed_frame(runs, built_in_cards())
    assert list(per_seed[["Method", "Seed"]].itertuples(index=False, name=None)) == [
        ("CE", 0), ("CE", 1), ("CE", 2), ("Ours", 0), ("Ours", 1), ("Ours", 2)]
    ours = per_seed[per_seed["Method"] == "Ours"]
    assert list(ours["full psnr"]) == [24.0, 25.0, 26.5] and list(ours["hole psnr"]) == [19.0, 20.0, 21.5]
    frame = seeds.seeds_frame(runs, built_in_cards())  # the ± of seeds.md comes from exactly these rows
    assert frame.loc[frame["Method"] == "Ours", "full PSNR ↑ sd"].item() == pytest.approx(ours["full psnr"].std())


def test_the_order_under_each_seed_is_written_and_a_changed_order_is_shown_per_seed():
    runs = seeds.seed_runs(seeds.experiments(exp_show()))
    lines = seeds.orders(seeds.per_seed_frame(runs, built_in_cards()))
    assert lines[0] == "- full PSNR: the same order under every seed: Ours > CE"
    runs[1]["table1_full"]["ce"]["psnr"] = 30.0  # CE ahead under seed 1 only
    lines = seeds.orders(seeds.per_seed_frame(runs, built_in_cards()))
    assert lines[0] == "- full PSNR: seed 0: Ours > CE; seed 1: CE > Ours; seed 2: Ours > CE"
