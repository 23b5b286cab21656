"""`dvc status` tells the truth with folder sources: up to date after `dvc repro`, and a file added to
or changed in a user's folder (outside the repository) names the manifest stage, and prepare for
faces, before any repro, because dvc.yaml lists the folders themselves as their
deps (README: "Your own data")."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from conftest import MICRO_PARAMS, make_pipeline_repo, run_dvc, stages_run
from fgi.config import load_params
from fgi.data.manifest import build_manifests
from test_folder_sources import SIZE, binary_mask, face, faces_folder, hole_folder

pytestmark = pytest.mark.e2e

UP_TO_DATE = "Data and pipelines are up to date."


def status(repo: Path, target: str) -> dict:
    """`dvc status` of `target` and every stage upstream of it."""
    return json.loads(run_dvc(repo, "status", "--json", "--with-deps", target).stdout)


def says_up_to_date(repo: Path, target: str) -> bool:
    return run_dvc(repo, "status", "--with-deps", target).stdout.strip() == UP_TO_DATE


@pytest.fixture(scope="module")
def folder_repo(tmp_path_factory, mlflow_template) -> tuple[Path, Path]:
    """The micro profile on 16 faces with binary masks and two folders of hole masks, all outside the
    repository, reproduced up to `prepare`."""
    folders = tmp_path_factory.mktemp("own-data")
    faces_folder(folders / "faces", [(SIZE, SIZE)] * 16, masks=folders / "masks")
    hole_folder(folders / "holes" / "train", 1)
    hole_folder(folders / "holes" / "test", 1)
    tree = yaml.safe_load(MICRO_PARAMS.read_text())
    tree["data"]["source"] = "folder"
    tree["data"]["folder"].update(images=str(folders / "faces"), foreground=str(folders / "masks"))
    tree["split"] = {"train": 0.7, "test": 0.3}
    tree["holes"].update(source="folder", invert=True)
    tree["holes"]["folder"].update(train=str(folders / "holes" / "train"), test=str(folders / "holes" / "test"))
    params = tmp_path_factory.mktemp("own-params") / "params.yaml"
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    repo = make_pipeline_repo(tmp_path_factory.mktemp("own-pipeline"), mlflow_template, params)
    assert stages_run(run_dvc(repo, "repro", "prepare")) == {"fetch_data", "manifest", "prepare"}
    return repo, folders


def test_the_synthetic_demo_is_up_to_date_after_repro(tmp_path, mlflow_template):
    # Every folder key is `none` there: the manifest depends on the stand-in folder none/, and writes
    # header-only CSVs.
    repo = make_pipeline_repo(tmp_path / "demo", mlflow_template)
    assert stages_run(run_dvc(repo, "repro", "manifest")) == {"manifest"}
    assert says_up_to_date(repo, "manifest")
    assert stages_run(run_dvc(repo, "repro", "manifest")) == set(), "nothing reruns"


def test_a_folder_source_is_up_to_date_after_repro(folder_repo):
    repo, _ = folder_repo
    assert says_up_to_date(repo, "prepare")
    assert status(repo, "manifest") == {}


def test_a_face_added_to_the_folder_shows_before_any_repro(folder_repo):
    repo, folders = folder_repo
    face(SIZE, SIZE, 99).save(folders / "faces" / "00010" / "new_capture.png")
    binary_mask(SIZE, SIZE).save(folders / "masks" / "new_capture.png")
    changed = [{"changed deps": {str(folders / "faces"): "modified", str(folders / "masks"): "modified"}}]
    assert status(repo, "prepare") == {"manifest": changed, "prepare": changed}
    # The repro that status promises: the manifest lists the new face, so prepare reruns and splits it.
    assert stages_run(run_dvc(repo, "repro", "prepare")) == {"manifest", "prepare"}
    prepared = repo / "data" / "prepared"
    assert "new_capture" in (prepared / "train.txt").read_text() + (prepared / "test.txt").read_text()
    assert says_up_to_date(repo, "prepare")


def test_a_changed_hole_mask_shows_before_any_repro(folder_repo):
    repo, folders = folder_repo
    mask = folders / "holes" / "test" / "mask002.png"
    original = mask.read_bytes()
    mask.write_bytes((folders / "holes" / "test" / "mask003.png").read_bytes())
    try:
        changed = [{"changed deps": {str(folders / "holes" / "test"): "modified"}}]
        assert status(repo, "manifest") == {"manifest": changed}
    finally:
        mask.write_bytes(original)
    assert status(repo, "manifest") == {}, "the folder as it was: nothing to rerun"


def test_an_experiment_in_a_temporary_copy_reads_the_folders(folder_repo, tmp_path):
    repo, folders = folder_repo
    face(SIZE, SIZE, 98).save(folders / "faces" / "00000" / "late_capture.png")
    binary_mask(SIZE, SIZE).save(folders / "masks" / "late_capture.png")
    # `dvc exp run --temp` reproduces in a copy of the repository under .dvc/tmp/exps, where the
    # folders' absolute paths still resolve: the copy's manifest is the folder as it is now.
    assert {"manifest", "prepare"} <= stages_run(run_dvc(repo, "exp", "run", "--temp", "prepare"))
    build_manifests(load_params(repo / "params.yaml"), tmp_path / "manifest", cache=tmp_path / "cache")
    listed = (tmp_path / "manifest" / "images.csv").read_bytes()
    assert b"late_capture" in listed
    shown = json.loads(run_dvc(repo, "exp", "show", "--json").stdout)
    (experiment,) = [rev for commit in shown for exp in commit.get("experiments") or [] for rev in exp["revs"]]
    assert experiment["data"]["deps"]["data/manifest/images.csv"]["hash"] == hashlib.md5(listed).hexdigest()
    assert b"late_capture" not in (repo / "data" / "manifest" / "images.csv").read_bytes(), \
        "the workspace is left as it was"
