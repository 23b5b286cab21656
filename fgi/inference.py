"""Running a trained method: what `predict`, `fgi inpaint` and `fgi serve` share.

* `device()`: `cuda` when available, else `cpu`.
* `load_generator(path)`: a method from the `model.pt` its train stage wrote
  (the method's name and params travel inside it, so any registered method
  loads, a classical one too), read with `torch.load(weights_only=True)`.
* `load_mlflow_generator(uri)`: the same from an MLflow run's artifacts.
* precision: float32, or bfloat16 autocast where the device computes it natively.
* `composite_uint8`: the input's own bytes where known, the prediction's in the hole.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from fgi import methods
from fgi.config import method_section
from fgi.data.dataset import to_uint8
from fgi.errors import UserError
from fgi.tracking import CHECKPOINT_DESCRIPTION, CHECKPOINT_FORMAT


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


PRECISIONS = ("auto", "float32", "bfloat16")


def bfloat16_is_native(where: torch.device) -> bool:
    """Whether `where` computes bfloat16 convolutions in hardware (CUDA sm80+, or a CPU with
    AVX512-BF16/AMX that oneDNN uses); elsewhere bfloat16 is emulated and slower than float32."""
    if where.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def cpu_name() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def processor(where: torch.device) -> str:
    """What computes on `where`: the GPU's name, or the CPU's."""
    return torch.cuda.get_device_name(where) if where.type == "cuda" else cpu_name()


def resolve_precision(precision: str, where: torch.device) -> str:
    """The precision to run at, float32 or bfloat16: `auto` is bfloat16 where it is native."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if bfloat16_is_native(where) else "float32"
    return precision


def for_inference(generator: nn.Module, precision: str, where: torch.device) -> str:
    """Ready `generator` (in place) for `inference_autocast(precision)`; returns the resolved precision.

    bfloat16 runs under autocast, the path the models are trained with on a GPU: weights stay
    float32, convolutions run in bfloat16, and what must stay exact (partial convolution's mask
    counts, softmax) stays float32. Weights (and inputs, `memory_format`) are channels_last
    where oneDNN runs the network faster on it.
    """
    precision = resolve_precision(precision, where)
    generator.to(memory_format=memory_format(generator, precision))
    return precision


def memory_format(generator: nn.Module, precision: str) -> torch.memory_format:
    """The layout `generator` runs in at `precision`: channels_last in bfloat16, which oneDNN's
    bfloat16 kernels want (ours at 256²: 0.45 s float32 -> 0.10 s; benchmarks/inference.py), and in
    float32 for a network that says so (`channels_last_float32`: GC's generator, whose float32
    forward it makes ~1.1x faster; benchmarks/releases.py). Elsewhere float32 stays NCHW: LaMa's
    matches its release bit for bit there, and 1.2e-5 apart in channels_last."""
    if precision == "bfloat16" or getattr(generator, "channels_last_float32", False):
        return torch.channels_last
    return torch.contiguous_format


def inference_autocast(precision: str, where: torch.device):
    """The autocast context for a resolved precision (disabled for float32)."""
    return torch.autocast(where.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def load_generator(path: Path, map_location: torch.device | str = "cpu") -> tuple[str, nn.Module, int]:
    """(method name, generator in eval mode, working size) from a `model.pt` the train stage wrote;
    a classical method's generator is its solver (its model.pt holds its params only)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: no trained model there; run `dvc repro train@<model>` or pass the "
                        "folder that holds model.pt")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        name, size = checkpoint["model"], checkpoint["size"]
        method = methods.get(name)
        cfg = checkpoint["cfg"]
        if method.importer is not None and "released" not in cfg:  # written before the key existed: trained
            cfg = {**cfg, "released": {"url": "", "path": "", "sha256": ""}}
        generator = method.generator(method_section(name, cfg), size)
        if method.learned:
            generator.load_state_dict(checkpoint["generator"])
            generator = generator.to(map_location).eval()
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file is the user's to replace
        raise UserError(f"{path}: not a model checkpoint of this project ({type(err).__name__}: {err})") from err
    return name, generator, size


def released_record(path: Path) -> dict | None:
    """The `released` record a model.pt holds (None: trained here, not imported), its weights
    memory-mapped, not read."""
    path = Path(path)
    checkpoint = torch.load(path / "model.pt" if path.is_dir() else path, map_location="cpu",
                            weights_only=True, mmap=True)
    return checkpoint.get("released")


def prepare_generator(generator, precision: str, where: torch.device) -> str:
    """`for_inference` for a network; a classical solver runs as it is, in float32."""
    return for_inference(generator, precision, where) if isinstance(generator, nn.Module) else "float32"


def composite_uint8(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> np.ndarray:
    """uint8 (N, H, W, 3): the input's own bytes where known, the prediction's in the hole."""
    inside = hole[:, 0].cpu().numpy() > 0.5  # (N, H, W)
    return np.where(inside[..., None], to_uint8(prediction), to_uint8(image))


# ---------------------------------------------------------------- a generator logged with MLflow

TRUST_FLAG = "--trust-pickled-model"
TRUST_HELP = ("let --model-uri load a pickled MLflow PyTorch model, which runs code from whoever logged it: "
              "only if you trust everyone who can write to that tracking server")


def load_mlflow_generator(uri: str, size: int | None, map_location,
                          trust_pickled: bool = False) -> tuple[Any, int]:
    """A generator logged with MLflow and its working size.

    The safe format (`fgi.tracking.Run.log_generator`: a `model.pt` and `checkpoint.json`) is
    read with `torch.load(weights_only=True)`, which builds tensors and plain data only, and
    knows its size. An MLflow PyTorch model (an `MLmodel` folder) is unpickled on load, which runs
    any code its author put in it: refused unless `trust_pickled`; its size is --size, else the
    run's `data.size` param."""
    with tempfile.TemporaryDirectory(prefix="fgi-model-") as folder:
        local = _download(uri, Path(folder))
        # A checkpoint wins over an MLmodel beside it: its loader cannot run code.
        checkpoint = local.is_file() or any((local / name).is_file() for name in (CHECKPOINT_DESCRIPTION, "model.pt"))
        if checkpoint or not (local / "MLmodel").is_file():
            return _load_checkpoint_artifact(uri, local, size, map_location)
        return _load_mlflow_pytorch(uri, local, size, map_location, trust_pickled)


def _download(uri: str, folder: Path) -> Path:
    import mlflow.artifacts  # noqa: PLC0415 - MLflow takes ~1 s to import; only --model-uri needs it

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    except Exception as err:  # noqa: BLE001 - a wrong URI or tracking store is the user's to fix
        raise UserError(f"{uri}: cannot load the MLflow model ({type(err).__name__}: {err}); check the "
                        "URI (runs:/<run_id>/generator) and MLFLOW_TRACKING_URI") from err


def _load_checkpoint_artifact(uri: str, local: Path, size: int | None,
                              map_location) -> tuple[Any, int]:
    description = {}
    if local.is_dir() and (local / CHECKPOINT_DESCRIPTION).is_file():
        try:
            description = json.loads((local / CHECKPOINT_DESCRIPTION).read_text())
            if not isinstance(description, dict) or description.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"no \"format\": \"{CHECKPOINT_FORMAT}\" object")
            name = description.get("file", "model.pt")
            if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
                raise ValueError(f"file {name!r} is not a file name")
            if not isinstance(description.get("sha256"), str):
                raise ValueError("no sha256")
        except ValueError as err:
            raise UserError(f"{uri}: {CHECKPOINT_DESCRIPTION} is not a checkpoint description ({err}); "
                            "re-log the generator") from err
    checkpoint = local / description.get("file", "model.pt") if local.is_dir() else local
    if not checkpoint.is_file():
        raise UserError(f"{uri}: neither a generator logged by fgi (model.pt) nor an MLflow model (MLmodel); "
                        "check the URI, e.g. runs:/<run_id>/generator")
    if description and hashlib.sha256(checkpoint.read_bytes()).hexdigest() != description["sha256"]:
        raise UserError(f"{uri}: {checkpoint.name} does not match the sha256 in {CHECKPOINT_DESCRIPTION}; "
                        "the upload is incomplete or the file was replaced; re-log the generator")
    try:
        _, generator, trained_size = load_generator(checkpoint, map_location)
    except UserError as err:
        if isinstance(err.__cause__, pickle.UnpicklingError):
            raise UserError(f"{uri}: {checkpoint.name} holds objects other than tensors and plain data, so it was "
                            f"refused unread ({_refused_global(err.__cause__)}); fgi never writes such a file: "
                            "do not load it, re-log the generator from the model.pt of a trusted training run"
                            ) from err
        raise UserError(f"{uri}: {checkpoint.name} is not a model checkpoint of this project "
                        f"({err.__cause__ or err}); re-log the generator") from err
    if size is not None and size != trained_size:
        raise UserError(f"{uri}: the model works at {trained_size}x{trained_size}, not --size {size}; drop --size")
    return generator, trained_size


def _refused_global(err: Exception) -> str:
    """What torch's weights-only refusal says the file asked for (past its generic advice)."""
    text = str(err)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"it asks for {named.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(("Weights only load failed", "Check the doc"))),
                type(err).__name__)


def _load_mlflow_pytorch(uri: str, local: Path, size: int | None, map_location,
                         trust_pickled: bool) -> tuple[Any, int]:
    try:
        flavors = yaml.safe_load((local / "MLmodel").read_text()).get("flavors") or {}
    except (yaml.YAMLError, AttributeError) as err:
        raise UserError(f"{uri}: its MLmodel file is not YAML ({err}); check the URI") from err
    if "pytorch" not in flavors:
        raise UserError(f"{uri}: an MLflow model without the pytorch flavor ({', '.join(flavors) or 'none'}); "
                        "pass a generator logged by fgi, e.g. runs:/<run_id>/generator")
    if not trust_pickled:
        what = ("a pickled MLflow PyTorch model" if (local / "data" / "model.pth").is_file()
                else "an MLflow PyTorch model exported with torch.export (its archive can hold pickles)")
        raise UserError(f"{uri}: {what}; loading it unpickles it, which runs any code whoever logged it put "
                        f"in it. Pass {TRUST_FLAG} only if you trust everyone who can write to that tracking "
                        "server, or re-log the generator with this fgi version (Run.log_generator: model.pt, "
                        "loaded without unpickling)")
    import mlflow  # noqa: PLC0415 - as in _download
    import mlflow.pytorch

    try:
        generator = mlflow.pytorch.load_model(str(local), map_location=map_location)
        if size is None and uri.startswith("runs:/"):
            run_params = mlflow.get_run(uri.removeprefix("runs:/").split("/")[0]).data.params
            size = int(run_params["data.size"]) if "data.size" in run_params else None
    except Exception as err:  # noqa: BLE001 - a broken model or tracking store is the user's to fix
        raise UserError(f"{uri}: cannot load the MLflow model ({type(err).__name__}: {err}); check the "
                        "URI (runs:/<run_id>/generator) and MLFLOW_TRACKING_URI") from err
    if size is None:
        raise UserError(f"{uri}: the model's working size is unknown; pass --size (its data.size)")
    return generator.eval(), size
