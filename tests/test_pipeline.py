"""End to end: `dvc repro` of the micro profile in a temporary git repo, every stage of dvc.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ALWAYS_RUNS, run_dvc

pytestmark = pytest.mark.e2e


def stages_in_dvc_yaml(repo: Path) -> set[str]:
    """Every stage of the repo's dvc.yaml as DVC resolves it (one train@/predict@ per `methods` entry)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {stage.name for stage in dvc.index.stages}


def test_repro_runs_every_stage(micro_pipeline):
    lock = yaml.safe_load((micro_pipeline / "dvc.lock").read_text())
    assert set(lock["stages"]) == stages_in_dvc_yaml(micro_pipeline)
    status = run_dvc(micro_pipeline, "status", "--json")
    assert json.loads(status.stdout) == ALWAYS_RUNS, "everything is up to date after repro"


def test_data_stage_outputs(micro_pipeline):
    params = yaml.safe_load((micro_pipeline / "params.yaml").read_text())
    data = micro_pipeline / "data"
    assert len(list((data / "raw" / "celebamask_hq" / "CelebA-HQ-img").glob("*.jpg"))) == params["data"]["synthetic"]["count"]
    assert len(list((data / "prepared" / "images").glob("*.png"))) == params["data"]["synthetic"]["count"]
    assert len((data / "prepared" / "test.txt").read_text().split()) == params["split"]["test"]
    assert len(list((data / "foreground").glob("*.png"))) == params["split"]["train"] + params["split"]["test"]
    assert (data / "holes" / "test_pairs.csv").is_file()
    provenance = json.loads((data / "weights" / "provenance.json").read_text())
    assert provenance["vgg16"]["status"] == "random-init (offline)"


def test_every_stage_logged_an_mlflow_run(micro_pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{micro_pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgi-micro")
    runs = client.search_runs([experiment.experiment_id])
    assert {run.data.tags["dvc_stage"] for run in runs} >= stages_in_dvc_yaml(micro_pipeline)
    assert all(run.data.tags["profile"] == "micro" for run in runs)
    assert experiment.artifact_location == (micro_pipeline / "mlartifacts").as_uri()


def edit_params(repo: Path, path: str, value) -> str:
    """Set one key of the repo's params.yaml; return the old text to restore."""
    original = (repo / "params.yaml").read_text()
    tree = yaml.safe_load(original)
    *parents, last = path.split(".")
    node = tree
    for key in parents:
        node = node[key]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return original


def stale_stages(repo: Path) -> set[str]:
    """The stages `dvc status` reports, less the manifest when it is only its `always changed`."""
    status = json.loads(run_dvc(repo, "status", "--json").stdout)
    return {stage for stage, why in status.items() if [why] != list(ALWAYS_RUNS.values())}


@pytest.mark.parametrize("key,value,expected", [
    ("foreground.parts", ["skin"], {"foreground"}),
    ("holes.ratio_max", 0.5, {"fetch_masks", "holes"}),
    ("weights.timeout_s", 2.0, {"weights"}),
    ("models.pconv.w_tv", 0.2, {"train@pconv"}),
    ("train.batch_size", 3, {f"train@{name}" for name in ("ce", "pconv", "gc", "lama", "ours", "biharmonic", "toy")}),
    ("eval.fid_batch_size", 8, {"evaluate"}),
    ("holes.semantic.margin", 0.1, {"holes_semantic"}),
    ("holes.train_mix", 0.25, {f"train@{name}" for name in ("ce", "pconv", "gc", "lama", "ours", "biharmonic", "toy")}),
    # The folder sources' keys (README: "Your own data"), each read by exactly these stages.
    ("data.folder.images", "/srv/faces", {"manifest", "prepare"}),
    ("data.folder.foreground", "/srv/parsing", {"manifest", "prepare", "foreground"}),
    ("data.folder.label_ids", [1, 17], {"foreground"}),
    ("data.folder.square", "pad", {"prepare", "foreground"}),
    ("holes.folder.test_share", 0.3, {"holes"}),
    ("holes.folder.test", "/srv/masks/test", {"manifest", "holes"}),
])
def test_a_param_change_stales_only_its_dependants(micro_pipeline, key, value, expected):
    original = edit_params(micro_pipeline, key, value)
    try:
        stale = stale_stages(micro_pipeline)
    finally:
        (micro_pipeline / "params.yaml").write_text(original)
    # `dvc status` names the stages whose own deps changed; their dependants follow on repro.
    assert stale == expected


@pytest.mark.parametrize("path,expected", [
    ("fgi/methods/gc/networks.py", {"train@gc", "predict@gc"}),
    ("fgi/evaluation/stats.py", {"evaluate", "report"}),
    ("fgi/data/dataset.py", {f"{stage}@{name}" for stage in ("train", "predict")
                             for name in ("ce", "pconv", "gc", "lama", "ours", "biharmonic", "toy")}),
    ("plugins/toy/toy_method.py", {"train@toy", "predict@toy"}),
    ("fgi/apps/serve.py", set()),
])
def test_a_code_edit_stales_exactly_the_stages_that_run_it(micro_pipeline, path, expected):
    original = (micro_pipeline / path).read_text()
    (micro_pipeline / path).write_text(original + "\n# an edit\n")
    try:
        stale = stale_stages(micro_pipeline)
    finally:
        (micro_pipeline / path).write_text(original)
    assert stale == expected


def test_training_outputs_and_runs(micro_pipeline):
    import torch
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{micro_pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgi-micro")
    classical = torch.load(micro_pipeline / "models" / "biharmonic" / "model.pt", weights_only=True)
    assert (classical["model"], classical["step"], classical["generator"]) == ("biharmonic", 0, {})
    for name in ("ours", "ce", "pconv", "gc", "lama", "toy"):
        final = torch.load(micro_pipeline / "models" / name / "model.pt", weights_only=True)
        assert final["model"] == name and final["step"] == 2
        # Only what its stage reads: another section's edit, which does not rerun it, cannot stale it.
        assert set(final["params"]) == {"seed", "train", "holes", "models"} and list(final["params"]["models"]) == [name]
        assert final["params"]["holes"] == {"train_mix": 0.0}
        assert (micro_pipeline / "models" / name / "val.csv").read_text().startswith("step,epoch,psnr_hole")
        (run,) = client.search_runs([experiment.experiment_id], f"tags.dvc_stage = 'train@{name}'")
        assert run.data.tags["model"] == name and run.data.tags["device"] == "cpu"
        assert run.data.tags["precision"] == "float32" and run.data.tags["processor"]  # micro: amp float32
        assert "random-init (offline)" in run.data.tags["weights_provenance"]
        assert run.data.params[f"models.{name}.width"] == "0.125"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "g/total")] == [1, 2]
        assert "val/psnr_hole" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "samples" in artifacts
        assert {a.path for a in client.list_artifacts(run.info.run_id, "generator")} == {
            "generator/model.pt", "generator/checkpoint.json"}, "the training run logged its generator"
    assert not client.search_logged_models([experiment.experiment_id]), "no pickled MLflow models"
