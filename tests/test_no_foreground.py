"""A folder of faces without foreground masks: every method that does not need them runs, and the
foreground region is reported as n/a, never as a number (README: "Your own data")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fgi import files, methods
from fgi.config import load_params
from fgi.data import weights
from fgi.data.dataset import PairSet, TrainSet
from fgi.data.layout import read_csv
from fgi.evaluation.cards import CARD
from fgi.evaluation.evaluate import evaluate
from fgi.evaluation.report import build_report
from fgi.evaluation.tables import NO_FOREGROUND
from test_folder_sources import SIZE, data_stages, faces_folder, hole_folder, with_folders

MICRO = Path(__file__).parent / "micro_params.yaml"
COMPARED = ("ce", "biharmonic")  # a learned method and the reference; the foreground-guided one is refused


@pytest.fixture(scope="module")
def run(tmp_path_factory, request) -> tuple[Path, object]:
    """The data stages of a folder source without foreground masks, under `<root>/data` as a pipeline lays
    them out, and each compared method's outputs and card (its hole filled with grey), but no training."""
    root = tmp_path_factory.mktemp("no-foreground")
    faces_folder(root / "faces", [(SIZE, SIZE)] * 12)
    hole_folder(root / "masks" / "train", 2)
    hole_folder(root / "masks" / "test", 1)
    params = with_folders(load_params(MICRO), root / "faces", holes_train=root / "masks" / "train",
                          holes_test=root / "masks" / "test", holes__invert=True, split__train=6, split__test=6)
    params = dataclasses.replace(params, methods={name: f"fgi/methods/{name}" for name in COMPARED})
    data = data_stages(params, root / "data", holes=True)
    (data / "holes_semantic").mkdir()
    monkey = pytest.MonkeyPatch()
    request.addfinalizer(monkey.undo)
    monkey.setenv("TORCH_HOME", str(root / "torch"))  # offline: random-init weights, FID and LPIPS n/a
    weights.fetch_weights(dataclasses.replace(params, weights=dataclasses.replace(params.weights, download=False)),
                          data / "weights")
    for name in COMPARED:
        out = data / "predictions" / name
        for pair in read_csv(data / "holes" / "test_pairs.csv"):
            truth = files.load_image_rgb(data / "prepared" / "images" / f"{pair['image_id']}.png")
            truth[files.load_mask(data / "holes" / pair["mask"])] = 128
            files.save_png(out / f"{pair['image_id']}.png", truth)
        files.write_json_atomic(out / CARD, methods.get(name).card())
    (root / "models" / "ce").mkdir(parents=True)
    (root / "models" / "ce" / "curve.csv").write_text("step,g/total\n1,1.0\n2,0.9\n")
    (root / "models" / "ce" / "val.csv").write_text("step,epoch,psnr_hole\n2,1,15.0\n")
    return root, params


def test_the_foreground_stage_says_there_is_no_foreground(run):
    root, _ = run
    summary = json.loads((root / "data" / "foreground" / "summary.json").read_text())
    assert summary["available"] is False and "data.folder.foreground is empty" in summary["reason"]
    assert not list((root / "data" / "foreground").glob("*.png"))


def test_the_datasets_give_an_unknown_foreground_not_an_empty_one(run):
    data = run[0] / "data"
    image, hole, fg_mask = TrainSet(data / "prepared", data / "foreground", data / "holes")[0]
    assert fg_mask.shape == hole.shape and torch.isnan(fg_mask).all()
    assert not torch.isnan(image).any()
    assert torch.isnan(PairSet(data / "prepared", data / "foreground", data / "holes")[0][2]).all()


@pytest.fixture(scope="module")
def evaluated(run) -> dict:
    root, params = run
    data = root / "data"
    return evaluate(params, predictions=data / "predictions", prepared=data / "prepared",
                    foreground=data / "foreground", holes=data / "holes", weights=data / "weights",
                    reports=root / "reports", cache=data / "fid_cache", holes_semantic=data / "holes_semantic")


def test_evaluate_and_the_tables_say_n_a_for_the_foreground(run, evaluated):
    root, measured = run[0], evaluated
    per_image = pd.read_csv(root / "reports" / "per_image.csv", dtype={"image_id": str})
    assert per_image[[c for c in per_image if c.startswith("foreground/")]].isna().all().all()
    assert per_image[["full/psnr", "hole/psnr", "full/ssim"]].notna().all().all()
    assert all(value is None for method in COMPARED for value in measured["table2_foreground"][method].values())
    assert measured["table1_full"]["ce"]["psnr"] > 10
    table2 = (root / "reports" / "tables" / "table2_foreground.md").read_text()
    assert NO_FOREGROUND in table2
    assert "| CE | Pathak et al. [3] | this run | n/a | n/a | n/a | n/a | n/a | n/a |" in table2
    assert NO_FOREGROUND not in (root / "reports" / "tables" / "table1_full.md").read_text()
    assert not (root / "reports" / "tables" / "table5_paired.md").exists(), "no proposed method, no Table 5"


def test_the_report_draws_no_foreground_figure(run, evaluated):
    root, params = run
    build_report(params, root, root / "reports")
    report = (root / "reports" / "report.md").read_text()
    assert "Fig. 3 and 5 are not drawn: this run has no foreground masks" in report
    assert not (root / "reports" / "figures" / "fig3_foreground.png").exists()
    assert (root / "reports" / "figures" / "fig4_comparison.png").is_file()
    assert NO_FOREGROUND in report
    assert np.isfinite(json.loads((root / "reports" / "metrics.json").read_text())["table1_full"]["ce"]["psnr"])
