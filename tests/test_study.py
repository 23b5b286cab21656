"""`fgi study record`: the CPU study's record in docs/study/, from a run's real output files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fgi.evaluation import study, tables
from fgi.config import Bootstrap
from fgi.cli import main as fgi_main
from conftest import built_in_cards
from fgi.evaluation.cards import CARDS, write_cards

ROOT = Path(__file__).resolve().parent.parent
BINS = ("(0.01,0.1]", "(0.5,0.6]")


def per_image_rows(hole_psnr: dict[str, tuple[float, ...]]) -> pd.DataFrame:
    """Four pairs, two per bin; every region's PSNR is the hole PSNR plus a region offset."""
    rows = []
    for method, values in hole_psnr.items():
        for index, value in enumerate(values):
            row = {"method": method, "image_id": f"{index:05d}", "bin": BINS[index // 2], "hole_ratio": 0.05}
            for region, offset in (("full", 10.0), ("foreground", 5.0), ("hole", 0.0)):
                row |= {f"{region}/psnr": value + offset, f"{region}/ssim": 0.5, f"{region}/mse": 1.0,
                        f"{region}/mae": 1.0}
            rows.append(row)
    return pd.DataFrame(rows)


def test_ranking_orders_the_methods_with_rank_intervals_and_measures_the_gap_to_biharmonic_per_bin():
    """Within each bin every pair orders the three methods alike, so every resample does too: one
    rank each, a strict order. Over all four pairs a resample of pairs 2 and 3 only (chance 1/16,
    over the 2.5 % tail) puts CE first and biharmonic last, and one of pairs 0 and 1 only the
    reverse: their rank intervals span 1-3, overlap Ours's, and the order is all ties. Ours
    lies between the two on every pair's mean, so it is second in every resample."""
    frame = per_image_rows({"ours": (20, 22, 30, 32), "ce": (10, 12, 34, 36), "biharmonic": (28, 30, 25, 27)})
    text = study.ranking_markdown(frame, built_in_cards(), Bootstrap(resamples=1000, level=0.95, seed=0))
    hole = text.split("## Hole")[1]
    # Small holes: biharmonic 29 > ours 21 > ce 11, gap = 21 - 29; large: ce 35 > ours 31 > biharmonic 26.
    assert "| (0.01,0.1] | 11.00 (3) | 21.00 (2) | 29.00 (1) | Biharmonic > Ours > CE | -8.00 |" in hole
    assert "| (0.5,0.6] | 35.00 (1) | 31.00 (2) | 26.00 (3) | CE > Ours > Biharmonic | +9.00 |" in hole
    assert "| all | 23.00 (1–3) | 26.00 (2) | 27.50 (1–3) | Biharmonic ≈ Ours ≈ CE | -1.50 |" in hole
    assert "| all | 33.00 (1–3) | 36.00 (2) | 37.50 (1–3) |" in text.split("## Whole image")[1]
    assert "Over seeds" not in text  # one run: no seed table


def test_ranking_over_seeds_pools_the_runs_and_shows_a_tie_as_a_tie():
    """Two seeds: Ours is x, then x + 2 (mean x + 1); PConv is x + 1 in both: exactly tied with
    Ours's mean over the seeds in every resample of pairs, yet a resample of the seeds (seed 0
    twice, chance 1/4) puts Ours below PConv and one of seed 1 twice above it: both rank 1-2."""
    x = (20, 22, 30, 32)
    seeds = {0: per_image_rows({"pconv": tuple(v + 1 for v in x), "ours": x, "ce": (1, 2, 3, 4)}),
             1: per_image_rows({"pconv": tuple(v + 1 for v in x), "ours": tuple(v + 2 for v in x), "ce": (1, 2, 3, 4)})}
    text = study.ranking_markdown(seeds[0], built_in_cards(), Bootstrap(resamples=1000, level=0.95, seed=0), seeds)
    main, pooled = text.split("## Hole")[1].split("Over seeds 0, 1:")
    assert "| all | 2.50 (3) | 27.00 (1) | 26.00 (2) | PConv > Ours > CE |" in main
    assert "| all | 2.50 (3) | 27.00 (1–2) | 27.00 (1–2) | PConv ≈ Ours > CE |" in pooled


def test_psnr_above_the_cap_counts_as_the_cap_as_in_the_tables():
    frame = per_image_rows({"ours": (float("inf"), 100, 100, 100), "biharmonic": (1, 1, 1, 1)})
    ranked = tables.rank_frame([frame], Bootstrap(resamples=100, level=0.95, seed=0), built_in_cards())
    assert ranked.set_index(["Region", "Hole ratio", "Method"]).at[("hole", "all", "Ours"), "PSNR ↑"] == 100.0


def test_ablation_compares_the_readings_on_the_same_pairs_and_refuses_other_pairs():
    swgan = per_image_rows({"ours": (20, 22, 30, 32), "biharmonic": (28, 30, 25, 27)})
    none = per_image_rows({"ours": (18, 18, 24, 24), "biharmonic": (28, 30, 25, 27)})
    text = study.ablation_markdown({"swgan": swgan, "none": none}, built_in_cards())
    assert "| Ours (swgan) | 36.00 | 0.5000 | 31.00 | 0.5000 | 26.00 |" in text
    assert "| Ours (none) | 31.00 | 0.5000 | 26.00 | 0.5000 | 21.00 |" in text
    assert "| Ours (none) | 18.00 | 24.00 |" in text  # hole PSNR per bin
    with pytest.raises(ValueError, match="same test pairs"):
        study.ablation_markdown({"swgan": swgan, "none": none[none["image_id"] != "00003"]}, built_in_cards())


def test_ablation_tests_the_readings_paired():
    swgan = per_image_rows({"ours": (20, 22, 30, 32), "biharmonic": (28, 30, 25, 27)})
    none = per_image_rows({"ours": (18, 18, 24, 24), "biharmonic": (28, 30, 25, 27)})
    text = study.ablation_markdown({"swgan": swgan, "none": none}, built_in_cards(), Bootstrap(resamples=500, level=0.9, seed=0))
    row = next(line for line in text.splitlines() if line.startswith("| swgan − none | hole PSNR |"))
    # Differences 2, 4, 6, 8: mean +5; exact two-sided Wilcoxon p = 2 / 2^4 (scipy's exact test).
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:4] == ["4", cells[3]] and cells[3].startswith("+5.00 [")
    low, high = map(float, cells[3].split("[")[1].rstrip("]").split(","))
    assert 2.0 <= low < 5.0 < high <= 8.0
    assert cells[4] == "1.2e-01"


def component_rows(hole_psnr: dict[str, tuple[float, ...]]) -> pd.DataFrame:
    """Two pairs of each component, eyes then mouth, as reports/per_image_components.csv has them."""
    frame = per_image_rows(hole_psnr)
    return frame.assign(bin=["eyes", "eyes", "mouth", "mouth"] * len(hole_psnr))


def table6(components: pd.DataFrame) -> pd.DataFrame:
    """Table 6's csv columns for hole PSNR: the mean and a made-up interval of ±1 dB."""
    rows = []
    for (method, component), group in components.groupby(["method", "bin"], sort=False):
        mean = group["hole/psnr"].mean()
        rows.append({"Method": built_in_cards().display(method), "Component": component, "Pairs": len(group),
                     "Hole PSNR ↑": mean, "Hole PSNR ↑ ci_low": mean - 1, "Hole PSNR ↑ ci_high": mean + 1})
    return pd.DataFrame(rows)


def fake_run(root: Path, base_loss: str, ours_hole: tuple[float, ...], seed: int = 0, train_mix: float = 0.0,
             ours_components: tuple[float, ...] = (20, 21, 22, 23)) -> None:
    """The files a study run leaves behind, at toy sizes, with configs/study.yaml beside them."""
    params = yaml.safe_load((ROOT / "configs" / "study.yaml").read_text())
    params["train"]["val_images"] = 2
    (root / "configs").mkdir(exist_ok=True)
    (root / "configs" / "study.yaml").write_text(yaml.safe_dump(params))
    params["models"]["ours"]["base_loss"] = base_loss
    params["train"]["seed"] = seed
    params["holes"]["train_mix"] = train_mix
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    others = {"ce": (1, 2, 3, 4), "pconv": (5, 6, 7, 8), "gc": (9, 9, 9, 9), "biharmonic": (28, 30, 25, 27)}
    per_image = per_image_rows({"ours": ours_hole} | others)
    (root / "reports" / "tables").mkdir(parents=True, exist_ok=True)
    per_image.to_csv(root / "reports" / "per_image.csv", index=False)
    components = component_rows({"ours": ours_components} | others)
    components.to_csv(root / "reports" / "per_image_components.csv", index=False)
    table6(components).to_csv(root / "reports" / "tables" / "table6_components.csv", index=False)
    (root / "reports" / "tables" / "table1_full.md").write_text("### Table 1\n")
    (root / "reports" / "figures").mkdir(exist_ok=True)
    for name in study.FIGURES:
        (root / "reports" / "figures" / name).write_bytes(b"\x89PNG")
    (root / "data" / "holes").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": ["00000", "00002", "00001"], "mask": ["a", "b", "c"], "hole_ratio": 0.05,
                  "bin": BINS[0]}).to_csv(root / "data" / "holes" / "test_pairs.csv", index=False)
    write_cards(root / "reports" / CARDS, built_in_cards())
    for model in built_in_cards().learned():
        (root / "models" / model).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"step": [50, 100, 150], "epoch": [0, 0, 1], "psnr_hole": [12.0, 15.0, 14.0]}).to_csv(
            root / "models" / model / "val.csv", index=False)


def test_record_then_ablation_writes_the_study_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    assert fgi_main(["study", "record", "--wall-s", "3600"]) == 0
    out = tmp_path / "docs" / "study"
    info = json.loads((out / "run.json").read_text())
    assert info["profile"] == "study" and info["reading"] == "swgan"
    assert info["reference_val_hole_psnr"] == pytest.approx(26.5)  # the first two test pairs: 00000 (28), 00002 (25)
    run = (out / "run.md").read_text()
    assert "60.0 min" in run and "| Ours | 12.00 | 15.00 (100) | 14.00 (150) | 13.67 |" in run
    assert (out / "figures" / "fig4_comparison.png").is_file() and (out / "tables" / "table1_full.md").is_file()
    assert not (out / "ablation.md").exists()  # one reading so far

    fake_run(tmp_path, "none", (18, 18, 24, 24))
    assert fgi_main(["study", "record", "--ablation"]) == 0
    assert (out / "ablation" / "none" / "per_image.csv").is_file()
    assert "| Ours (none) | 31.00 |" in (out / "ablation.md").read_text()
    # The main run's record is untouched by the experiment's.
    assert json.loads((out / "run.json").read_text())["reading"] == "swgan"
    # `render` rebuilds the summaries from the records alone, as record wrote them.
    summaries = {name: (out / name).read_text() for name in ("run.md", "ranking.md", "ablation.md",
                                                              "tables/table5_all_pairs.md", "tables/table5_ranks.csv")}
    for name in summaries:
        (out / name).unlink()
    assert fgi_main(["study", "render"]) == 0
    assert {name: (out / name).read_text() for name in summaries} == summaries


def test_record_without_a_run_names_the_missing_file_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path, "swgan", (20, 22, 30, 32))
    shutil.rmtree(tmp_path / "reports" / "figures")
    with pytest.raises(SystemExit) as exit_info:
        fgi_main(["study", "record"])
    assert exit_info.value.code == 2
    assert "fig4_comparison.png: not found" in capsys.readouterr().err


def test_stage_times_are_each_stages_latest_run_of_the_workspace_or_the_experiment(tmp_path, mlflow_db):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_db)
    T0 = 1_764_000_000  # seconds since the epoch
    experiment = client.create_experiment("fgi-study")
    runs = [("prepare", "workspace", 0, 30), ("train@ours", "workspace", 40, 100),  # an interrupted first try
            ("train@ours", "workspace", 200, 1400), ("evaluate", "workspace", 1500, 1560),
            ("train@ours", "exp-1a2b3", 2000, 2900), ("evaluate", "exp-1a2b3", 3000, 3045)]
    for stage, exp, start, end in runs:
        run = client.create_run(experiment, start_time=(T0 + start) * 1000, tags={"dvc_stage": stage, "dvc_exp": exp})
        client.set_terminated(run.info.run_id, end_time=(T0 + end) * 1000)
    assert study.stage_wall_times(tmp_path, "fgi-study", ablation=False) == {
        "prepare": 30.0, "train@ours": 1200.0, "evaluate": 60.0}
    assert study.stage_wall_times(tmp_path, "fgi-study", ablation=True) == {"train@ours": 900.0, "evaluate": 45.0}
    # A variant: whichever ran last, here the experiment.
    assert study.stage_wall_times(tmp_path, "fgi-study", ablation=None) == {"train@ours": 900.0, "evaluate": 45.0}
    assert study.stage_wall_times(tmp_path, "fgi-other", ablation=False) == {}
