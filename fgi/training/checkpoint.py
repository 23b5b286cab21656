"""Checkpoints and curves: what an interrupted run resumes from, written atomically.

`checkpoints/<method>/last.pt` holds the networks, optimisers, step, RNG
states, params and curves; a run resumes from it only when its `fingerprint`
(method params, protocol, data and the training code) matches.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from fgi import files, methods
from fgi.config import Params, method_config, to_dict
from fgi.errors import UserError
from fgi.methods.base import Objective, unwrap


def method_code(name: str) -> list[Path]:
    """The source files of method `name`: its package's, or its one module file."""
    module = methods.module_file(name)
    return sorted(module.parent.rglob("*.py")) if module.name == "__init__.py" else [module]


def fingerprint(params: Params, name: str, data: tuple[Path, ...]) -> str:
    """What a checkpoint must share with this run to be resumed: method, protocol, `data` files and code."""
    train = params.train
    protocol = {"model": name, "cfg": to_dict(method_config(params, name)), "size": params.data.size,
                "seed": train.seed, "batch_size": train.batch_size, "mask_augment": train.mask_augment,
                "train_mix": params.holes.train_mix, "amp": train.amp,
                "world": int(os.environ.get("WORLD_SIZE", "1"))}
    digest = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode())
    for path in data:
        digest.update(path.read_bytes() if path.exists() else b"")
    # The training code too: after a fix to a loss, a finished checkpoint must not be reused.
    package = Path(__file__).parents[1]
    shared = [*(package / "training").glob("*.py"), package / "data" / "dataset.py", package / "methods" / "base.py",
              package / "methods" / "losses.py", package / "methods" / "vgg.py"]
    for path in [*sorted(shared), *method_code(name)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def rng_state() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    # Plain lists, so the checkpoint loads with weights_only=True.
    numpy_state = [kind, keys.tolist(), position, has_gauss, cached]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save through a buffer: a file's archive records carry its (temporary, random)
    name, which would make identical checkpoints differ byte for byte."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    files.write_bytes_atomic(path, buffer.getvalue())


def save_checkpoint(path: Path, objective: Objective, step: int, epoch: int, params: Params,
                    key: str, history: dict, rng_by_rank: list | None = None) -> None:
    """`rng_by_rank`: every process's RNG states (DDP), so each resumes its own draws."""
    checkpoint = {
        "model": objective.name, "step": step, "epoch": epoch, "fingerprint": key,
        "networks": {k: unwrap(net).state_dict() for k, net in objective.networks().items()},
        "optimizers": {k: opt.state_dict() for k, opt in objective.optimizers.items()},
        "rng": rng_state(), "params": to_dict(params), "history": history,
    }
    if rng_by_rank is not None:
        checkpoint["rng_by_rank"] = rng_by_rank
    save_atomic(checkpoint, path)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # data, never code
    except Exception as err:  # noqa: BLE001 - a corrupt file is the user's to delete
        raise UserError(f"{path}: cannot load checkpoint ({type(err).__name__}: {err}); delete it to "
                        "train from scratch") from err


def write_curves(out: Path, history: dict) -> None:
    for name, rows in history.items():
        if not rows:
            continue
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        files.write_text_atomic(out / f"{name}.csv", text.getvalue())
