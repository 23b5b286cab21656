"""predict, evaluate and the tables: fixed pairs, composited outputs, the paper's layout."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO, built_in_cards, run_dvc
from fgi import files
from fgi.evaluation import tables
from fgi.config import load_params
from fgi.data.layout import read_csv
from fgi.errors import UserError
from fgi.evaluation.evaluate import jobs_for, method_folders

pytestmark = pytest.mark.e2e
METHODS = ("ce", "pconv", "gc", "lama", "ours", "biharmonic", "toy")  # the micro pipeline's `methods`, the plugin last


def test_every_method_has_a_composited_output_for_every_pair(micro_pipeline):
    pairs = read_csv(micro_pipeline / "data" / "holes" / "test_pairs.csv")
    for method in METHODS:
        for pair in pairs:
            output = files.load_image_rgb(micro_pipeline / "data" / "predictions" / method / f"{pair['image_id']}.png")
            truth = files.load_image_rgb(micro_pipeline / "data" / "prepared" / "images" / f"{pair['image_id']}.png")
            hole = files.load_mask(micro_pipeline / "data" / "holes" / pair["mask"])
            assert output.shape == truth.shape
            assert np.array_equal(output[~hole], truth[~hole]), f"{method} changed known pixels"


def test_evaluate_writes_every_table_for_every_method(micro_pipeline):
    out = micro_pipeline / "reports" / "tables"
    for name in ("table1_full", "table2_foreground", "table3_hole", "table4_bins", "table5_paired"):
        for suffix in (".csv", ".md", ".tex"):
            assert (out / f"{name}{suffix}").is_file()
    table1 = pd.read_csv(out / "table1_full.csv")
    metrics = ["MSE ↓", "MAE ↓", "FID ↓", "PSNR ↑", "SSIM ↑", "LPIPS ↓"]
    assert list(table1.columns) == ["Method", "Author", "Values", *metrics,
                                    *(f"{m} {end}" for m in metrics for end in ("ci_low", "ci_high"))]
    measured = table1[table1["Values"] == "this run"]
    assert measured["Method"].tolist() == ["CE", "PConv", "GC", "LaMa", "Ours", "Biharmonic", "Toy"]
    published = table1[table1["Values"] == "published"].set_index("Method")
    assert published.loc["Ours", "PSNR ↑"] == 34.35 and published.loc["GC", "FID ↓"] == 4.29
    assert measured["FID ↓"].isna().all(), "offline: FID is n/a, never a number from random weights"
    assert measured["LPIPS ↓"].isna().all(), "offline: LPIPS's VGG16 is random, so LPIPS is n/a"
    markdown = (out / "table1_full.md").read_text()
    assert "| Ours | Foreground-guided | published | 194.86 |" in markdown and "n/a" in markdown
    assert "PSNR = 10 log10(255^2 / MSE)" in markdown
    metrics = json.loads((micro_pipeline / "reports" / "metrics.json").read_text())
    assert set(metrics["table2_foreground"]) == set(METHODS)
    assert metrics["table1_full"]["ours"]["fid"] is None and metrics["table1_full"]["ours"]["lpips"] is None
    shown = run_dvc(micro_pipeline, "metrics", "show", "--json").stdout
    assert "table1_full" in shown and "psnr" in shown


def test_tables_agree_with_the_per_image_rows(micro_pipeline):
    per_image = pd.read_csv(micro_pipeline / "reports" / "per_image.csv", dtype={"image_id": str})
    metrics = json.loads((micro_pipeline / "reports" / "metrics.json").read_text())
    pairs = len(read_csv(micro_pipeline / "data" / "holes" / "test_pairs.csv"))
    assert len(per_image) == pairs * len(METHODS)
    rows = per_image[per_image["method"] == "gc"]
    assert metrics["table3_hole"]["gc"]["mae"] == pytest.approx(rows["hole/mae"].mean())
    assert metrics["table1_full"]["gc"]["ssim"] == pytest.approx(rows["full/ssim"].mean())


def test_fgi_tables_rebuilds_the_same_tables(micro_pipeline, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(micro_pipeline / "reports", reports)
    original = (reports / "tables" / "table2_foreground.md").read_text()
    shutil.rmtree(reports / "tables")
    result = subprocess.run([sys.executable, "-m", "fgi.cli", "tables", "--reports", str(reports)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (reports / "tables" / "table2_foreground.md").read_text() == original


def test_external_outputs_join_the_tables_and_are_checked(micro_pipeline, tmp_path):
    data = micro_pipeline / "data"
    params = load_params(micro_pipeline / "params.yaml")
    mine = tmp_path / "mine"
    shutil.copytree(data / "predictions" / "biharmonic", mine)
    with_external = dataclasses.replace(params, eval=dataclasses.replace(params.eval, external={"mine": str(mine)}))
    pairs = read_csv(data / "holes" / "test_pairs.csv")
    folders, cards = method_folders(with_external, data / "predictions")
    assert folders["mine"] == mine
    assert list(cards) == [*METHODS, "mine"] and cards.predicted() == list(METHODS)
    assert (cards.display("mine"), cards.citation("mine")) == ("mine", "external")
    jobs = jobs_for(folders, pairs, data / "prepared", data / "foreground", data / "holes")
    assert {job["method"] for job in jobs} == {*METHODS, "mine"}
    missing = mine / f"{pairs[0]['image_id']}.png"
    missing.unlink()
    with pytest.raises(UserError, match=f"{missing}: missing"):
        jobs_for(folders, pairs, data / "prepared", data / "foreground", data / "holes")
    not_a_folder = dataclasses.replace(params, eval=dataclasses.replace(params.eval, external={"x": str(missing)}))
    with pytest.raises(UserError, match="eval.external.x: .* is not a folder"):
        method_folders(not_a_folder, data / "predictions")


def test_tables_layout_on_hand_made_rows(tmp_path):
    rows = []
    for method, psnr in (("ours", 30.0), ("ce", 20.0)):
        for image_id, bin_label in (("00001", "(0.01,0.1]"), ("00002", "(0.1,0.2]")):
            row = {"method": method, "image_id": image_id, "bin": bin_label, "hole_ratio": 0.05}
            for region in ("full", "foreground", "hole"):
                row.update({f"{region}/mse": 4.0, f"{region}/mae": 2.0, f"{region}/psnr": psnr, f"{region}/ssim": 0.9})
            rows.append(row)
    per_image = pd.DataFrame(rows)
    per_image.loc[0, "full/psnr"] = np.inf  # a perfect image counts as 100 dB
    bootstrap = load_params(REPO / "params.yaml").eval.bootstrap
    measured = tables.build_tables(per_image, {"ours": {"full": 12.5}}, tmp_path, bootstrap, built_in_cards())
    assert measured["table1_full"]["ours"]["psnr"] == pytest.approx((100.0 + 30.0) / 2)
    assert measured["table1_full"]["ours"]["fid"] == 12.5 and measured["table1_full"]["ce"]["fid"] is None
    table1 = pd.read_csv(tmp_path / "table1_full.csv")
    assert table1[["Method", "Values"]].values.tolist() == [
        ["CE", "this run"], ["CE", "published"], ["Ours", "this run"], ["Ours", "published"]]
    table3 = pd.read_csv(tmp_path / "table3_hole.csv")
    assert (table3["Values"] == "this run").all(), "the paper has no hole-region table"
    bins = pd.read_csv(tmp_path / "table4_bins.csv")
    assert bins[["Method", "Hole ratio"]].values.tolist() == [
        ["CE", "(0.01,0.1]"], ["CE", "(0.1,0.2]"], ["Ours", "(0.01,0.1]"], ["Ours", "(0.1,0.2]"]]
    latex = (tmp_path / "table1_full.tex").read_text()
    assert r"PSNR $\uparrow$" in latex and r"\toprule" in latex
