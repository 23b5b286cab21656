"""The `evaluate` stage: every method on exactly the same fixed test pairs.

Writes `reports/per_image.csv` (one row per method and test pair: MSE, MAE,
PSNR, SSIM and LPIPS over the full image, the foreground and the hole),
`reports/fid.json` (FID per method and region, `null` = n/a),
`reports/tables/` (Tables 1-5, see `fgi.evaluation.tables`) and `reports/metrics.json`
(every measured table value, for `dvc metrics show/diff`). On the component
test pairs (`data/holes_semantic`, when its stage wrote any):
`reports/per_image_components.csv` (without them: its header only) and Table 6 (`fgi.evaluation.components`),
for the methods of `methods` (an `eval.external` folder has no component
outputs).

Methods: those of `methods` in params.yaml, from `data/predictions/` with
their cards (`fgi.evaluation.cards`, collected in `reports/methods.json`), plus
`eval.external` (name: folder of `<image_id>.png` made elsewhere). FID
needs the pretrained Inception (`data/weights`) and LPIPS the pretrained
VGG16; with random-init weights each is n/a, never a number.

Without foreground masks (a folder source without `data.folder.foreground`,
`fgi.data.layout.foreground_available`) the foreground region is unknown: its
metrics are NaN in `per_image.csv`, its FID `null`, and Table 2 says n/a.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from fgi import files
from fgi.evaluation import components, metrics, tables
from fgi.evaluation.cards import CARDS, Cards, external, read_card, write_cards
from fgi.config import Params
from fgi.data.layout import foreground_available, read_csv
from fgi.errors import UserError
from fgi.evaluation.lpips_score import LPIPS
from fgi.data.weights import load_provenance, weights_file

REGIONS = ("full", "foreground", "hole")


def method_folders(params: Params, predictions: Path) -> tuple[dict[str, Path], Cards]:
    """The outputs of every method of `methods` (in that order), then of `eval.external`, and their cards."""
    folders = {method: predictions / method for method in params.methods}
    found = Cards((method, read_card(folder, method)) for method, folder in folders.items())
    for name, folder in params.eval.external.items():
        if not Path(folder).is_dir():
            raise UserError(f"eval.external.{name}: {folder} is not a folder; give the folder of "
                            "<image_id>.png outputs")
        folders[name] = Path(folder)
        found[name] = external(name)
    return folders, found


def jobs_for(folders: dict[str, Path], pairs: list[dict], prepared: Path, foreground: Path,
             holes: Path, named_by_mask: bool = False) -> list[dict]:
    """One metrics job per method and pair; the output of a pair is `<image_id>.png` in the method's
    folder, or `<mask>` there when `named_by_mask` (the component pairs, several per face). A job's
    foreground is None when the run has no foreground masks."""
    known = foreground_available(foreground)
    jobs = []
    for method, folder in folders.items():
        for pair in pairs:
            prediction = folder / (pair["mask"] if named_by_mask else f"{pair['image_id']}.png")
            if not prediction.is_file():
                raise UserError(f"{prediction}: missing; every method needs an output for every test pair "
                                f"({holes / 'test_pairs.csv'}), run `dvc repro predict@{method}` or complete "
                                "the folder")
            jobs.append({"method": method, "image_id": pair["image_id"], "bin": pair["bin"],
                         "hole_ratio": float(pair["hole_ratio"]), "prediction": prediction,
                         "truth": prepared / "images" / f"{pair['image_id']}.png",
                         "foreground": foreground / f"{pair['image_id']}.png" if known else None,
                         "hole": holes / pair["mask"]})
    return jobs


def _stack(paths: list[Path], loader) -> np.ndarray:
    return np.stack([loader(path) for path in paths])


def _foreground(jobs: list[dict], shape: tuple[int, ...]) -> np.ndarray:
    """(N, H, W) bool foreground masks of the jobs; none set where the run has no masks (the region is
    then empty, so its values are NaN)."""
    if any(job["foreground"] is None for job in jobs):
        return np.zeros(shape, dtype=bool)
    return _stack([job["foreground"] for job in jobs], files.load_mask)


def compute_fid(params: Params, jobs: list[dict], weights: Path, cache: Path) -> dict:
    """{method: {region: FID or None}}; None everywhere when the Inception is not pretrained."""
    methods = list(dict.fromkeys(job["method"] for job in jobs))
    inception = weights_file(weights, "inception") if params.eval.fid else None
    scorer = metrics.FID.from_weights(inception, batch_size=params.eval.fid_batch_size) if inception else None
    if scorer is None:
        return {method: {region: None for region in REGIONS} for method in methods}
    first = [job for job in jobs if job["method"] == methods[0]]
    truth = _stack([job["truth"] for job in first], files.load_image_rgb)
    masks = {"full": np.ones(truth.shape[:3], bool), "foreground": _foreground(first, truth.shape[:3]),
             "hole": _stack([job["hole"] for job in first], files.load_mask)}
    sha = load_provenance(weights)["inception"]["sha256"]
    ids = ",".join(job["image_id"] for job in first)
    result = {method: {} for method in methods}
    for region in REGIONS:
        if not masks[region].any():  # no foreground masks: the region is unknown, its FID n/a
            for method in methods:
                result[method][region] = None
            continue
        key = hashlib.sha256(f"{ids}|{region}|{sha}".encode()).hexdigest()
        truth_stats = scorer.cached_statistics(metrics.FID.region_images(truth, masks[region]),
                                               cache / f"truth_{region}.npz", key)
        for method in methods:
            outputs = _stack([job["prediction"] for job in jobs if job["method"] == method], files.load_image_rgb)
            stats = scorer.statistics(metrics.FID.region_images(outputs, masks[region]))
            result[method][region] = float(scorer.distance(stats, truth_stats))
    return result


def lpips_columns(params: Params, jobs: list[dict], weights: Path, chunk: int = 256) -> dict[str, np.ndarray]:
    """{"<region>/lpips": (len(jobs),)} in job order; NaN everywhere when VGG16 is not pretrained."""
    columns = {f"{region}/lpips": np.full(len(jobs), np.nan) for region in REGIONS}
    vgg16 = weights_file(weights, "vgg16") if params.eval.lpips else None
    scorer = LPIPS.from_weights(vgg16, "cuda" if torch.cuda.is_available() else "cpu")
    if scorer is None:
        return columns
    for start in range(0, len(jobs), chunk):  # bounded memory at 3,000 pairs x 256²
        part = jobs[start:start + chunk]
        holes = _stack([job["hole"] for job in part], files.load_mask)
        distances = scorer.distances(
            _stack([job["prediction"] for job in part], files.load_image_rgb),
            _stack([job["truth"] for job in part], files.load_image_rgb),
            {"foreground": _foreground(part, holes.shape), "hole": holes})
        for region in REGIONS:
            columns[f"{region}/lpips"][start:start + len(part)] = distances[region]
    return columns


def evaluate(params: Params, predictions: Path = Path("data/predictions"), prepared: Path = Path("data/prepared"),
             foreground: Path = Path("data/foreground"), holes: Path = Path("data/holes"),
             weights: Path = Path("data/weights"), reports: Path = Path("reports"),
             cache: Path = Path("data/fid_cache"), holes_semantic: Path = Path("data/holes_semantic")) -> dict:
    """Metrics, FID and tables for every method; returns the measured table values."""
    cache.mkdir(parents=True, exist_ok=True)
    pairs = read_csv(holes / "test_pairs.csv")
    folders, cards = method_folders(params, predictions)
    jobs = jobs_for(folders, pairs, prepared, foreground, holes)
    per_image = metrics.per_image_table(jobs, workers=params.eval.workers)
    for column, values in lpips_columns(params, jobs, weights).items():
        per_image[column] = values
    files.write_text_atomic(reports / "per_image.csv", per_image.to_csv(index=False))
    fid = compute_fid(params, jobs, weights, cache)
    files.write_json_atomic(reports / "fid.json", fid)
    write_cards(reports / CARDS, cards)
    measured = tables.build_tables(per_image, fid, reports / "tables", params.eval.bootstrap, cards)
    if (holes_semantic / "test_pairs.csv").is_file():
        measured["table6_components"] = evaluate_components(params, folders, cards, prepared, foreground,
                                                            holes_semantic, weights, reports)
    else:  # no component pairs (a folder source has no part annotations): the file, without a row
        files.write_text_atomic(reports / "per_image_components.csv", per_image.iloc[:0].to_csv(index=False))
    files.write_json_atomic(reports / "metrics.json", measured)
    return measured


def evaluate_components(params: Params, folders: dict[str, Path], cards: Cards, prepared: Path, foreground: Path,
                        holes_semantic: Path, weights: Path, reports: Path) -> dict:
    """Metrics and Table 6 on the component pairs, for every method that predicted them."""
    predicted = {method: folder / "components" for method, folder in folders.items() if method in params.methods}
    jobs = jobs_for(predicted, read_csv(holes_semantic / "test_pairs.csv"), prepared, foreground, holes_semantic,
                    named_by_mask=True)
    per_image = metrics.per_image_table(jobs, workers=params.eval.workers)
    for column, values in lpips_columns(params, jobs, weights).items():
        per_image[column] = values
    files.write_text_atomic(reports / "per_image_components.csv", per_image.to_csv(index=False))
    return components.build_component_tables(per_image, reports / "tables", params.eval.bootstrap, cards)
