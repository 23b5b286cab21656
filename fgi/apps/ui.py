"""`fgi ui`: the MLflow UI over this checkout's runs, or a tracking server for a team.

    fgi ui                                     # this checkout's mlflow.db and mlartifacts/
    fgi ui --backend-store-uri postgresql://mlflow@db/mlflow \\
           --artifacts-destination s3://team-bucket/mlflow --host 0.0.0.0

A team's server (`--backend-store-uri` or `--artifacts-destination` given)
proxies artifacts (`mlflow server --serve-artifacts`): experiments it creates
store theirs as `mlflow-artifacts:/...`, which the server maps to
`--artifacts-destination`, so clients that set `MLFLOW_TRACKING_URI` need no
access to the storage. No `--default-artifact-root` there on purpose: given
one, MLflow records it in new experiments and every client writes there
itself. Over this checkout's own store (no option) it is the reverse: new
experiments get `<root>/mlartifacts` itself, since the pipeline logs to the
sqlite file directly and could not resolve `mlflow-artifacts:/`.

The server has no authentication: bound to anything but loopback, anyone who
reaches the port can read, change and delete every run, and log the models
others will load (hence `fgi inpaint --model-uri` never unpickles by default).

`mlflow server` forks workers (and, unless told otherwise, a job-execution
engine of ~10 processes). It is started in a session of its own so that the
whole group can be stopped at once; Ctrl-C or SIGTERM on this launcher stops
that group, first politely, then with SIGKILL.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fgi import tracking


def default_backend_store_uri(root: Path) -> str:
    """`$MLFLOW_TRACKING_URI` when it names a database, else this checkout's `mlflow.db`
    (a server URI there is where the pipeline logs, not a store a server can open)."""
    uri = tracking.tracking_uri(root)
    return f"sqlite:///{root / 'mlflow.db'}" if tracking.is_server_uri(uri) else uri


def artifacts_uri(destination: str) -> str:
    """A URI MLflow resolves the same from any folder: a plain path becomes an absolute file URI."""
    if "://" in destination or destination.startswith("file:"):
        return destination
    return Path(destination).expanduser().resolve().as_uri()


def server_command(backend_store_uri: str, artifacts_destination: str, host: str, port: int,
                   allowed_hosts: str | None = None, local: bool = False) -> list[str]:
    """`mlflow server` proxying artifacts to `artifacts_destination`; `local` (this checkout's
    own store) gives new experiments the folder itself, which the pipeline also writes to
    directly: an `mlflow-artifacts:/` location would be unreadable to a run that logs to the
    sqlite file without the server."""
    storage = (["--default-artifact-root", artifacts_destination] if local
               else ["--serve-artifacts", "--artifacts-destination", artifacts_destination])
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri, *storage,
               "--host", host, "--port", str(port), "--workers", "1"]
    return command + (["--allowed-hosts", allowed_hosts] if allowed_hosts else [])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: whatever it resolves to is reachable from there
        return False


# What MLflow's Host-header check (against DNS rebinding) admits without --allowed-hosts.
ANSWERED_BY_DEFAULT = [ipaddress.ip_network(net) for net in
                       ("127.0.0.1/32", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def answered_by_default(host: str) -> bool:
    """Whether requests addressed to `host` get past MLflow's Host-header check by default."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a name
        return False
    return any(address in net for net in ANSWERED_BY_DEFAULT if net.version == address.version)


def client_uri(host: str, port: int) -> str:
    """The MLFLOW_TRACKING_URI clients set: a wildcard bind is reached by this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
        if host.startswith("localhost"):  # /etc/hosts names this machine localhost first
            host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def probe_url(host: str, port: int, uri: str) -> str:
    """Where this machine asks whether the server is up: through loopback when it listens on
    every interface (its public name may not route back here), else at the clients' URL."""
    if host in ("0.0.0.0", ""):
        return f"http://127.0.0.1:{port}"
    return f"http://[::1]:{port}" if host == "::" else uri


def answers(url: str) -> bool:
    """The server at `url` answers its health check now: with 200, or with a refusal (its
    Host-header check), which also says it is listening."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:  # not listening yet; URLError and timeouts are OSErrors too
        return False


def _stop_group(server: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after `grace_s`. The server is
    reaped on the way: a zombie leader would keep the group "alive" to `killpg(pgid, 0)`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            server.poll()
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def serve(root: Path | None = None, host: str = "127.0.0.1", port: int = 5000,
          backend_store_uri: str | None = None, artifacts_destination: str | None = None,
          allowed_hosts: str | None = None) -> int:
    """Run the server until interrupted; returns its exit code (0 after Ctrl-C)."""
    root = root or tracking.project_root()
    backend = backend_store_uri or default_backend_store_uri(root)
    artifacts = artifacts_uri(artifacts_destination) if artifacts_destination else tracking.artifact_root(root)
    local = backend_store_uri is None and artifacts_destination is None
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    # Before the server starts: a name lookup can take seconds, and a Ctrl-C from here on
    # must stop the server rather than leave it running in its own session.
    uri = client_uri(host, port)
    address = uri.removeprefix("http://")
    refused = not allowed_hosts and not answered_by_default(address.rpartition(":")[0])
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = subprocess.Popen(server_command(backend, artifacts, host, port, allowed_hosts, local=local),
                              env=env, start_new_session=True)
    try:
        kept = f"artifacts in {artifacts}" if local else f"artifacts proxied to {artifacts}"
        print(f"MLflow server on http://{host}:{port} over {backend}, {kept} "
              f"(server pid {server.pid}); Ctrl-C stops it.", flush=True)
        print(f"Clients log here with: export MLFLOW_TRACKING_URI={uri}"
              + (f"  (MLflow answers requests addressed to {address} only with --allowed-hosts {address})"
                 if refused else ""), flush=True)
        if not is_loopback(host):
            print(f"warning: --host {host}: this MLflow server has no authentication; anyone who can reach port "
                  f"{port} can read, change and delete every run and log the models others load; bind it only "
                  "where everyone who can reach it is trusted (VPN, firewall) or put an authenticating proxy in "
                  "front", file=sys.stderr, flush=True)
        # Polled, not wait()ed: a wait() interrupted by the signal holds the lock that reaping needs.
        ready = False
        while not stopping and server.poll() is None:
            if not ready and answers(probe_url(host, port, uri)):
                ready = True
                print(f"Ready: open {uri} in a browser.", flush=True)
            time.sleep(0.2)
    finally:
        # The server may die on its own and leave a worker behind: stop the group anyway.
        _stop_group(server)
    return 0 if stopping else server.returncode
