"""`train@<name>` with released weights: import them instead of training.

When `models.<name>.released` is set, the weights stage has brought the release into
`data/weights/released/<name>/` (`fgi.data.released`). This reads it through the method's
own importer (`Method.importer`; nothing here knows a checkpoint format) and writes the
outputs training writes: `models/<name>/model.pt` (step 0, the imported generator), the
validation PSNR and sample grid, an empty loss curve, and the MLflow run, tagged
`provenance: released weights` with the source, its sha256 and format.

It also says how many of this run's test faces the release trained on: a release that
publishes its split (LaMa does) is matched against the test ids of a CelebA-HQ run (their
ids are CelebA-HQ indices); on synthetic faces none can be, and for a folder source or an
unpublished split the count is unknown. The count goes into model.pt, from where
predict puts it on the method's card and every table marks the row.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from fgi import files, methods, tracking
from fgi.config import Params
from fgi.data.released import released_folder
from fgi.data.weights import load_provenance
from fgi.errors import UserError
from fgi.evaluation.cards import released_line
from fgi.training.outputs import save_outputs, validate, validation_batch

PROVENANCE = "released weights"


def seen_in_training(params: Params, test_ids: list[str], imported: methods.Imported) -> dict:
    """How many test faces the release trained on, and why when that cannot be known."""
    total = len(test_ids)
    if params.data.source == "synthetic":
        return {"seen": 0, "of": total, "why": "synthetic faces: none is a CelebA-HQ face"}
    if params.data.source != "celebamask_hq":
        return {"seen": None, "of": total, "why": f"data.source {params.data.source}: faces not matched to CelebA-HQ"}
    if imported.training_images is None:
        return {"seen": None, "of": total, "why": "the release does not publish its training split"}
    seen = sum(int(image_id) in imported.training_images for image_id in test_ids)
    return {"seen": seen, "of": total, "why": f"matched by CelebA-HQ index against {imported.training_split}"}


def import_released(params: Params, name: str, cfg: Any, paths, run: tracking.Run) -> dict:
    """Write `models/<name>/` from the release, as training writes it; return its record (also in
    model.pt, as `released`)."""
    method = methods.get(name)
    folder = released_folder(paths.weights, name)
    entry = load_provenance(paths.weights).get(f"released/{name}")
    if entry is None or not folder.is_dir():
        raise UserError(f"{folder}: models.{name}.released is set but the weights stage has not brought it; "
                        "run `dvc repro weights`")
    imported = method.importer.load(folder, cfg, params.data.size)
    for note in imported.notes:
        print(f"train@{name}: {note}", flush=True)
    test_ids = (paths.prepared / "test.txt").read_text().split()
    record = {"source": entry["source"], "sha256": entry.get("sha256", ""), "files": entry["files"],
              "format": imported.format, "release": method.importer.source,
              "training_split": imported.training_split, "overlap": seen_in_training(params, test_ids, imported)}
    psnr_hole, grid = validate(imported.generator, validation_batch(paths, params.train.val_images,
                                                                    torch.device("cpu")), contextlib.nullcontext)
    history = {"curve": [], "val": [{"step": 0, "epoch": 0, "psnr_hole": psnr_hole}]}
    run.set_tags({"provenance": PROVENANCE, "released_source": record["source"],
                  "released_sha256": record["sha256"] or "folder (per-file hashes in model.pt)",
                  "released_format": imported.format, "released_split": imported.training_split or "unpublished",
                  "released_test_faces_seen": str(record["overlap"]["seen"])})
    run.log_metrics({"val/psnr_hole": psnr_hole}, step=0)
    save_outputs(params, name, cfg, paths, imported.generator, 0, history, grid, run, released=record)
    files.write_text_atomic(paths.models / name / "curve.csv", "step,epoch\n")  # nothing trained: no loss rows
    print(f"train@{name}: {released_line(record)}", flush=True)
    return record
