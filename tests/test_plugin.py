"""A method from outside fgi/ through the whole pipeline: the toy plugin (tests/plugin/toy_method.py),
registered through the `fgi.methods` entry point and listed in the micro params, is trained,
predicted, evaluated, tabled, reported, and offered by `fgi inpaint` and `fgi serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import PLUGIN_DIR, pipeline_env
from fgi.config import load_params

pytestmark = pytest.mark.e2e


def test_dvc_runs_the_plugins_train_and_predict_stages(micro_pipeline):
    lock = yaml.safe_load((micro_pipeline / "dvc.lock").read_text())["stages"]
    assert {"train@toy", "predict@toy"} <= set(lock)
    # Its code is a dep of its own stages, so an edit to the plugin reruns them.
    assert f"{PLUGIN_DIR.as_posix()}/toy_method.py" in {dep["path"] for dep in lock["train@toy"]["deps"]}
    card = json.loads((micro_pipeline / "data/predictions/toy/method.json").read_text())
    assert (card["display"], card["citation"], card["learned"]) == ("Toy", "a toy plugin", True)


def test_the_plugin_has_a_row_in_every_table_and_the_report(micro_pipeline):
    tables = micro_pipeline / "reports" / "tables"
    for name in ("table1_full", "table2_foreground", "table3_hole"):
        rows = [line for line in (tables / f"{name}.md").read_text().splitlines() if line.startswith("| Toy |")]
        assert len(rows) == 1 and "a toy plugin" in rows[0], name
    assert sum(line.startswith("| Toy |") for line in (tables / "table4_bins.md").read_text().splitlines()) >= 1
    assert "| Toy |" in (tables / "table5_paired.md").read_text()  # Ours against the plugin, paired
    metrics = json.loads((micro_pipeline / "reports" / "metrics.json").read_text())
    assert "toy" in metrics["table1_full"]
    report = (micro_pipeline / "reports" / "report.md").read_text()
    assert "Toy (a toy plugin)" in report and "| methods | CE, PConv, GC, LaMa, Ours, Biharmonic, Toy |" in report


def test_fgi_inpaint_runs_the_plugins_logged_generator(micro_pipeline, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{micro_pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgi-micro")
    (run,) = client.search_runs([experiment.experiment_id], "tags.dvc_stage = 'train@toy'")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "face.png")
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 12:30] = 255
    Image.fromarray(mask).save(tmp_path / "hole.png")
    env = dict(pipeline_env(micro_pipeline), MLFLOW_TRACKING_URI=f"sqlite:///{micro_pipeline / 'mlflow.db'}")
    result = subprocess.run([sys.executable, "-m", "fgi.cli", "inpaint", "--model-uri",
                             f"runs:/{run.info.run_id}/generator", "--image", str(tmp_path / "face.png"),
                             "--mask", str(tmp_path / "hole.png"), "--out", str(tmp_path / "filled.png")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    filled = np.asarray(Image.open(tmp_path / "filled.png"))
    original = np.asarray(Image.open(tmp_path / "face.png"))
    assert (filled[mask == 0] == original[mask == 0]).all(), "known pixels are the photo's own"
    assert (filled[mask > 0] != original[mask > 0]).any(), "the hole was filled by the plugin"


def test_fgi_serve_offers_the_plugin(micro_pipeline):
    from fgi.apps.serve import find_methods

    params = load_params(micro_pipeline / "params.yaml")
    offered = find_methods(params, micro_pipeline / "models", {})
    assert {"ce", "pconv", "gc", "lama", "ours", "biharmonic", "toy"} == set(offered)
    assert offered["toy"].label == "Toy"
    generator, size = offered["toy"].load()
    assert size == params.data.size and type(generator).__name__ == "ToyGenerator"


def test_without_the_package_the_plugin_is_a_clear_params_error(micro_pipeline):
    env = pipeline_env(micro_pipeline)
    env.pop("PYTHONPATH")
    result = subprocess.run([sys.executable, "-m", "fgi.cli", "check-params"], cwd=micro_pipeline, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("params.yaml: methods.toy: unknown method; known methods: biharmonic, ce, gc, ")
    assert os.path.isfile(micro_pipeline / "params.yaml")
