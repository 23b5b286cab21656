"""Serve the MLflow UI over this checkout's runs, and stop all of it on Ctrl-C.

`mlflow server` forks workers (and, unless told otherwise, a job-execution
engine of ~10 processes). It is started in a session of its own so that the
whole group can be stopped at once; Ctrl-C or SIGTERM on this launcher stops
that group, first politely, then with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fgi import tracking


def server_command(root: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", tracking.tracking_uri(root),
            "--default-artifact-root", tracking.artifact_root(root),
            "--host", host, "--port", str(port), "--workers", "1"]


def _stop_group(pgid: int, grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def serve(root: Path | None = None, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the UI until interrupted; returns the server's exit code (0 after Ctrl-C)."""
    root = root or tracking.project_root()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    server = subprocess.Popen(server_command(root, host, port), env=env, start_new_session=True)
    print(f"MLflow UI on http://{host}:{port} over {tracking.tracking_uri(root)} "
          f"(server pid {server.pid}); Ctrl-C stops it.", flush=True)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        _stop_group(server.pid)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        code = server.wait()
    finally:
        # The server may die on its own and leave a worker behind: stop the group anyway.
        _stop_group(server.pid)
    return 0 if stopping else code
