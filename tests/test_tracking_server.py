"""A team's tracking server, end to end: `fgi ui --backend-store-uri ... --artifacts-destination ...`
takes a run logged through `MLFLOW_TRACKING_URI=http://...`, keeps its artifacts on the server's side,
serves the generator back to `fgi inpaint --model-uri`, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ctrl_c_stops_the_group, free_port, kill_leftovers, save_random_ours, wait_until_ready
from fgi import cli, tracking
from fgi.apps.inpaint import inpaint_image
from fgi.inference import load_generator


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_a_team_server_keeps_runs_and_artifacts_and_serves_the_generator(tmp_path, mlflow_template, monkeypatch):
    from mlflow.tracking import MlflowClient

    server_side, client_side = tmp_path / "server", tmp_path / "client"
    server_side.mkdir()
    client_side.mkdir()
    shutil.copy(mlflow_template, server_side / "team.db")  # migrated already: no 4 s of migrations
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "fgi.cli", "ui", "--backend-store-uri", f"sqlite:///{server_side / 'team.db'}",
         "--artifacts-destination", str(server_side / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=server_side, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # its own session, like a terminal's foreground job
    server_pid = None
    try:
        # Meanwhile, the client: its own folder, the way a teammate's checkout would be.
        monkeypatch.chdir(client_side)
        monkeypatch.setenv("DVC_ROOT", str(client_side))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        checkpoint = save_random_ours(tmp_path / "models" / "ours") / "model.pt"

        first = launcher.stdout.readline()
        server_pid = int(re.search(r"server pid (\d+)", first).group(1))
        assert f"artifacts proxied to {(server_side / 'artifacts').as_uri()}" in first
        assert launcher.stdout.readline().strip() == f"Clients log here with: export MLFLOW_TRACKING_URI={url}"
        wait_until_ready(launcher, url)

        with tracking.Run("fgi-team", tags=tracking.stage_tags(model="ours")) as run:
            run.log_params({"data": {"size": 32}})
            run.log_metrics({"loss/g": 0.5}, step=1)
            (client_side / "notes.json").write_text(json.dumps({"note": "hello"}))
            run.log_artifact(client_side / "notes.json", "notes")
            run.log_generator(checkpoint)
        assert run.enabled, "logging to the server failed"

        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("fgi-team")
        assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
        logged = client.get_run(run.run_id)
        assert logged.data.params["data.size"] == "32" and logged.data.metrics["loss/g"] == 0.5
        assert logged.data.tags["model"] == "ours" and logged.info.status == "FINISHED"
        stored = files_under(server_side / "artifacts")
        for name in ("notes/notes.json", "generator/model.pt", "generator/checkpoint.json"):
            assert any(path.endswith(f"{run.run_id}/artifacts/{name}") for path in stored), (name, stored)
        assert files_under(client_side) == ["notes.json"], "artifacts landed on the client's disk"
        # An experiment made without the server (e.g. the checkout's own mlflow.db, served as is) points
        # at a folder: the client says so instead of filling its own disk unseen.
        client.create_experiment("fgi-local", artifact_location=(tmp_path / "alice" / "mlartifacts").as_uri())
        with pytest.warns(tracking.TrackingWarning, match="a folder on each client's own disk"):
            with tracking.Run("fgi-local") as local_run:
                local_run.log_metrics({"loss/g": 0.4}, step=1)
        assert client.get_run(local_run.run_id).data.metrics["loss/g"] == 0.4

        # The generator comes back through the server, without unpickling.
        Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(tmp_path / "face.png")
        hole = np.zeros((40, 30), np.uint8)
        hole[10:20, 5:25] = 255
        Image.fromarray(hole).save(tmp_path / "mask.png")
        assert cli.main(["inpaint", "--model-uri", f"runs:/{run.run_id}/generator", "--image",
                         str(tmp_path / "face.png"), "--mask", str(tmp_path / "mask.png"),
                         "--out", str(tmp_path / "out.png"), "--precision", "float32"]) == 0
        direct = inpaint_image(load_generator(checkpoint)[1], 32, Image.open(tmp_path / "face.png"), hole > 0,
                               precision="float32")
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(direct))

        ctrl_c_stops_the_group(launcher, server_pid)
    finally:
        kill_leftovers(launcher, server_pid)
