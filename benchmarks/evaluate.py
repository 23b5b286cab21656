"""evaluate: per-image metrics over the three regions, images per second, ours against a naive reference.

ours       `fgi.evaluation.metrics.per_image_table(jobs, workers=0)` (the `evaluate` stage's table):
           one SSIM map per image shared by every region, per-pixel squared and absolute
           errors computed once, a Pool over every core.
reference  one process; for each region and each metric its own call:
           `skimage.metrics.mean_squared_error` on the region's pixels, a numpy MAE,
           `skimage.metrics.peak_signal_noise_ratio` on the region's pixels, and one
           `structural_similarity(full=True)` per region, whose map is averaged over the
           channels and then over the region without the 5-pixel border (fgi.evaluation.metrics'
           rule, so that `full` is scikit-image's mean SSIM).

Both read the same PNGs (prediction, ground truth, foreground and hole masks)
and must give the same numbers: `np.allclose(rtol=1e-9, atol=0, equal_nan=True)`
over every metric of every image, or the benchmark fails. The test set holds
one perfect prediction (PSNR +inf) and one face without foreground (NaN).

A second check times what intervals and paired tests add, at the demo's size
(48 pairs at 64², five methods): the per-image metrics plus the tables with
bootstrap intervals and Table 5 (`fgi.evaluation.tables.build_tables`), against the same
metrics plus the tables of bare means (reference: `summarise`, `bins_frame`
without intervals, written as csv/md/tex). Target: at most 1.5× the reference.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from benchmarks.common import Check, CpuMeter, Section, clocked, cores, fmt, paper_params, replace, say, table, timed
from fgi import files, methods
from fgi.evaluation import tables
from fgi.evaluation.cards import Cards
from fgi.data.doodles import render_doodle
from fgi.data.foreground import foreground_mask
from fgi.data.holes import _hole_at_size
from fgi.data.prepare import image_name, prepare
from fgi.data.synthetic import render_celebamask_hq
from fgi.evaluation.metrics import SSIM_BORDER, SSIM_SIGMA, METRIC_COLUMNS, REGIONS, per_image_table

NAME = "evaluate"
TARGET_RATIO = 3.0
SIZE = 256
DEMO_PAIRS, DEMO_SIZE, INTERVALS_TARGET = 48, 64, 1.5


def make_jobs(root: Path, count: int, size: int = SIZE) -> list[dict]:
    """`count` test pairs at SIZE²: synthetic faces, their skin+hair foreground, doodle holes, and a
    prediction that fills each hole with noise around the known mean colour."""
    raw = root / "raw"
    render_celebamask_hq(raw, count, seed=1)
    params = replace(paper_params(), data__size=size, data__workers=0, split__train=count - 1, split__test=1)
    prepare(params, raw, root / "prepared")
    rng = np.random.default_rng(1)
    jobs = []
    for image_id in range(count):
        name = image_name(image_id)
        truth_path = root / "prepared" / "images" / f"{name}.png"
        truth = files.load_image_rgb(truth_path)  # (S, S, 3)
        foreground = foreground_mask(raw, image_id, ["skin", "hair"], True, size).copy()  # (S, S) bool
        if image_id == 1:
            foreground[:] = False  # a face without foreground: its region metrics are NaN
        qd_path = root / "qd" / f"{name}.png"
        qd_path.parent.mkdir(parents=True, exist_ok=True)
        render_doodle(rng, 0.01, 0.6).save(qd_path)
        hole = _hole_at_size(files.load_mask(qd_path), size, invert=False)  # (S, S) bool, as the holes stage reads it
        prediction = truth.copy()
        if image_id != 0:  # image 0 is a perfect prediction: PSNR +inf
            fill = truth[~hole].mean(axis=0) + rng.normal(0, 20, (int(hole.sum()), 3))
            prediction[hole] = fill.clip(0, 255).round().astype(np.uint8)
        paths = {kind: root / kind / f"{name}.png" for kind in ("prediction", "foreground", "hole")}
        files.save_png(paths["prediction"], prediction)
        files.save_mask(paths["foreground"], foreground)
        files.save_mask(paths["hole"], hole)
        jobs.append({"method": "bench", "image_id": name, "bin": "", "hole_ratio": float(hole.mean()),
                     "truth": str(truth_path), **{kind: str(path) for kind, path in paths.items()}})
    return jobs


def _read(path: str, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def reference_row(job: dict) -> list[float]:
    """The naive reference: every region and metric on its own, one SSIM call per region."""
    truth, prediction = _read(job["truth"], "RGB"), _read(job["prediction"], "RGB")  # (H, W, 3)
    regions = {"full": np.ones(truth.shape[:2], dtype=bool),
               "foreground": _read(job["foreground"], "L") >= 128, "hole": _read(job["hole"], "L") >= 128}
    inside = np.zeros(truth.shape[:2], dtype=bool)
    inside[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER] = True
    row = []
    for name in REGIONS:
        region = regions[name]
        if not region.any():
            row += [float("nan")] * 4
            continue
        true_pixels, predicted_pixels = truth[region], prediction[region]  # (K, 3)
        mse = mean_squared_error(true_pixels, predicted_pixels)
        mae = np.mean(np.abs(true_pixels.astype(np.float64) - predicted_pixels.astype(np.float64)))
        with np.errstate(divide="ignore"):  # a perfect region: PSNR +inf, as in fgi.evaluation.metrics
            psnr = peak_signal_noise_ratio(true_pixels, predicted_pixels, data_range=255)
        _, ssim_map = structural_similarity(truth, prediction, data_range=255, channel_axis=-1,
                                            gaussian_weights=True, sigma=SSIM_SIGMA,
                                            use_sample_covariance=False, full=True)  # (H, W, 3)
        counted = region & inside
        ssim = ssim_map.mean(axis=-1)[counted].mean() if counted.any() else float("nan")
        row += [float(mse), float(mae), float(psnr), float(ssim)]
    return row


def reference_table(jobs: list[dict]) -> list[list[float]]:
    return [reference_row(job) for job in jobs]


def paper_cards() -> Cards:
    """The cards of the paper profile's methods, as evaluate collects them."""
    return Cards((name, methods.get(name).card()) for name in paper_params().methods)


def plain_tables(per_image, out: Path) -> None:
    """The tables as they were before intervals: bare means, csv/md/tex."""
    cards = paper_cards()
    for name, region in tables.TABLES.items():
        frame = tables.comparison_frame(tables.summarise(per_image, region, {}, cards), region, cards)
        tables.write_table(frame, out, name, tables.title(name, cards))
    tables.write_table(tables.bins_frame(per_image, cards), out, "table4_bins", tables.title("table4_bins", cards))


def evaluate_demo(jobs: list[dict], out: Path, with_intervals: bool) -> None:
    """Per-image metrics of five methods (the same outputs under five names) and the tables."""
    per_image = per_image_table([{**job, "method": method} for method in paper_cards() for job in jobs], workers=0)
    per_image["bin"] = [f"({i % 6 / 10:g},{i % 6 / 10 + 0.1:g}]" for i in range(len(per_image))]
    if with_intervals:
        tables.build_tables(per_image, {}, out, paper_params().eval.bootstrap, paper_cards())
    else:
        plain_tables(per_image, out)


def intervals_check(root: Path, repeats: int) -> tuple[Check, str]:
    jobs = make_jobs(root / "demo", DEMO_PAIRS, DEMO_SIZE)
    plain, intervals = [], []
    for _ in range(repeats):
        plain.append(clocked(evaluate_demo, jobs, root / "plain", False)[0])
        intervals.append(clocked(evaluate_demo, jobs, root / "intervals", True)[0])
    ratio = min(intervals) / min(plain)
    check = Check(f"evaluate with intervals and Table 5, {DEMO_PAIRS} pairs × 5 methods at {DEMO_SIZE}²",
                  min(intervals), min(plain), "s", "the same metrics with tables of bare means", ratio,
                  f"≤ {INTERVALS_TARGET:g}×", ratio <= INTERVALS_TARGET)
    text = (f"Intervals and paired tests at the demo's size ({DEMO_PAIRS} pairs × 5 methods at {DEMO_SIZE}², "
            f"1,000 resamples, best of {repeats}): per-image metrics + tables with intervals and Table 5 "
            f"{min(intervals):.2f} s against {min(plain):.2f} s with bare means: **{ratio:.2f}×** "
            f"(target ≤ {INTERVALS_TARGET:g}×: **{'PASS' if check.passed else 'MISS'}**).")
    return check, text


def run(quick: bool = False) -> Section:
    count, repeats = (16, 1) if quick else (60, 2)
    with tempfile.TemporaryDirectory(prefix="fgi-bench-evaluate-") as tmp:
        say(f"evaluate: making {count} test pairs at {SIZE}²")
        jobs = make_jobs(Path(tmp), count)
        ours_times, reference_times = [], []
        with CpuMeter() as meter:
            for attempt in range(repeats):
                seconds, reference = clocked(reference_table, jobs)
                reference_times.append(seconds)
                seconds, ours = clocked(per_image_table, jobs, workers=0)
                ours_times.append(seconds)
                say(f"evaluate: run {attempt + 1}/{repeats}: reference {reference_times[-1]:.2f} s, "
                    f"ours {ours_times[-1]:.2f} s for {count} images")
            one_process = timed(per_image_table, jobs, workers=1)
        say("evaluate: intervals and Table 5 at the demo's size")
        intervals, intervals_text = intervals_check(Path(tmp), repeats + 1)
    ours_values = ours[METRIC_COLUMNS].to_numpy(dtype=np.float64)  # (count, 12)
    reference_values = np.array(reference, dtype=np.float64)  # (count, 12)
    same = ours_values.shape == reference_values.shape and np.allclose(
        ours_values, reference_values, rtol=1e-9, atol=0, equal_nan=True)
    finite = np.isfinite(ours_values) & np.isfinite(reference_values)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(ours_values - reference_values) / np.abs(reference_values)
    largest = float(np.nanmax(np.where(finite & (reference_values != 0), relative, 0.0)))
    if not same:
        raise AssertionError(f"evaluate: fgi.evaluation.metrics and the scikit-image reference disagree (largest "
                             f"relative difference {largest:.3g}); the speed-up does not count")

    ours_rate, reference_rate, one_rate = count / min(ours_times), count / min(reference_times), count / one_process
    ratio = ours_rate / reference_rate
    check = Check(f"per-image metrics, 3 regions × 4, {SIZE}²", ours_rate, reference_rate, "images/s",
                  "one scikit-image call per region and metric, one process", ratio,
                  f"≥ {TARGET_RATIO:g}×, identical numbers", ratio >= TARGET_RATIO and same)
    rows = [
        ["ours: `per_image_table(jobs, workers=0)`", f"{cores()}", fmt(ours_rate), fmt(1000 / ours_rate),
         f"{ratio:.2f}×"],
        ["ours in one process (`workers=1`)", "1", fmt(one_rate), fmt(1000 / one_rate),
         f"{one_rate / reference_rate:.2f}×"],
        ["reference: a scikit-image call per region and metric", "1", fmt(reference_rate),
         fmt(1000 / reference_rate), "1×"],
    ]
    body = "\n\n".join([
        (f"{count} test pairs at {SIZE}² (synthetic faces, skin+hair foreground, doodle holes of ratio "
         f"0.01–0.6); MSE, MAE, PSNR and SSIM over full, foreground and hole; best of {repeats} alternating "
         f"run(s) per side, PNG decoding included; {meter.describe()}."),
        table(["variant", "processes", "images/s", "ms/image (wall)", "vs reference"], rows),
        (f"Same numbers: **{'yes' if same else 'no'}** — `np.allclose(rtol=1e-9, atol=0, equal_nan=True)` "
         f"over {ours_values.size} values (including one +inf PSNR and one NaN foreground); largest "
         f"relative difference {largest:.2g}."),
        (f"Target ≥ {TARGET_RATIO:g}× with identical numbers: **{'PASS' if check.passed else 'MISS'}** "
         f"({ratio:.2f}×)."),
        intervals_text,
    ])
    return Section(NAME, f"evaluate: per-image metrics at {SIZE}²", body, [check, intervals])
