"""peer_metrics: our `evaluate` against LaMa's evaluator on the same predictions: the numbers, why they differ, time.

LaMa (advimman/lama) scores inpainted outputs with `saicinpainting/evaluation`, as its bin/evaluate_predicts.py
runs it with configs/eval2_cpu.yaml: `PrecomputedInpaintingResultsDataset` over the PNGs (linked into its layout:
`<id>.png` the truth, `<id>_mask.png` the hole, the output as `<id>_mask.png` in the predictions folder) and an
`InpaintingEvaluator` (batch 8, CPU, 10 mask-area bins) with `SSIMScore`, `LPIPSScore` and `FIDScore`. Ours is
`fgi.evaluation` as the evaluate stage runs it: `metrics.per_image_table` (MSE, MAE, PSNR, SSIM over the full
image, foreground and hole; one process, as LaMa's), `LPIPS.distances` over the three regions, `FID.statistics`
and `FID.distance`; grouped by LaMa's area bins (`area_bins`). tests/test_peer_metrics.py says what is the same
definition and what is not; docs/metrics.md ("Against LaMa's evaluator") explains each difference.

Inputs: the demo pipeline's predictions (data/predictions/ of params.yaml's methods on the test pairs of
data/holes/test_pairs.csv) where `dvc repro` or `dvc pull` left them; else 48 synthetic pairs at 64² made as the
evaluate benchmark makes them (benchmarks/evaluate.py `make_jobs`), under the method name `bench`.

Same definitions must agree: SSIM's map inside the 5-px border and over the hole (LaMa's code run in float64),
LPIPS per pair, within 1e-6; FID within 1e-6 · max(1, FID); every pair in the same area bin. Otherwise the
section fails. Weights: the weights stage's pretrained VGG16 and FID Inception where data/weights has them;
otherwise both sides get the same seeded weights (tests/test_golden.py `golden_values`), which shows that the
two compute the same thing but gives no LPIPS or FID: the tables say n/a and give only the difference.

Timing: LaMa's `InpaintingEvaluator.evaluate()` (SSIM and LPIPS with the bins; it reads the PNGs once for the
bins and once per score) and ours (per-image table and LPIPS, reading the PNGs, then the bin means) alternate
call by call after a warm-up round, on the proposed method's predictions; median and min of each. FID once per
side, outside the interleaving: a 2048² matrix square root dominates each.
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

from benchmarks.common import (ROOT, Check, CpuMeter, Section, clocked, fmt, interleave, locate, machine, median,
                               say, table, timed)
from benchmarks.evaluate import make_jobs
from fgi import files
from fgi.records import lock_outputs
from fgi.config import load_params
from fgi.data.layout import read_csv
from fgi.data.weights import weights_file
from fgi.errors import UserError
from fgi.evaluation.evaluate import jobs_for, method_folders
from fgi.evaluation.lpips_score import LPIPS
from fgi.evaluation.metrics import per_image_table

NAME = "peer_metrics"
TITLE = "peer_metrics: our evaluate against LaMa's evaluator (same predictions, CPU, interleaved)"
LAMA_BINS = 10  # InpaintingEvaluator's default, which bin/evaluate_predicts.py keeps
LAMA_BATCH = 8  # configs/eval2_cpu.yaml's evaluator_kwargs
FALLBACK_PAIRS, FALLBACK_SIZE = 48, 64  # the demo's test set, when its predictions are absent
TOLERANCE = 1e-6
SSIM_COLUMNS = ("full/ssim", "hole/ssim")


def area_bins(holes: np.ndarray) -> np.ndarray:
    """LaMa's mask-area bin of each (N, H, W) bool hole: ten left-closed deciles of the hole's share of the image,
    [0 %, 10 %) to [90 %, 100 %] (a full hole in the last), counted in pixels. LaMa's offline evaluator (the one
    bin/evaluate_predicts.py runs) cuts at np.linspace(0, 1, 11) this way; it measures the area in float32, so a
    hole of exactly 70 % or 90 % falls one bin lower there (tests/test_peer_metrics.py)."""
    pixels = holes.reshape(len(holes), -1)
    return np.minimum(LAMA_BINS * pixels.sum(axis=1) // pixels.shape[1], LAMA_BINS - 1)


def bin_names() -> list[str]:
    """LaMa's names of its bins: 0-10%, 10-20%, … 90-100%."""
    return [f"{100 * i // LAMA_BINS}-{100 * (i + 1) // LAMA_BINS}%" for i in range(LAMA_BINS)]


def helpers():
    """tests/test_peer_metrics.py (tests/ is no package: on sys.path, as the release benchmarks put it)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    return importlib.import_module("test_peer_metrics")


# ---------------------------------------------------------------- inputs


def demo_jobs(tmp: Path) -> tuple[dict[str, list[dict]], str, str]:
    """({method: evaluate's jobs}, the proposed method, where the pairs come from)."""
    data = ROOT / "data"
    try:
        params = load_params(ROOT / "params.yaml")
        folders, cards = method_folders(params, data / "predictions")
        pairs = read_csv(data / "holes" / "test_pairs.csv")
        jobs = jobs_for(folders, pairs, data / "prepared", data / "foreground", data / "holes")
    except (UserError, OSError) as missing:
        say(f"peer_metrics: no demo predictions ({str(missing)[:160]}); {FALLBACK_PAIRS} synthetic pairs instead")
        jobs = make_jobs(tmp / "synthetic", FALLBACK_PAIRS, FALLBACK_SIZE)
        return {"bench": jobs}, "bench", (f"{FALLBACK_PAIRS} synthetic pairs at {FALLBACK_SIZE}² (no demo predictions "
                                          "in data/; the evaluate benchmark's faces, doodle holes filled with noise)")
    by_method = {method: [job for job in jobs if job["method"] == method] for method in folders}
    size = files.load_image_rgb(jobs[0]["truth"]).shape[0]
    return by_method, cards.proposed() or next(iter(by_method)), (
        f"the demo pipeline's predictions (data/predictions/, params.yaml as committed; "
        f"{provenance(list(by_method))}): {len(pairs)} test pairs of data/holes/test_pairs.csv at {size}², "
        f"{len(by_method)} methods")


def provenance(methods: list[str]) -> str:
    """Whether data/predictions/ holds what the committed dvc.lock recorded, in words. The demo's
    predictions depend on the CPU's float32 kernels, so a `make repro` on another CPU remakes them."""
    outputs = [f"data/predictions/{method}" for method in methods]
    committed = lock_outputs(subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=ROOT, capture_output=True,
                                            text=True, check=True).stdout)
    now = lock_outputs((ROOT / "dvc.lock").read_text())
    remade = [out for out in outputs if now.get(out) != committed.get(out)]
    if remade:
        return (f"remade here, not the committed ones: dvc.lock's hashes of {', '.join(remade)} differ from the "
                "commit's, so these numbers are not those of the committed tables")
    dvc = Path(sys.executable).with_name("dvc")
    status = subprocess.run([str(dvc), "status", *(f"predict@{method}" for method in methods)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    said = " ".join((status.stdout + status.stderr).split())[:200]
    if status.returncode != 0:
        return f"not checked against dvc.lock: `dvc status` failed ({said})"
    if "changed" in status.stdout or "modified" in status.stdout:
        return f"not those of the committed dvc.lock: `dvc status` says {said}"
    return "the committed dvc.lock's, `dvc status` up to date"


@dataclass
class Pairs:
    """One method's test pairs in LaMa's dataset order, as uint8 arrays (what both sides decode) and our jobs."""

    jobs: list[dict]
    ids: list[str]
    truths: np.ndarray  # (N, H, W, 3) uint8
    predictions: np.ndarray  # (N, H, W, 3) uint8
    holes: np.ndarray  # (N, H, W) bool
    foreground: np.ndarray  # (N, H, W) bool (none set where the run has no foreground masks)


def lama_layout(folder: Path, method: str, jobs: list[dict]) -> tuple[Path, Path]:
    """(datadir, predictdir) in PrecomputedInpaintingResultsDataset's layout, by links to our files: datadir holds
    <id>.png (the truth) and <id>_mask.png (the hole, white = hole as ours), predictdir <id>_mask.png (the output)."""
    datadir, predictdir = folder / "data", folder / "predictions" / method
    predictdir.mkdir(parents=True, exist_ok=True)
    datadir.mkdir(exist_ok=True)
    for job in jobs:
        for link, target in ((datadir / f"{job['image_id']}.png", job["truth"]),
                             (datadir / f"{job['image_id']}_mask.png", job["hole"]),
                             (predictdir / f"{job['image_id']}_mask.png", job["prediction"])):
            if not link.exists():
                link.symlink_to(Path(target).resolve())
    return datadir, predictdir


def load_pairs(jobs: list[dict], ids: list[str] | None = None) -> Pairs:
    """The jobs' PNGs, decoded as the evaluate stage decodes them, in the order of `ids` (default: the jobs')."""
    ids = ids or [job["image_id"] for job in jobs]
    by_id = {job["image_id"]: job for job in jobs}
    jobs = [by_id[image_id] for image_id in ids]

    def stack(key, load):
        return np.stack([load(job[key]) for job in jobs])

    holes = stack("hole", files.load_mask)
    foreground = (stack("foreground", files.load_mask) if all(job["foreground"] for job in jobs)
                  else np.zeros_like(holes))
    return Pairs(jobs, ids, stack("truth", files.load_image_rgb), stack("prediction", files.load_image_rgb), holes,
                 foreground)


# ---------------------------------------------------------------- the two evaluators


def lama_evaluator(lama, datadir: Path, predictdir: Path, scores: dict, area_grouping: bool = True):
    """InpaintingEvaluator as bin/evaluate_predicts.py builds it with configs/eval2_cpu.yaml."""
    dataset = lama.data.PrecomputedInpaintingResultsDataset(str(datadir), str(predictdir), img_suffix=".png",
                                                            inpainted_suffix=".png")
    return lama.evaluator.InpaintingEvaluator(dataset, scores=scores, area_grouping=area_grouping, bins=LAMA_BINS,
                                              batch_size=LAMA_BATCH, device="cpu")


def ours_scores(jobs: list[dict], lpips: LPIPS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the evaluate stage computes per pair (per_image_table in one process, LPIPS over the three regions,
    the PNGs read as it reads them), then the means per LaMa area bin: (per pair, per bin)."""
    frame = per_image_table(jobs, workers=1)
    pairs = load_pairs(jobs)
    distances = lpips.distances(pairs.predictions, pairs.truths, {"foreground": pairs.foreground, "hole": pairs.holes})
    for region, values in distances.items():
        frame[f"{region}/lpips"] = values
    frame["lama_bin"] = area_bins(pairs.holes)
    return frame, frame.groupby("lama_bin")[["full/ssim", "full/lpips"]].mean()


def ours_fid_value(fid, jobs: list[dict]) -> float:
    """Our FID of a method's outputs against the ground truths, the PNGs read as the evaluate stage reads them."""
    outputs = np.stack([files.load_image_rgb(job["prediction"]) for job in jobs])
    truths = np.stack([files.load_image_rgb(job["truth"]) for job in jobs])
    return fid.distance(fid.statistics(outputs), fid.statistics(truths))


def release_commit(root: Path) -> str:
    """The clone's commit, short, as the section's provenance (a clone without git history: "at an unknown commit")."""
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                           check=False)
    return found.stdout.strip() if found.returncode == 0 else "at an unknown commit"


def pretrained(name: str) -> Path | None:
    """The weights stage's pretrained file of `name`, None when it is random-init or the stage never ran."""
    try:
        return weights_file(ROOT / "data" / "weights", name)
    except UserError:
        return None


@dataclass
class Compared:
    """One method: LaMa's evaluator's results and per-pair values, ours, and LaMa's SSIM maps."""

    pairs: Pairs
    lama_results: dict
    lama_ssim: np.ndarray  # (N,) as its SSIMScore reports (float32)
    lama_lpips: np.ndarray  # (N,)
    lama_bins: np.ndarray  # (N,) its grouping
    ours: pd.DataFrame  # per pair, LaMa's order
    ours_bins: pd.DataFrame
    interior32: np.ndarray  # (N,) its float32 map inside the border
    interior64: np.ndarray  # (N,) its float64 map inside the border
    hole64: np.ndarray  # (N,) its float64 map over the hole inside the border

    def differences(self) -> dict[str, float]:
        """max |ours − LaMa's| per pair of every compared quantity."""
        full, hole = self.ours["full/ssim"].to_numpy(), self.ours["hole/ssim"].to_numpy()
        return {"reported": float(np.abs(full - self.lama_ssim).max()),
                "interior64": float(np.nanmax(np.abs(full - self.interior64))),
                "interior32": float(np.nanmax(np.abs(full - self.interior32))),
                "hole64": float(np.nanmax(np.abs(hole - self.hole64))),
                "lpips": float(np.abs(self.ours["full/lpips"].to_numpy() - self.lama_lpips).max()),
                "bins": int((self.ours["lama_bin"].to_numpy() != self.lama_bins).sum())}


def compare(lama, peer, folder: Path, method: str, jobs: list[dict], scores: dict, lpips: LPIPS):
    """Both evaluators on one method's predictions: (what they computed, LaMa's evaluator for the timing)."""
    datadir, predictdir = lama_layout(folder, method, jobs)
    evaluator = lama_evaluator(lama, datadir, predictdir, scores)
    results = evaluator.evaluate()
    lama_ssim = np.asarray(scores["ssim"].individual_values, np.float64)
    lama_lpips = np.asarray(scores["lpips"].individual_values, np.float64)
    groups, _ = evaluator._get_bin_edges()
    ids = [Path(name).name.removesuffix("_mask.png") for name in evaluator.dataset.mask_filenames]
    pairs = load_pairs(jobs, ids)
    ours, ours_bins = ours_scores(pairs.jobs, lpips)
    recorded, maps32 = peer.lama_ssim(lama, pairs.predictions, pairs.truths)
    _, maps64 = peer.lama_ssim(lama, pairs.predictions, pairs.truths, float64=True)
    if not np.abs(recorded - lama_ssim).max() <= TOLERANCE:  # the maps must be those of the numbers it reported
        raise AssertionError(f"{method}: LaMa's SSIM on the decoded arrays is not what its evaluator reported")
    compared = Compared(pairs, results, lama_ssim, lama_lpips, np.asarray(groups), ours, ours_bins,
                        peer.interior_means(maps32), peer.interior_means(maps64),
                        peer.interior_means(maps64, pairs.holes))
    return compared, evaluator


# ---------------------------------------------------------------- the section


def sci(value: float) -> str:
    """A difference: two significant digits, as the tests print them."""
    return f"{value:.1e}"


def dec4(value: float) -> str:
    """A metric's value as LaMa writes it (`float_format='%.4f'`)."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"


def bin_counts(bins: np.ndarray) -> str:
    return ", ".join(f"{bin_names()[index]} {count}" for index, count in zip(*np.unique(bins, return_counts=True)))


def table4_rows(c: Compared) -> list[str]:
    """Our own Table 4 bins ((lower, upper] from holes.ratio_min) against LaMa's deciles: pairs in another decile."""
    labels = [str(label) for label in c.ours["bin"]]
    if not all(labels):
        return ["Table 4's hole-ratio bins against LaMa's", "[lower, upper), from 0 %", "n/a", "n/a", "no",
                "synthetic pairs have no Table 4 bin"]
    upper = np.array([float(label.split(",")[1].rstrip("]")) for label in labels])
    other = int((~np.isclose(upper, (c.lama_bins + 1) / LAMA_BINS)).sum())
    return ["Table 4's hole-ratio bins against LaMa's", "[lower, upper), from 0 %",
            "(lower, upper], from holes.ratio_min", f"{other} pairs in another decile", "no",
            "the side of a tenth that a hole of exactly that share falls on (a square power-of-two image can hit "
            "only 50 %)"]


def definition_rows(c: Compared, fid: dict | None, seeded_weights: dict[str, bool]) -> list[list[str]]:
    """The proposed method's table: each metric as LaMa and as we compute it, and whether the definitions match."""
    d = c.differences()
    full = c.ours["full/ssim"].to_numpy()

    def shown(metric: str, value: float) -> str:  # never a number from random weights
        return "n/a†" if seeded_weights[metric] else dec4(value)

    def seeded(metric: str) -> str:
        network, value = ("VGG16", "an LPIPS") if metric == "lpips" else ("Inception", "an FID")
        return (f"; † seeded random {network} on both sides: a check of the computation, not {value}"
                if seeded_weights[metric] else "")

    rows = [
        ["SSIM as each reports it, mean over the pairs", dec4(c.lama_ssim.mean()), dec4(full.mean()),
         f"{sci(abs(c.lama_ssim.mean() - full.mean()))} (per pair ≤ {sci(d['reported'])})", "no",
         "the border: LaMa zero-pads (F.conv2d's padding) and averages the whole map; ours leaves out the 5-px "
         "band (reflected padding there), as scikit-image's mean SSIM does"],
        ["SSIM map inside the 5-px border, LaMa's code in float64", dec4(np.nanmean(c.interior64)),
         dec4(full.mean()),
         f"per pair ≤ {sci(d['interior64'])}", "yes", "— (asserted ≤ 1e-6)"],
        ["SSIM map inside the 5-px border, LaMa as it runs (float32)", dec4(np.nanmean(c.interior32)),
         dec4(full.mean()), f"per pair ≤ {sci(d['interior32'])}", "yes",
         "precision, not definition: LaMa's float32 inputs, window (weights summing to 1 − 6.9e-8) and "
         "E[x²] − μ²; below the 4 decimals it writes"],
        ["SSIM map over the hole, inside the border, LaMa's code in float64 (ours' hole SSIM; LaMa reports none)",
         dec4(np.nanmean(c.hole64)), dec4(c.ours["hole/ssim"].mean()), f"per pair ≤ {sci(d['hole64'])}",
         "yes", "— (asserted ≤ 1e-6)"],
        ["LPIPS-VGG, mean over the pairs", shown("lpips", c.lama_lpips.mean()),
         shown("lpips", c.ours["full/lpips"].mean()),
         f"per pair ≤ {sci(d['lpips'])}", "yes", "— (asserted ≤ 1e-6)" + seeded("lpips")],
    ]
    if fid is not None:
        rows.append(["FID, whole set", shown("fid", fid["lama"]), shown("fid", fid["ours"]),
                     sci(abs(fid["lama"] - fid["ours"])), "yes",
                     "— (asserted ≤ 1e-6 · max(1, FID); LaMa keeps the feature mean in float32)" + seeded("fid")])
    rows.append(["mask-area bins: pairs per bin", bin_counts(c.lama_bins), bin_counts(c.ours["lama_bin"].to_numpy()),
                 f"{d['bins']} pairs in another bin", "yes", "— (asserted: none)"])
    rows.append(table4_rows(c))
    return rows


def bin_rows(c: Compared) -> list[list[str]]:
    """Per LaMa bin: its SSIM mean against ours over the same pairs, then the same definitions' max abs Δ per pair."""
    rows = []
    full, lpips = c.ours["full/ssim"].to_numpy(), c.ours["full/lpips"].to_numpy()
    for index in np.unique(c.lama_bins):
        name, members = bin_names()[index], c.lama_bins == index
        lama_mean = float(c.lama_results[("ssim", name)]["mean"])
        ours_mean = float(c.ours_bins.loc[index, "full/ssim"])
        rows.append([name, str(int(members.sum())), dec4(lama_mean), dec4(ours_mean),
                     sci(abs(lama_mean - ours_mean)),
                     sci(np.nanmax(np.abs(full[members] - c.interior64[members]))),
                     sci(np.abs(lpips[members] - c.lama_lpips[members]).max())])
    return rows


def method_rows(compared: dict[str, Compared]) -> list[list[str]]:
    """Per method: SSIM as each reports it, then the same definitions' max abs Δ per pair."""
    rows = []
    for method, c in compared.items():
        d = c.differences()
        full = c.ours["full/ssim"].to_numpy()
        rows.append([method, str(len(full)), dec4(c.lama_ssim.mean()), dec4(full.mean()),
                     sci(abs(c.lama_ssim.mean() - full.mean())), sci(d["interior64"]), sci(d["interior32"]),
                     sci(d["hole64"]), sci(d["lpips"]), str(d["bins"])])
    return rows


def disagreements(compared: dict[str, Compared], fid: dict | None) -> list[str]:
    """Every same-definition quantity outside its tolerance, in words (none: the section passes)."""
    found = []
    for method, c in compared.items():
        d = c.differences()
        found += [f"{method}: {what} differs by up to {d[key]:.2e}" for key, what in
                  (("interior64", "SSIM inside the border"), ("hole64", "SSIM over the hole"), ("lpips", "LPIPS"))
                  if not d[key] <= TOLERANCE]
        if d["bins"]:
            found.append(f"{method}: {d['bins']} pairs in another area bin")
    if fid is not None and not abs(fid["lama"] - fid["ours"]) <= TOLERANCE * max(1.0, abs(fid["lama"])):
        found.append(f"FID: LaMa's {fid['lama']!r}, ours {fid['ours']!r}")
    return found


@contextlib.contextmanager
def quiet(lama):
    """LaMa's evaluator without its tqdm bars, and without the deprecation notices its calls into torchvision
    (`pretrained=`) and scipy (`sqrtm(disp=)`) raise: neither changes a number."""
    bars = types.SimpleNamespace(auto=types.SimpleNamespace(tqdm=lambda iterable, **kwargs: iterable))
    with mock.patch.object(lama.evaluator, "tqdm", bars), warnings.catch_warnings():
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        yield


def run(quick: bool = False) -> Section:
    warmup, repeats = (1, 2) if quick else (1, 5)
    peer = helpers()
    root, reason = locate(peer.evaluator_root)
    if root is None:
        return Section(NAME, TITLE, f"**LaMa's evaluator skipped**, as tests/test_peer_metrics.py skips: {reason}.\n\n"
                       + __doc__.split("\n\n")[1], [])
    lama = peer.import_evaluator(root)
    vgg16, inception = pretrained("vgg16"), pretrained("inception")
    seeded_weights = {"lpips": vgg16 is None, "fid": inception is None}
    with tempfile.TemporaryDirectory(prefix="fgi-bench-peer-") as tmp, quiet(lama), CpuMeter() as meter:
        tmp = Path(tmp)
        jobs, proposed, source = demo_jobs(tmp)
        methods = [proposed] if quick else [proposed] + [m for m in jobs if m != proposed]
        features = peer.vgg16_features(torch.load(vgg16, weights_only=True) if vgg16 else None)
        scores = {"ssim": lama.scores.SSIMScore(), "lpips": peer.lama_lpips(lama, features)}
        lpips = LPIPS(peer.torchvision_state(features))
        compared, evaluators = {}, {}
        for method in methods:
            say(f"peer_metrics: {method}: LaMa's evaluator and ours on {len(jobs[method])} pairs")
            compared[method], evaluators[method] = compare(lama, peer, tmp / "lama", method, jobs[method], scores,
                                                           lpips)
        c = compared[proposed]
        say(f"peer_metrics: timing {proposed}, {repeats} interleaved rounds")
        times = interleave({"lama": evaluators[proposed].evaluate, "ours": lambda: ours_scores(c.pairs.jobs, lpips)},
                           warmup, repeats)
        fid = None
        if not quick:
            say("peer_metrics: FID, once per side")
            state = torch.load(inception, weights_only=True) if inception else peer.fid_inception_state()
            datadir, predictdir = lama_layout(tmp / "lama", proposed, c.pairs.jobs)
            lama_fid = lama_evaluator(lama, datadir, predictdir, {"fid": peer.lama_fid(lama, state)},
                                      area_grouping=False)
            lama_seconds, results = clocked(lama_fid.evaluate)
            ours_seconds, ours_value = clocked(ours_fid_value, peer.ours_fid(state, tmp), c.pairs.jobs)
            fid = {"lama": float(results[("fid", "total")]["mean"]), "ours": float(ours_value),
                   "lama_s": lama_seconds, "ours_s": ours_seconds}

    n, size = len(c.pairs.ids), c.pairs.truths.shape[1]
    ratio = median(times["lama"]) / median(times["ours"])
    checks = [Check(f"SSIM + LPIPS per pair with area bins, {n} pairs at {size}²: LaMa's evaluator ÷ ours",
                    median(times["ours"]), median(times["lama"]), "s", "LaMa's InpaintingEvaluator, interleaved", ratio,
                    note=f"min {fmt(min(times['ours']))} s")]
    timing = [[f"SSIM + LPIPS per pair, with the area bins ({proposed}, {n} pairs at {size}²)",
               f"{fmt(median(times['lama']))} / {fmt(min(times['lama']))}",
               f"{fmt(median(times['ours']))} / {fmt(min(times['ours']))}",
               f"**{ratio:.2f}×** / {min(times['lama']) / min(times['ours']):.2f}×",
               "LaMa: SSIM and LPIPS (one VGG pass) over the whole image, reading the PNGs three times; ours: "
               "MSE, MAE, PSNR, SSIM over three regions and LPIPS with its spatial map (two VGG passes), reading "
               "them twice"]]
    if fid is not None:  # one call each: shown, but no Check (a shared CPU moves one call by tens of seconds)
        timing.append([f"FID, whole set ({proposed}, {n} pairs), one call each", fmt(fid["lama_s"]),
                       fmt(fid["ours_s"]), f"{fid['lama_s'] / fid['ours_s']:.2f}× (one call: indicative only)",
                       "Inception on both sets (LaMa in batches of 8, ours of 50), then a 2048² matrix square root "
                       "(scipy's sqrtm, the same code on both sides)"])
    body = [
        (f"{meter.describe()}. {machine()}. Inputs: {source}. LaMa: advimman/lama {release_commit(root)}'s "
         "saicinpainting/evaluation (FGI_LAMA_RELEASE), run as bin/evaluate_predicts.py runs it with "
         "configs/eval2_cpu.yaml. Weights: "
         + ("the weights stage's pretrained VGG16" if vgg16 else "a seeded random VGG16 (no pretrained file offline)")
         + " for LPIPS, " + ("its pretrained FID Inception" if inception else "a seeded random FID Inception")
         + " for FID" + (" (not run in --quick)" if quick else "") + ", the same on both sides."),
        f"**Definitions, the proposed method ({proposed}):**",
        table(["metric", "LaMa's evaluator", "ours (`evaluate`)", "difference (abs.)", "same definition?",
               "why the numbers differ"], definition_rows(c, fid, seeded_weights)),
        (f"**Per LaMa area bin ({proposed})**: LaMa's per-bin means against ours over the same pairs (ours: the "
         "full-image SSIM, inside the border); the last two columns are the same definitions, per pair."),
        table(["LaMa's bin", "pairs", "SSIM LaMa", "SSIM ours", "difference (abs.)",
               "inside the border, float64: max abs Δ", "LPIPS: max abs Δ"], bin_rows(c)),
        ("**Every method**: SSIM as each reports it (mean over the pairs), then the max abs Δ per pair of the same "
         "definitions."),
        table(["method", "pairs", "SSIM LaMa", "SSIM ours", "difference (abs.)", "inside border, float64",
               "inside border, LaMa float32", "hole, float64", "LPIPS", "pairs in another bin"], method_rows(compared)),
        f"**Time** (median / min of {repeats} interleaved rounds after {warmup} warm-up round(s); one process, torch's "
        f"{torch.get_num_threads()} threads on each side):",
        table(["case", "LaMa's evaluator s", "ours s", "LaMa ÷ ours", "what each computes"], timing),
        *__doc__.split("\n\n")[3:5],
    ]
    for method, each in compared.items():
        say(f"peer_metrics: {method}: max |ours − LaMa's| per pair " + ", ".join(
            f"{key} {sci(value) if isinstance(value, float) else value}" for key, value in each.differences().items()))
    found = disagreements(compared, fid)
    if found:
        raise AssertionError(f"peer_metrics: same definitions, different numbers: {'; '.join(found)}")
    return Section(NAME, TITLE, "\n\n".join(body), checks)
