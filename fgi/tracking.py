"""MLflow conventions of the project (docs/design.md §6).

* Tracking URI: `$MLFLOW_TRACKING_URI` if set, else `sqlite:///<root>/mlflow.db`
  where root is `$DVC_ROOT` (set by DVC, also inside `dvc exp run --temp`
  copies) or the repository root. Artifacts of a local store go to
  `<root>/mlartifacts`; behind a tracking server (`http(s)://`, e.g. a team's
  `fgi ui`) they go where the server says — it proxies them to its own
  storage, so no client writes to its own disk. Never the `./mlruns` file
  store: MLflow 3 refuses it.
* The final generator is logged as the artifact folder `generator/`: the
  train stage's `model.pt` (tensors and plain data, loaded with
  `torch.load(weights_only=True)`) and `checkpoint.json` describing it. No
  pickled MLflow model: loading one from a shared server would run code from
  whoever logged it. `load_mlflow_generator` (`fgi inpaint` and `fgi serve`
  `--model-uri`) refuses those unless told `--trust-pickled-model`; unlike
  logging, loading is no side channel: its failures are `UserError`s.
* One experiment per profile, one run per stage execution, named after
  `$DVC_STAGE` and tagged with the stage, the DVC experiment, the git commit,
  the model, the device, the profile and the weights' provenance.
* Tracking is a side channel: any failure (unreachable server, locked
  database, a bad artifact) becomes ONE warning and the run goes on without
  tracking. A training run is never killed by MLflow.

`mlflow` and `torch` are imported lazily so `fgi` imports fast and works without them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from fgi.config import flatten

# Telemetry off for every MLflow client and server this project starts.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def metric_name(name: str) -> str:
    """A name MLflow accepts: `pairs_per_bin.(0.1,0.2]` -> `pairs_per_bin.0.1-0.2`."""
    name = name.translate({ord("("): None, ord(")"): None, ord("["): None, ord("]"): None, ord(","): "-"})
    return re.sub(r"[^\w\-. :/]", "_", name)


class TrackingWarning(UserWarning):
    """MLflow tracking failed; the caller goes on without it."""


def project_root(start: Path | None = None) -> Path:
    """`$DVC_ROOT`, else the nearest folder up from `start` holding `.dvc` or `.git`."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir() or (folder / ".git").exists():
            return folder
    return here


def tracking_uri(root: Path | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def artifact_root(root: Path | None = None) -> str:
    return ((root or project_root()) / "mlartifacts").as_uri()


def is_server_uri(uri: str) -> bool:
    """Whether `uri` names a tracking server, which decides (and proxies) where artifacts go."""
    return uri.startswith(("http://", "https://"))


CHECKPOINT_FORMAT = "fgi-checkpoint"
CHECKPOINT_DESCRIPTION = "checkpoint.json"


def describe_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """What `checkpoint.json` says of a train-stage `model.pt`: enough to pick and check it
    without downloading it, and its sha256 to detect a partial or replaced upload.

    Reading it with `weights_only=True` here also proves the file loads the safe way."""
    import torch  # noqa: PLC0415 - only logging a generator needs torch; `fgi ui` starts without it

    data = Path(checkpoint).read_bytes()
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {"format": CHECKPOINT_FORMAT, "format_version": 1, "file": Path(checkpoint).name,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "model": content["model"], "size": content["size"], "step": content.get("step"),
            "weights_provenance": content.get("weights_provenance"),
            "torch_version": torch.__version__,
            "load": "torch.load(weights_only=True), rebuilt by fgi.inference.load_generator"}


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or project_root(),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def stage_tags(**extra: Any) -> dict[str, str]:
    """The tags of docs/design.md §6; `extra` adds model, device, profile, weights_provenance."""
    tags = {
        "dvc_stage": os.environ.get("DVC_STAGE", "manual"),
        "dvc_exp": os.environ.get("DVC_EXP_NAME", "workspace"),
        "git_commit": git_commit(),
    }
    tags.update({key: str(value) for key, value in extra.items() if value is not None})
    return tags


def _server_reachable(uri: str, timeout: float = 3.0) -> bool:
    """MLflow's HTTP client retries for minutes; ask the server's /health once instead."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Run:
    """One MLflow run; use as a context manager. Every method is failure tolerant.

    >>> with Run("fgi-demo", tags=stage_tags(model="ours")) as run:
    ...     run.log_params({"train": {"batch_size": 8}})
    ...     run.log_metrics({"loss": 0.3}, step=10)
    """

    def __init__(self, experiment: str, run_name: str | None = None,
                 tags: dict[str, str] | None = None, enabled: bool = True,
                 root: Path | None = None):
        self.experiment = experiment
        self.run_name = run_name or os.environ.get("DVC_STAGE", "manual")
        self.tags = tags or stage_tags()
        self.enabled = enabled
        self.root = root or project_root()
        self.run_id: str | None = None
        self._mlflow = None

    # -- failure handling --------------------------------------------------
    def _fail(self, what: str, err: BaseException) -> None:
        warnings.warn(f"MLflow tracking disabled for this run: {what} failed: "
                      f"{type(err).__name__}: {err}", TrackingWarning, stacklevel=3)
        self.enabled = False

    def _call(self, what: str, fn):
        if not self.enabled or self._mlflow is None:
            return None
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - tracking must never kill the caller
            self._fail(what, err)
            return None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Run":
        if not self.enabled:
            return self
        uri = tracking_uri(self.root)
        if is_server_uri(uri) and not _server_reachable(uri):
            self._fail("connecting", ConnectionError(f"no MLflow server answers at {uri}"))
            return self
        try:
            import mlflow  # noqa: PLC0415 - ~1 s of imports that a run with tracking off never pays

            mlflow.set_tracking_uri(uri)
            if mlflow.get_experiment_by_name(self.experiment) is None:
                # A server stores artifacts where it is configured to; a path on this
                # machine's disk would be a dead link to everyone else.
                mlflow.create_experiment(self.experiment, artifact_location=None if is_server_uri(uri)
                                         else artifact_root(self.root))
            experiment = mlflow.set_experiment(self.experiment)
            if is_server_uri(uri) and experiment.artifact_location.startswith("file:"):
                warnings.warn(f"MLflow experiment {self.experiment!r} on {uri} keeps its artifacts at "
                              f"{experiment.artifact_location}, a folder on each client's own disk (it was "
                              "created without the server); they stay on this machine. Log to a new experiment "
                              "(tracking.experiment) to have the server store them", TrackingWarning, stacklevel=2)
            run = mlflow.start_run(run_name=self.run_name, tags=self.tags)
            self.run_id = run.info.run_id
            self._mlflow = mlflow
        except Exception as err:  # noqa: BLE001
            self._fail("starting the run", err)
        return self

    def end(self, status: str = "FINISHED") -> None:
        """End the run, even after a failure disabled logging, so it is not left RUNNING."""
        if self._mlflow is None:
            return
        try:
            self._mlflow.end_run(status=status)
        except Exception as err:  # noqa: BLE001
            if self.enabled:
                self._fail("ending the run", err)
        self._mlflow = None

    def __enter__(self) -> "Run":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end("FINISHED" if exc_type is None else "FAILED")

    # -- logging -----------------------------------------------------------
    def log_params(self, params: dict) -> None:
        """Nested dicts are flattened to dotted keys (`models.ours.lr_g`)."""
        flat = {key: str(value) for key, value in flatten(params).items()}
        self._call("logging params", lambda: self._mlflow.log_params(flat))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        # A non-finite value (PSNR of a perfect prediction) is no metric MLflow can plot.
        clean = {metric_name(key): float(value) for key, value in metrics.items()
                 if value is not None and math.isfinite(float(value))}
        self._call("logging metrics", lambda: self._mlflow.log_metrics(clean, step=step))

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._call("setting tags",
                   lambda: self._mlflow.set_tags({key: str(value) for key, value in tags.items()}))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._call(f"logging {path}", lambda: self._mlflow.log_artifact(str(path), artifact_path))

    def log_figure(self, figure, artifact_file: str) -> None:
        """A matplotlib figure, stored as the image `artifact_file` (e.g. `samples/step_100.png`)."""
        self._call(f"logging figure {artifact_file}",
                   lambda: self._mlflow.log_figure(figure, artifact_file))

    def log_image(self, image, artifact_file: str) -> None:
        """A uint8 (H, W, 3) array as a PNG artifact (e.g. `samples/step_000100.png`)."""
        self._call(f"logging image {artifact_file}", lambda: self._mlflow.log_image(image, artifact_file))

    def log_table(self, frame, artifact_file: str) -> None:
        """A pandas DataFrame as a CSV artifact (readable everywhere, unlike MLflow's JSON tables)."""
        def write_and_log():
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / Path(artifact_file).name
                frame.to_csv(path, index=False)
                parent = str(Path(artifact_file).parent)
                self._mlflow.log_artifact(str(path), None if parent == "." else parent)
        self._call(f"logging table {artifact_file}", write_and_log)

    def log_generator(self, checkpoint: str | Path, name: str = "generator") -> None:
        """A train-stage `model.pt` as `<name>/model.pt` plus `<name>/checkpoint.json`,
        loadable as `runs:/<run_id>/<name>` by `fgi inpaint --model-uri` without unpickling."""
        def log():
            description = describe_checkpoint(Path(checkpoint))
            with tempfile.TemporaryDirectory() as folder:
                described = Path(folder) / CHECKPOINT_DESCRIPTION
                described.write_text(json.dumps(description, indent=2) + "\n")
                self._mlflow.log_artifact(str(checkpoint), name)
                self._mlflow.log_artifact(str(described), name)
        self._call(f"logging generator {checkpoint}", log)
