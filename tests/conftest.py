"""Shared fixtures: a migrated MLflow template DB, and the pipeline in a temporary repo."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MICRO_PARAMS = REPO / "tests" / "micro_params.yaml"
TOY_METHOD = REPO / "tests" / "plugin" / "toy_method.py"
# The micro pipeline also compares a method from outside fgi/: the toy plugin, installed in the
# pipeline's repo as pip would install a package that declares the `fgi.methods` entry point.
PLUGIN_DIR = Path("plugins") / "toy"
TOY_PARAMS = {"width": 0.125, "lr_g": 1.0e-3, "beta1": 0.9, "beta2": 0.999, "w_hole": 6.0}
VENV_BIN = str(Path(sys.executable).parent)

# Tests never show progress bars and never phone home.
os.environ["CI"] = os.environ.get("CI", "true")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An SQLite tracking DB with MLflow's migrations applied, made once per session (~4 s)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template, monkeypatch):
    """A fresh tracking DB (a copy of the template); MLFLOW_TRACKING_URI points at it."""
    path = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    yield uri
    _reset_mlflow()


def _reset_mlflow() -> None:
    """Forget the process-wide tracking URI and active run a test may have left behind."""
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    yield
    if "mlflow" in sys.modules:
        _reset_mlflow()


def free_port() -> int:
    """A loopback port nothing listens on (for servers the tests start or expect to be absent)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def working_tree_files(root: Path = REPO) -> list[str]:
    """Tracked files plus untracked ones git does not ignore: what a commit would hold."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split("\0") if name and (root / name).is_file()]


def install_plugin(folder: Path, entry: str = "toy = toy_method:METHOD", source: Path = TOY_METHOD) -> Path:
    """`source` as module toy_method in `folder`, with the metadata pip writes for a package that
    declares `entry` under [project.entry-points."fgi.methods"]: on sys.path, it is installed."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, folder / "toy_method.py")
    info = folder / "toy_method-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-method\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fgi.methods]\n{entry}\n")
    return folder


def pipeline_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    if (repo / PLUGIN_DIR).is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo / PLUGIN_DIR), env.get("PYTHONPATH")]))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_ROOT", None)
    env["CI"] = "true"
    return env


def run_dvc(repo: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=pipeline_env(repo),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


# The stages `dvc status` names after a full `dvc repro`: none. (The manifest stage depends on the
# folders of the folder sources themselves, so it is no longer always changed.)
ALWAYS_RUNS = {}


def stages_run(repro: subprocess.CompletedProcess) -> set[str]:
    """The stages a `dvc repro` ran (not those it skipped or restored from the run cache)."""
    return set(re.findall(r"^Running stage '([^']+)'", repro.stdout, flags=re.MULTILINE))


def make_pipeline_repo(dest: Path, mlflow_template: Path, params: Path = MICRO_PARAMS) -> Path:
    """Copy the working tree into `dest`, make it a git repo, use `params` as params.yaml."""
    for name in working_tree_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    shutil.copy(params, dest / "params.yaml")
    shutil.copy(mlflow_template, dest / "mlflow.db")
    git = ["git", "-c", "user.name=fgi-test", "-c", "user.email=test@fgi.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "micro"], cwd=dest, check=True)
    return dest


def with_toy(params: Path, dest: Path) -> Path:
    """`params` with the toy plugin listed after the built-in methods, written to `dest`."""
    import yaml

    tree = yaml.safe_load(params.read_text())
    tree["methods"]["toy"] = (PLUGIN_DIR / "toy_method.py").as_posix()
    tree["models"]["toy"] = dict(TOY_PARAMS)
    dest.write_text(yaml.safe_dump(tree, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def micro_pipeline(tmp_path_factory, mlflow_template) -> Path:
    """The whole pipeline reproduced once per session on the micro profile, the built-in methods
    and the toy plugin (tests/plugin/toy_method.py) compared."""
    params = with_toy(MICRO_PARAMS, tmp_path_factory.mktemp("micro-params") / "params.yaml")
    repo = make_pipeline_repo(tmp_path_factory.mktemp("micro-pipeline"), mlflow_template, params)
    install_plugin(repo / PLUGIN_DIR)
    run_dvc(repo, "repro")
    return repo


@contextlib.contextmanager
def plugin_importable(repo: Path):
    """The toy plugin of a pipeline repo installed in this process, as in the repo's stages."""
    from fgi import methods

    sys.path.insert(0, str(repo / PLUGIN_DIR))
    methods.get.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(repo / PLUGIN_DIR))
        sys.modules.pop("toy_method", None)
        methods.get.cache_clear()


@pytest.fixture(autouse=True)
def _toy_plugin_beside_the_micro_pipeline(request):
    """A test that reads the micro pipeline in this process finds its toy plugin installed, as the
    pipeline's own stages do; every other test sees the built-in methods only."""
    if "micro_pipeline" not in request.fixturenames:
        yield
        return
    with plugin_importable(request.getfixturevalue("micro_pipeline")):
        yield


def built_in_cards():
    """The cards of the built-in methods in the paper's table order, as evaluate collects them."""
    from fgi import methods
    from fgi.evaluation.cards import Cards

    return Cards((name, methods.get(name).card()) for name in ("ce", "pconv", "gc", "lama", "ours", "biharmonic"))


def save_random_ours(folder: Path, size: int = 32) -> Path:
    """A random-init `ours` generator at size², saved the way the train stage writes model.pt."""
    import torch

    from fgi.config import load_params, method_config, to_dict
    from fgi.methods.ours.networks import ForegroundGuidedGenerator

    cfg = to_dict(method_config(load_params(MICRO_PARAMS), "ours"))
    torch.manual_seed(0)
    generator = ForegroundGuidedGenerator(size, cfg["width"])
    folder.mkdir(parents=True)
    torch.save({"model": "ours", "step": 0, "size": size, "cfg": cfg, "generator": generator.state_dict(),
                "params": {}, "weights_provenance": "random-init (offline)"}, folder / "model.pt")
    return folder


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def ctrl_c_stops_the_group(launcher: subprocess.Popen, server_pid: int) -> None:
    """SIGINT to the `fgi ui` launcher: it exits 0 and no process of the server's group survives."""
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=30) == 0
    # The launcher returns only once the group is gone (or after its SIGKILL's grace): nothing to wait for.
    assert not group_alive(server_pid), "a process of the MLflow server survived Ctrl-C"


def wait_until_ready(launcher: subprocess.Popen, url: str) -> list[str]:
    """Read the launcher's output (the server's log included) up to its `Ready` line; returns the
    lines read. Blocks on the pipe, not on a clock: a launcher that dies ends the read."""
    lines = []
    for line in launcher.stdout:
        lines.append(line)
        if line.strip() == f"Ready: open {url} in a browser.":
            return lines
    raise AssertionError(f"fgi ui exited with {launcher.wait()} before its server answered:\n" + "".join(lines)[-3000:])


def kill_leftovers(launcher: subprocess.Popen, server_pid: int | None) -> None:
    """After a failed test: no launcher or server process outlives it."""
    if launcher.poll() is None:
        launcher.kill()
    if server_pid and group_alive(server_pid):
        os.killpg(server_pid, signal.SIGKILL)

