"""MLflow tracking: a run written through fgi.tracking reads back whole; failures only warn."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch

from conftest import free_port, save_random_ours
from fgi import tracking
from fgi.inference import load_generator, load_mlflow_generator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_uri_defaults_to_sqlite_under_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.artifact_root() == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_project_root_is_found_from_a_subfolder(monkeypatch, tmp_path):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / ".dvc").mkdir()
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert tracking.project_root(sub) == tmp_path.resolve()


def test_a_run_reads_back_with_params_metrics_tags_and_artifacts(mlflow_db, monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("DVC_STAGE", "train@ours")
    tags = tracking.stage_tags(model="ours", device="cpu", profile="micro",
                               weights_provenance="random-init (offline)")
    with tracking.Run("fgi-test", tags=tags) as run:
        run.log_params({"train": {"batch_size": 8}, "models": {"ours": {"lr_g": 1e-4}}})
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            run.log_metrics({"loss/g": loss, "psnr": float("inf")}, step=step)
        figure, axes = plt.subplots()
        axes.plot([0, 1], [1, 0])
        run.log_figure(figure, "curves/loss.png")
        plt.close(figure)
        run.log_table(pd.DataFrame({"method": ["ours"], "psnr": [30.5]}), "tables/table1.csv")
        run.log_generator(save_random_ours(tmp_path / "models" / "ours") / "model.pt", "generator")

    runs = mlflow.search_runs(experiment_names=["fgi-test"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["tags.mlflow.runName"] == "train@ours"
    assert row["tags.dvc_stage"] == "train@ours"
    assert row["tags.model"] == "ours" and row["tags.device"] == "cpu"
    assert row["tags.weights_provenance"] == "random-init (offline)"
    assert row["params.train.batch_size"] == "8"
    assert row["params.models.ours.lr_g"] == "0.0001"
    assert row["metrics.loss/g"] == 0.25
    assert "metrics.psnr" not in runs.columns  # non-finite values are not logged
    assert row["status"] == "FINISHED"

    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(run.run_id, "loss/g")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"curves", "tables"} <= artifacts
    table = Path(mlflow.artifacts.download_artifacts(run_id=run.run_id, artifact_path="tables/table1.csv",
                                                     dst_path=str(tmp_path / "dl")))
    assert pd.read_csv(table)["psnr"].tolist() == [30.5]
    experiment = mlflow.get_experiment_by_name("fgi-test")
    assert experiment.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert {a.path for a in client.list_artifacts(run.run_id, "generator")} == {
        "generator/model.pt", "generator/checkpoint.json"}
    assert not client.search_logged_models([experiment.experiment_id]), "no pickled MLflow model"
    generator, size = load_mlflow_generator(f"runs:/{run.run_id}/generator", None, "cpu")
    _, original, _ = load_generator(tmp_path / "models" / "ours")
    assert size == 32
    for a, b in zip(generator.state_dict().values(), original.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_checkpoint_description_names_the_model_and_its_hash(tmp_path):
    import hashlib
    import json

    checkpoint = save_random_ours(tmp_path / "ours") / "model.pt"
    description = tracking.describe_checkpoint(checkpoint)
    assert description["format"] == "fgi-checkpoint" and description["file"] == "model.pt"
    assert (description["model"], description["size"], description["step"]) == ("ours", 32, 0)
    assert description["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert description["weights_provenance"] == "random-init (offline)"
    json.dumps(description)  # plain data, as checkpoint.json


def test_a_file_that_is_no_safe_checkpoint_is_not_logged(mlflow_db, tmp_path):
    import mlflow

    # A pickled module inside: torch.load(weights_only=True) refuses it, so log_generator does too.
    torch.save({"model": "ours", "size": 32, "generator": torch.nn.Linear(2, 1)}, tmp_path / "model.pt")
    with pytest.warns(tracking.TrackingWarning, match="logging generator"):
        with tracking.Run("fgi-test") as run:
            run.log_generator(tmp_path / "model.pt")
    assert not mlflow.tracking.MlflowClient().list_artifacts(run.run_id)


def test_a_failing_body_marks_the_run_failed(mlflow_db):
    import mlflow

    with pytest.raises(RuntimeError):
        with tracking.Run("fgi-test"):
            raise RuntimeError("training crashed")
    assert mlflow.search_runs(experiment_names=["fgi-test"]).iloc[0]["status"] == "FAILED"


def test_unreachable_server_only_warns_once(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracking.Run("fgi-test") as run:
            run.log_params({"a": 1})
            run.log_metrics({"loss": 1.0}, step=0)
            run.log_table(pd.DataFrame({"a": [1]}), "t.csv")
    messages = [w for w in caught if issubclass(w.category, tracking.TrackingWarning)]
    assert len(messages) == 1
    assert "no MLflow server answers" in str(messages[0].message)
    assert not run.enabled


def test_a_broken_store_only_warns(monkeypatch, tmp_path):
    # A tracking DB path inside a plain file cannot be opened: MLflow raises, we warn.
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    with pytest.warns(tracking.TrackingWarning, match="starting the run"):
        with tracking.Run("fgi-test") as run:
            run.log_metrics({"loss": 1.0}, step=0)
    assert not run.enabled


def test_disabled_tracking_logs_nothing(mlflow_db):
    import mlflow

    with tracking.Run("fgi-test", enabled=False) as run:
        run.log_metrics({"loss": 1.0})
    assert mlflow.get_experiment_by_name("fgi-test") is None
