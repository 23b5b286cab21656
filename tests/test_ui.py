"""`fgi ui` (what `make ui` runs): HTTP 200 within 30 s, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

from conftest import ctrl_c_stops_the_group, free_port, group_alive, kill_leftovers, wait_until_ready
from fgi.apps import ui


def test_server_command_has_one_worker_and_proxies_artifacts(tmp_path):
    command = ui.server_command("sqlite:///team.db", "s3://bucket/mlflow", "0.0.0.0", 5000)
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:///team.db"
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == "s3://bucket/mlflow"
    # Given a default artifact root, MLflow would store it in new experiments and clients would write there.
    assert "--default-artifact-root" not in command and "--allowed-hosts" not in command
    with_hosts = ui.server_command("sqlite:///team.db", "s3://b", "0.0.0.0", 5000, "mlflow.team.example:5000")
    assert with_hosts[with_hosts.index("--allowed-hosts") + 1] == "mlflow.team.example:5000"
    # This checkout's own store: new experiments get the folder the pipeline writes to directly.
    local = ui.server_command(f"sqlite:///{tmp_path}/mlflow.db", (tmp_path / "mlartifacts").as_uri(), "127.0.0.1",
                              5000, local=True)
    assert local[local.index("--default-artifact-root") + 1] == (tmp_path / "mlartifacts").as_uri()
    assert "--serve-artifacts" not in local and "--artifacts-destination" not in local


def test_defaults_are_this_checkouts_store_unless_the_pipeline_logs_to_a_database(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert ui.default_backend_store_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team.example:5000")  # a client of a team server
    assert ui.default_backend_store_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow@db/mlflow")
    assert ui.default_backend_store_uri(tmp_path) == "postgresql://mlflow@db/mlflow"
    monkeypatch.chdir(tmp_path)
    assert ui.artifacts_uri("artifacts") == (tmp_path / "artifacts").as_uri()
    assert ui.artifacts_uri("s3://bucket/mlflow") == "s3://bucket/mlflow"


def test_what_clients_set_and_when_mlflow_answers_them():
    assert ui.client_uri("127.0.0.1", 5000) == "http://127.0.0.1:5000"
    assert ui.client_uri("::1", 5000) == "http://[::1]:5000"
    assert ui.client_uri("0.0.0.0", 5000) in (f"http://{socket.getfqdn()}:5000", f"http://{socket.gethostname()}:5000")
    assert ui.is_loopback("localhost") and ui.is_loopback("127.0.0.1") and ui.is_loopback("::1")
    assert not ui.is_loopback("0.0.0.0") and not ui.is_loopback("mlflow.team.example")
    assert ui.answered_by_default("192.168.1.20") and ui.answered_by_default("localhost")
    assert ui.answered_by_default("172.31.0.9") and ui.answered_by_default("[::1]")
    assert not ui.answered_by_default("[fd12::1]"), "MLflow's fd00:* pattern does not match a bracketed Host"
    assert not ui.answered_by_default("mlflow.team.example") and not ui.answered_by_default("8.8.8.8")
    assert not ui.answered_by_default("172.32.0.1")


def test_ui_answers_and_ctrl_c_stops_the_whole_group(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    env = dict(os.environ, DVC_ROOT=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    port = free_port()
    # Its own session, like a terminal's foreground job: SIGINT goes to the launcher only.
    launcher = subprocess.Popen([sys.executable, "-m", "fgi.cli", "ui", "--port", str(port)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    server_pid = None
    try:
        first_line = launcher.stdout.readline()
        server_pid = int(re.search(r"server pid (\d+)", first_line).group(1))
        assert f"sqlite:///{tmp_path}" in first_line and (tmp_path / "mlartifacts").as_uri() in first_line
        clients = launcher.stdout.readline().strip()
        assert clients == f"Clients log here with: export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}"
        wait_until_ready(launcher, f"http://127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
            assert reply.status == 200, "the MLflow UI's page did not load"
        assert group_alive(server_pid)

        ctrl_c_stops_the_group(launcher, server_pid)
    finally:
        kill_leftovers(launcher, server_pid)


def test_binding_the_network_warns_that_there_is_no_authentication(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    env = dict(os.environ, DVC_ROOT=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "fgi.cli", "ui", "--host", "0.0.0.0", "--port", str(free_port())]
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    server_pid = None
    try:
        server_pid = int(re.search(r"server pid (\d+)", launcher.stdout.readline()).group(1))
        clients = launcher.stdout.readline()
        uri = ui.client_uri("0.0.0.0", 1).removesuffix(":1")
        assert f"export MLFLOW_TRACKING_URI={uri}:" in clients
        assert "only with --allowed-hosts" in clients  # MLflow refuses requests addressed to a name by default
        warning = launcher.stderr.readline()
        assert warning.startswith("warning: --host 0.0.0.0: this MLflow server has no authentication;")
        launcher.send_signal(signal.SIGINT)  # before the server is up: the launcher still stops it all
        assert launcher.wait(timeout=30) == 0
        assert not group_alive(server_pid)
    finally:
        kill_leftovers(launcher, server_pid)
