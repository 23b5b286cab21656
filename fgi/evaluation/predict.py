"""Inpaint the fixed test pairs with one method (docs/design.md §3, §4).

Writes `data/predictions/<method>/<image_id>.png` for every row of
`data/holes/test_pairs.csv`: RGB uint8, composited — the known pixels are the
input's, byte for byte; only the hole pixels come from the method, loaded from
the `models/<method>/model.pt` its train stage wrote. Beside them,
`method.json`: the method's card (display name, citation, role, published
values), which the evaluation reads instead of importing the method.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fgi import files, methods, progress
from fgi.config import Params
from fgi.data.dataset import PairSet
from fgi.errors import UserError
from fgi.evaluation.cards import CARD
from fgi.inference import composite_uint8, device, load_generator


def predict(params: Params, method: str, out: Path, models: Path = Path("models"),
            prepared: Path = Path("data/prepared"), foreground: Path = Path("data/foreground"),
            holes: Path = Path("data/holes")) -> dict:
    """Write the composited outputs of `method` for every test pair; return a summary."""
    pairs = PairSet(prepared, foreground, holes)
    loader = DataLoader(pairs, batch_size=params.predict.batch_size, shuffle=False)
    where = device()
    name, model, size = load_generator(models / method, where)
    if name != method:
        raise UserError(f"{models / method / 'model.pt'} holds method {name!r}, not {method!r}; "
                        f"rerun `dvc repro train@{method}`")
    if size != params.data.size:
        raise UserError(f"{models / method / 'model.pt'} was trained at {size}², data.size is "
                        f"{params.data.size}; rerun `dvc repro train@{method}`")
    if hasattr(model, "workers"):
        model.workers = 0  # a classical solver: every core
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        for image, hole, _, image_ids in progress.bar(loader, desc=f"predict@{method}", unit="batch"):
            image, hole = image.to(where), hole.to(where)
            prediction = model(image * (1 - hole), hole)
            for image_id, filled in zip(image_ids, composite_uint8(prediction.float(), image, hole)):
                files.save_png(out / f"{image_id}.png", filled)
    seconds = time.perf_counter() - start
    files.write_json_atomic(out / CARD, methods.get(method).card())
    return {"images": len(pairs), "seconds_per_image": round(seconds / max(len(pairs), 1), 5),
            "device": where.type}
