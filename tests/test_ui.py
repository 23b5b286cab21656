"""`fgi ui` (what `make ui` runs): HTTP 200 within 30 s, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import free_port
from fgi import ui


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_command_has_one_worker_and_this_checkouts_store(tmp_path):
    command = ui.server_command(tmp_path, "127.0.0.1", 5000)
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--default-artifact-root") + 1] == (tmp_path / "mlartifacts").as_uri()


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
        assert f"sqlite:///{tmp_path}" in first_line
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    status = reply.status
            except OSError:
                time.sleep(0.5)
        assert status == 200, "the MLflow UI did not answer within 30 s"
        assert group_alive(server_pid)

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while group_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(server_pid), "a process of the MLflow server survived Ctrl-C"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if server_pid and group_alive(server_pid):
            os.killpg(server_pid, signal.SIGKILL)
