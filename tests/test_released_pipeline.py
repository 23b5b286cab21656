"""Released weights through the pipeline: `models.lama.released` set, `dvc repro` to Tables 1–5.

A LaMa release in miniature (tests/released_fixtures.py: the release's folder layout, config.yaml
and a Lightning checkpoint; one residual block, so it is small) at the release's size and width,
256² and 1.0, beside Ours trained for the micro profile's 2 steps. LaMa is imported, not trained,
and every table marks its row. The user's mistakes (a wrong sha256, a truncated checkpoint) stop
the stage that meets them with one line and exit code 2, and leave the last good import as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import MICRO_PARAMS, make_pipeline_repo, pipeline_env, run_dvc
from fgi import files
from fgi.inference import load_generator
from fgi.methods.lama.ffc import LamaGenerator
from released_fixtures import lama_cfg, write_lama_release

pytestmark = pytest.mark.e2e
SIZE = 256


def zipped(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, Path(folder.name) / path.relative_to(folder))
    return archive


@pytest.fixture(scope="module")
def released_repo(tmp_path_factory, mlflow_template):
    """The micro profile at 256² comparing Ours (trained) and LaMa (a release, zipped), reproduced."""
    where = tmp_path_factory.mktemp("released")
    torch.manual_seed(0)
    cfg = lama_cfg(width=1.0, n_blocks=1)
    generator = LamaGenerator(SIZE, cfg.width, cfg.n_blocks, cfg.ratio_g)
    release = write_lama_release(where / "lama-fourier", generator, cfg)
    archive = zipped(release, where / "lama-fourier.zip")
    tree = yaml.safe_load(MICRO_PARAMS.read_text())
    tree["data"]["size"] = SIZE
    tree["methods"] = {"ours": "fgi/methods/ours", "lama": "fgi/methods/lama"}
    tree["models"]["lama"].update(width=1.0, n_blocks=1)
    tree["models"]["lama"]["released"] = {"url": "", "path": str(archive), "sha256": files.sha256_file(archive)}
    params = where / "params.yaml"
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    repo = make_pipeline_repo(where / "repo", mlflow_template, params)
    run_dvc(repo, "repro")
    return repo, generator, archive


def test_the_release_is_imported_not_trained(released_repo):
    repo, generator, archive = released_repo
    record = torch.load(repo / "models" / "lama" / "model.pt", weights_only=True)["released"]
    assert record["source"] == str(archive) and record["sha256"] == files.sha256_file(archive)
    assert "Lightning" in record["format"] and "advimman/lama" in record["release"]
    assert record["overlap"] == {"seen": 0, "of": 6, "why": "synthetic faces: none is a CelebA-HQ face"}
    _, imported, size = load_generator(repo / "models" / "lama")
    assert size == SIZE
    expected = generator.state_dict()
    assert all(torch.equal(imported.state_dict()[key], value) for key, value in expected.items())
    provenance = json.loads((repo / "data" / "weights" / "provenance.json").read_text())
    assert provenance["released/lama"]["checksum"] == "checked"
    assert (repo / "models" / "lama" / "curve.csv").read_text() == "step,epoch\n", "no step was trained"


def test_the_tables_mark_the_row_and_say_what_it_saw(released_repo):
    repo, _, _ = released_repo
    tables = repo / "reports" / "tables"
    for name in ("table1_full", "table2_foreground", "table5_paired", "table5_all_pairs", "table5_ranks"):
        text = (tables / f"{name}.md").read_text()
        assert "LaMa (released)" in text, name
        assert ("LaMa (released): released weights (advimman/lama: lama-celeba-hq/lama-fourier (config.yaml and "
                "models/best.ckpt)), trained on advimman/lama") in text, name
        assert "0 of 6 test faces seen in training" in text, name
    assert json.loads(run_dvc(repo, "status", "--json").stdout) == {}


def test_the_mlflow_run_says_released_weights(released_repo):
    from mlflow.tracking import MlflowClient

    repo, _, archive = released_repo
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgi-micro")
    [run] = client.search_runs([experiment.experiment_id], "tags.dvc_stage = 'train@lama'")
    assert run.data.tags["provenance"] == "released weights"
    assert run.data.tags["released_source"] == str(archive)
    assert run.data.tags["released_test_faces_seen"] == "0"


def run_stage(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=repo, env=pipeline_env(repo), capture_output=True,
                          text=True, timeout=600)


def set_release(repo: Path, **released) -> str:
    original = (repo / "params.yaml").read_text()
    tree = yaml.safe_load(original)
    tree["models"]["lama"]["released"].update(released)
    (repo / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return original


def test_a_wrong_sha256_stops_the_weights_stage_and_keeps_the_import(released_repo):
    repo, _, archive = released_repo
    kept = files.sha256_file(repo / "data" / "weights" / "released" / "lama" / "lama-fourier" / "models" / "best.ckpt")
    original = set_release(repo, sha256="0" * 64)
    try:
        result = run_stage(repo, "stages.weights")
    finally:
        (repo / "params.yaml").write_text(original)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(archive) in line and "sha256" in line and "models.lama.released.sha256" in line
    assert files.sha256_file(repo / "data" / "weights" / "released" / "lama" / "lama-fourier" / "models"
                             / "best.ckpt") == kept


def test_a_truncated_checkpoint_stops_train_and_names_the_file(released_repo, tmp_path):
    repo, _, archive = released_repo
    broken = tmp_path / "lama-fourier"
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(tmp_path)
    checkpoint = broken / "models" / "best.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])
    model = repo / "models" / "lama" / "model.pt"
    kept = files.sha256_file(model)
    saved = tmp_path / "weights"
    shutil.copytree(repo / "data" / "weights", saved)
    original = set_release(repo, path=str(broken), sha256="")
    try:
        assert run_stage(repo, "stages.weights").returncode == 0
        result = run_stage(repo, "stages.train", "lama")
    finally:
        (repo / "params.yaml").write_text(original)
        shutil.rmtree(repo / "data" / "weights")
        shutil.copytree(saved, repo / "data" / "weights")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "best.ckpt" in line
    assert files.sha256_file(model) == kept, "the last good import is left as it was"


def test_fgi_inpaint_fills_a_photo_with_the_imported_model(released_repo, tmp_path):
    from PIL import Image

    from fgi import cli
    from fgi.apps.inpaint import inpaint_image

    repo, generator, _ = released_repo
    Image.fromarray(np.full((300, 280, 3), 140, np.uint8)).save(tmp_path / "face.png")
    hole = np.zeros((300, 280), np.uint8)
    hole[100:180, 60:200] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    assert cli.main(["inpaint", "--checkpoint", str(repo / "models" / "lama"), "--image", str(tmp_path / "face.png"),
                     "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png"),
                     "--precision", "float32"]) == 0
    expected = inpaint_image(generator.eval(), SIZE, Image.open(tmp_path / "face.png"), hole > 0, precision="float32")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(expected))
