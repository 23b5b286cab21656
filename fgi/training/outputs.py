"""What train@<name> writes besides its checkpoints, however the weights came about: the
validation PSNR and sample grid, and `models/<name>/` (model.pt, curves, samples); shared by
the training loop (`fgi.training.train`), classical methods and released weights
(`fgi.training.released`)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from fgi import files, tracking
from fgi.config import Params, to_dict
from fgi.data.dataset import PairSet, to_uint8
from fgi.data.weights import provenance_tag
from fgi.evaluation import metrics
from fgi.inference import device, processor
from fgi.methods.base import composite, unwrap
from fgi.training.checkpoint import save_atomic, write_curves


def sample_grid(masked: torch.Tensor, filled: torch.Tensor, image: torch.Tensor) -> np.ndarray:
    """uint8 grid, one row per image: masked input | composited output | ground truth."""
    rows = [np.concatenate(list(to_uint8(batch)), axis=1) for batch in (masked, filled, image)]
    return np.concatenate(rows, axis=0)  # (3H, N*W, 3)


@torch.no_grad()
def validate(generator: Callable, batch: list[torch.Tensor], autocast) -> tuple[float, np.ndarray]:
    """Mean PSNR inside the holes of the composited outputs, and the sample grid."""
    image, hole, _ = batch
    # Only rank 0 validates: the bare module, as DDP's forward would wait for the other ranks.
    generator = unwrap(generator) if isinstance(generator, torch.nn.Module) else generator
    was_training = getattr(generator, "training", False)
    if was_training:
        generator.eval()
    masked = image * (1 - hole)
    with autocast():
        prediction = generator(masked, hole)
    filled = composite(prediction.float(), image, hole)
    if was_training:
        generator.train()
    mse = metrics.region_mse(to_uint8(filled), to_uint8(image), hole[:, 0].cpu().numpy() > 0.5)
    values = metrics.psnr(mse)
    # A perfect hole (PSNR +inf) cannot be averaged; 100 dB stands in for it.
    return float(np.nanmean(np.minimum(values, 100.0))), sample_grid(masked, filled, image)


def validation_batch(paths, count: int, device: torch.device) -> list[torch.Tensor]:
    """The first `count` fixed test pairs: image, hole, fg_mask, each (N, C, S, S)."""
    pairs = PairSet(paths.prepared, paths.foreground, paths.holes)
    return [torch.stack([pairs[i][k] for i in range(min(count, len(pairs)))]).to(device) for k in range(3)]


def save_outputs(params: Params, name: str, cfg: Any, paths, generator: Any, step: int,
                 history: dict, grid: np.ndarray, run: tracking.Run, precision: str = "float32",
                 released: dict | None = None) -> None:
    """`models/<name>/`: model.pt (method, size, params, generator weights), curves, sample grid.

    model.pt records the params its stage trained with (`seed`, `train`, `models.<name>`), not the
    whole file: a key this stage does not read must not change its bytes, since DVC would not rerun
    it and the recorded copy would go stale."""
    out = paths.models / name
    weights = generator.state_dict() if isinstance(generator, torch.nn.Module) else {}
    trained_with = {"seed": params.seed, "train": to_dict(params.train),
                    "holes": {"train_mix": params.holes.train_mix}, "models": {name: to_dict(cfg)}}
    final = {"model": name, "step": step, "size": params.data.size, "cfg": to_dict(cfg), "generator": weights,
             "params": trained_with, "weights_provenance": provenance_tag(paths.weights),
             "precision": precision, "processor": processor(device())}
    if released is not None:  # the weights are a release's, imported (fgi.training.released)
        final["released"] = released
    save_atomic(final, out / "model.pt")
    write_curves(out, history)
    files.save_png(out / "samples.png", grid)
    run.log_metrics({"final/psnr_hole": history["val"][-1]["psnr_hole"]}, step=step)
    if params.tracking.log_models:
        run.log_generator(out / "model.pt", "generator")
