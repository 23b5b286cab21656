"""Inpaint the fixed test pairs with one method (docs/design.md §3, §4).

Writes `data/predictions/<method>/<image_id>.png` for every row of
`data/holes/test_pairs.csv`: RGB uint8, composited — the known pixels are the
input's, byte for byte; only the hole pixels come from the method, loaded from
the `models/<method>/model.pt` its train stage wrote. Beside them,
`method.json`: the method's card (display name, citation, role, published
values), which the evaluation reads instead of importing the method. When the
component test pairs exist (`data/holes_semantic/test_pairs.csv`, stage
`holes_semantic`), the method fills them too, into
`components/<component>/<image_id>.png`.
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
from fgi.evaluation.cards import CARD, with_release
from fgi.inference import composite_uint8, device, load_generator, released_record


def predict(params: Params, method: str, out: Path, models: Path = Path("models"),
            prepared: Path = Path("data/prepared"), foreground: Path = Path("data/foreground"),
            holes: Path = Path("data/holes"), holes_semantic: Path = Path("data/holes_semantic")) -> dict:
    """Write the composited outputs of `method` for every test pair, and for every component pair
    when there are any; return a summary."""
    pairs = PairSet(prepared, foreground, holes)
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
    fill(model, pairs, [pair["image_id"] for pair in pairs.pairs], out, params.predict.batch_size, where,
         f"predict@{method}")
    seconds = time.perf_counter() - start
    summary = {"images": len(pairs), "seconds_per_image": round(seconds / max(len(pairs), 1), 5),
               "device": where.type}
    if (holes_semantic / "test_pairs.csv").is_file():
        components = PairSet(prepared, foreground, holes_semantic)
        # Named by their mask, <component>/<image_id>: one face has a pair per component.
        fill(model, components, [Path(pair["mask"]).with_suffix("").as_posix() for pair in components.pairs],
             out / "components", params.predict.batch_size, where, f"predict@{method} (components)")
        summary["component_pairs"] = len(components)
    card = with_release(methods.get(method).card(), released_record(models / method))
    files.write_json_atomic(out / CARD, card)
    return summary


def fill(model, pairs: PairSet, names: list[str], out: Path, batch_size: int, where: torch.device,
         desc: str) -> None:
    """Write `out/<name>.png`, the composited output of `model` on each pair, in order."""
    loader = DataLoader(pairs, batch_size=batch_size, shuffle=False)
    written = 0
    with torch.no_grad():
        for image, hole, _, _ in progress.bar(loader, desc=desc, unit="batch"):
            image, hole = image.to(where), hole.to(where)
            prediction = model(image * (1 - hole), hole)
            for filled in composite_uint8(prediction.float(), image, hole):
                path = out / f"{names[written]}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                files.save_png(path, filled)
                written += 1
