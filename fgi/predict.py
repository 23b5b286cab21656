"""Inpaint the fixed test pairs with one method (docs/design.md §3, §4).

Writes `data/predictions/<method>/<image_id>.png` for every row of
`data/holes/test_pairs.csv`: RGB uint8, composited — the known pixels are the
input's, byte for byte; only the hole pixels come from the method. Learned
models load `models/<name>/model.pt`; `biharmonic` runs scikit-image.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fgi import files, progress
from fgi.config import Params, model_section
from fgi.data.dataset import PairSet, to_uint8
from fgi.errors import UserError
from fgi.models import LEARNED, make_classical, make_generator


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
    counts, softmax) stays float32. oneDNN's bfloat16 kernels want channels_last weights and
    inputs; measured on ours at 256²: 0.45 s float32 -> 0.10 s (benchmarks/inference.py).
    """
    precision = resolve_precision(precision, where)
    if precision == "bfloat16":
        generator.to(memory_format=torch.channels_last)
    return precision


def inference_autocast(precision: str, where: torch.device):
    """The autocast context for a resolved precision (disabled for float32)."""
    return torch.autocast(where.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def load_generator(path: Path, map_location: torch.device | str = "cpu") -> tuple[str, nn.Module, int]:
    """(model name, generator in eval mode, working size) from a `model.pt` the train stage wrote."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: no trained model there; run `dvc repro train@<model>` or pass the "
                        "folder that holds model.pt")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        name, size = checkpoint["model"], checkpoint["size"]
        generator = make_generator(name, model_section(name, checkpoint["cfg"]), size)
        generator.load_state_dict(checkpoint["generator"])
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file is the user's to replace
        raise UserError(f"{path}: not a model checkpoint of this project ({type(err).__name__}: {err})") from err
    return name, generator.to(map_location).eval(), size


def composite_uint8(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> np.ndarray:
    """uint8 (N, H, W, 3): the input's own bytes where known, the prediction's in the hole."""
    inside = hole[:, 0].cpu().numpy() > 0.5  # (N, H, W)
    return np.where(inside[..., None], to_uint8(prediction), to_uint8(image))


def predict(params: Params, method: str, out: Path, models: Path = Path("models"),
            prepared: Path = Path("data/prepared"), foreground: Path = Path("data/foreground"),
            holes: Path = Path("data/holes")) -> dict:
    """Write the composited outputs of `method` for every test pair; return a summary."""
    pairs = PairSet(prepared, foreground, holes)
    loader = DataLoader(pairs, batch_size=params.predict.batch_size, shuffle=False)
    where = device()
    if method in LEARNED:
        _, model, size = load_generator(models / method, where)
        if size != params.data.size:
            raise UserError(f"{models / method / 'model.pt'} was trained at {size}², data.size is "
                            f"{params.data.size}; rerun `dvc repro train@{method}`")
    elif method == "biharmonic":
        model = make_classical(method, params.models.biharmonic)
        model.workers = 0  # every core
    else:
        raise UserError(f"predict: unknown method {method!r}; choose one of {', '.join((*LEARNED, 'biharmonic'))}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        for image, hole, _, image_ids in progress.bar(loader, desc=f"predict@{method}", unit="batch"):
            image, hole = image.to(where), hole.to(where)
            prediction = model(image * (1 - hole), hole)
            for image_id, filled in zip(image_ids, composite_uint8(prediction.float(), image, hole)):
                files.save_png(out / f"{image_id}.png", filled)
    seconds = time.perf_counter() - start
    return {"images": len(pairs), "seconds_per_image": round(seconds / max(len(pairs), 1), 5),
            "device": where.type}
