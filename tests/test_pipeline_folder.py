"""End to end on your own data: `dvc repro` of the micro profile on a folder of faces with a face parser's
label maps and a folder of NVIDIA-style hole masks, to Tables 1-5; a folder that changes reruns exactly
what reads it (README: "Your own data")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ALWAYS_RUNS, MICRO_PARAMS, make_pipeline_repo, run_dvc, stages_run
from test_folder_sources import HAIR, SKIN, face, hole_folder, parser_labels
from test_pipeline import stages_in_dvc_yaml

pytestmark = pytest.mark.e2e

SIZES = [(40, 40), (48, 36), (36, 52), (44, 44)] * 4  # 16 faces, FFHQ-like PNGs of mixed sizes
METHODS = {"ours": "fgi/methods/ours", "biharmonic": "fgi/methods/biharmonic"}  # Table 5: ours against the reference


def add_face(folders: Path, stem: str, size: tuple[int, int], seed: int) -> None:
    (folders / "faces" / stem[:3]).mkdir(parents=True, exist_ok=True)
    face(*size, seed).save(folders / "faces" / stem[:3] / f"{stem}.png")
    (folders / "parsing").mkdir(exist_ok=True)
    parser_labels(*size).save(folders / "parsing" / f"{stem}.png")


@pytest.fixture(scope="module")
def folder_pipeline(tmp_path_factory, mlflow_template) -> tuple[Path, Path]:
    folders = tmp_path_factory.mktemp("own-data")
    for index, size in enumerate(SIZES):
        add_face(folders, f"{index:05d}", size, index)
    hole_folder(folders / "irregular_masks" / "train", 3)
    hole_folder(folders / "irregular_masks" / "test", 2)
    tree = yaml.safe_load(MICRO_PARAMS.read_text())
    tree["data"].update(source="folder")
    tree["data"]["folder"].update(images=str(folders / "faces"), foreground=str(folders / "parsing"),
                                  label_ids=[SKIN, HAIR], label_count=19)
    tree["split"] = {"train": 0.7, "test": 0.3}
    tree["holes"].update(source="folder", invert=True)
    tree["holes"]["folder"].update(train=str(folders / "irregular_masks" / "train"),
                                   test=str(folders / "irregular_masks" / "test"))
    tree["methods"] = METHODS
    params = tmp_path_factory.mktemp("own-params") / "params.yaml"
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    repo = make_pipeline_repo(tmp_path_factory.mktemp("own-pipeline"), mlflow_template, params)
    run_dvc(repo, "repro")
    return repo, folders


def status(repo: Path) -> dict:
    return json.loads(run_dvc(repo, "status", "--json").stdout)


def test_faces_parser_masks_and_hole_masks_reach_every_table(folder_pipeline):
    repo, _ = folder_pipeline
    assert status(repo) == ALWAYS_RUNS
    prepared = json.loads((repo / "data" / "prepared" / "summary.json").read_text())
    assert (prepared["images"], prepared["train"], prepared["test"]) == (16, 11, 5)
    foreground = json.loads((repo / "data" / "foreground" / "summary.json").read_text())
    assert foreground["available"] and foreground["masks"] == 16 and foreground["empty_masks"] == 0
    assert json.loads((repo / "data" / "raw" / "celebamask_hq" / "source.json").read_text())["source"] == "folder"
    tables = repo / "reports" / "tables"
    for name in ("table1_full", "table2_foreground", "table3_hole", "table4_bins", "table5_paired"):
        assert (tables / f"{name}.md").is_file(), name
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["table2_foreground"]["ours"]["psnr"] > 0, "with parser masks the foreground is measured"
    assert "table6_components" not in metrics, "no part annotations, no component pairs"
    assert (repo / "reports" / "report.html").is_file()


def test_a_changed_hole_mask_stales_only_the_holes_stage(folder_pipeline):
    repo, folders = folder_pipeline
    mask = folders / "irregular_masks" / "train" / "mask004.png"
    original = mask.read_bytes()
    hole_folder(folders / "changed", 3)
    mask.write_bytes((folders / "changed" / "mask000.png").read_bytes())
    try:
        assert stages_run(run_dvc(repo, "repro", "manifest")) == {"manifest"}
        stale = {stage for stage in status(repo) if stage not in ALWAYS_RUNS}
        assert stale == {"holes"}, "a mask folder is read by the holes stage alone"
    finally:
        mask.write_bytes(original)
        run_dvc(repo, "repro", "manifest")
    assert status(repo) == ALWAYS_RUNS


def test_adding_one_image_reruns_prepare_and_everything_after_it_and_nothing_else(folder_pipeline):
    repo, folders = folder_pipeline
    before = (repo / "data" / "prepared" / "test.txt").read_text()
    add_face(folders, "new_capture", (50, 40), 99)
    # The manifest notices the new file; prepare and foreground read it. Every later stage reads their outputs,
    # so after these three `dvc status` names exactly what a full `dvc repro` would rerun (without paying for it).
    assert stages_run(run_dvc(repo, "repro", "foreground")) == {"manifest", "prepare", "foreground"}
    after = (repo / "data" / "prepared" / "test.txt").read_text()
    assert "new_capture" in after + (repo / "data" / "prepared" / "train.txt").read_text()
    # holes reads test.txt alone: it reruns only if the test split changed.
    untouched = {"fetch_data", "fetch_masks", "weights"} | ({"holes"} if after == before else set())
    stale = {stage for stage in status(repo) if stage not in ALWAYS_RUNS}
    assert stale == stages_in_dvc_yaml(repo) - untouched - {"manifest", "prepare", "foreground"}, sorted(stale)
