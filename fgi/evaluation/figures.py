"""The report's figures (docs/design.md §4, stage `report`), drawn with matplotlib's Agg backend.

    foreground_figure    Fig. 3 of Jam et al.: test images, their foreground masks M_F, M_F overlaid
    comparison_figure    Fig. 4 (whole image) and Fig. 5 (`foreground_only`: outside M_F black)
    curves_figure        each model's generator loss and validation hole-PSNR against the step
    bins_figure          full-image PSNR, SSIM, MAE, hole and foreground PSNR, foreground SSIM per
                         hole-ratio bin and method, with bootstrap intervals

Every function takes arrays and frames already loaded (uint8 (H, W, 3) images,
bool (H, W) masks) and returns a Figure; `save_figure` writes it atomically.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # no display on a DVC worker or a CI runner

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fgi import files  # noqa: E402
from fgi.evaluation import stats  # noqa: E402
from fgi.evaluation.cards import Cards  # noqa: E402
from fgi.evaluation.tables import PSNR_CAP, method_order  # noqa: E402

CELL_INCHES = 1.35  # one image panel; 64² images stay legible, 256² ones are not cramped
OVERLAY_RGB = np.array([0, 200, 120], dtype=np.float64)  # a green no synthetic skin or hair has
HOLE_RGB = 255  # the paper's figures show holes white
OUTSIDE_FOREGROUND_RGB = 0


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int) -> None:
    """Write `figure` as a PNG at `dpi` (atomically) and free it."""
    with files.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white",
                       metadata={"Software": None})  # no version string: the same inputs give the same bytes
    plt.close(figure)


def bin_order(labels) -> list[str]:
    """Hole-ratio bin labels such as "(0.1,0.2]" in ascending order."""
    return sorted(set(labels), key=lambda label: float(label.strip("(").split(",")[0]))


# ---------------------------------------------------------------- image panels


def masked_input(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """What a model is given, drawn as in the paper: the hole white."""
    shown = image.copy()
    shown[hole] = HOLE_RGB
    return shown


def only_foreground(image: np.ndarray, fg_mask: np.ndarray) -> np.ndarray:
    """Fig. 5's view: the face and hair as they are, everything outside M_F black."""
    shown = image.copy()
    shown[~fg_mask] = OUTSIDE_FOREGROUND_RGB
    return shown


def overlay(image: np.ndarray, fg_mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """`image` with M_F tinted green, so the mask can be checked against the face."""
    tinted = image.astype(np.float64)
    tinted[fg_mask] = (1 - alpha) * tinted[fg_mask] + alpha * OVERLAY_RGB
    return np.round(tinted).astype(np.uint8)


def _color(method: str, index: int, cards: Cards) -> str:
    """One colour per method in every plot: its place among the compared methods; a method without a
    card (eval.external) sits after them, so its own index is free."""
    return f"C{list(cards).index(method)}" if method in cards else f"C{index}"


def _panel(axis, image: np.ndarray, title: str | None = None) -> None:
    # Nearest neighbour: at 32² or 64² a smoothed upscale would hide the very artefacts compared.
    axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    if title:
        axis.set_title(title, fontsize=9)


# ---------------------------------------------------------------- figures


def foreground_figure(samples: list[dict]) -> Figure:
    """Fig. 3: one column per sample (`image_id`, `image`, `fg_mask`); rows image | M_F | overlay."""
    rows = (("image", lambda s: s["image"]), ("M_F", lambda s: s["fg_mask"].astype(np.uint8) * 255),
            ("M_F overlaid", lambda s: overlay(s["image"], s["fg_mask"])))
    figure, axes = plt.subplots(len(rows), len(samples), squeeze=False, layout="constrained",
                                figsize=(CELL_INCHES * len(samples), CELL_INCHES * len(rows) + 0.3))
    for column, sample in enumerate(samples):
        for row, (label, draw) in enumerate(rows):
            _panel(axes[row, column], draw(sample), sample["image_id"] if row == 0 else None)
            if column == 0:
                axes[row, column].set_ylabel(label, fontsize=9)
    figure.suptitle("Test images and their foreground masks M_F", fontsize=10)
    return figure


def comparison_figure(rows: list[dict], methods: list[str], cards: Cards, foreground_only: bool = False,
                      heading: str | None = None) -> Figure:
    """Fig. 4/5: one row per test pair; columns masked input | each method | ground truth.

    Each row dict holds `image_id`, `bin`, `hole_ratio`, `truth`, `hole`, `fg_mask` and
    `outputs` ({method: composited output}).
    """
    titles = ["masked input", *(cards.display(m) for m in methods), "ground truth"]
    figure, axes = plt.subplots(len(rows), len(titles), squeeze=False, layout="constrained",
                                figsize=(CELL_INCHES * len(titles), CELL_INCHES * len(rows) + 0.4))
    for index, row in enumerate(rows):
        panels = [masked_input(row["truth"], row["hole"]), *(row["outputs"][m] for m in methods), row["truth"]]
        if foreground_only:
            # The hole stays white inside M_F; outside M_F nothing is shown, as in the paper's Fig. 5.
            panels = [only_foreground(panel, row["fg_mask"]) for panel in panels]
        for column, panel in enumerate(panels):
            _panel(axes[index, column], panel, titles[column] if index == 0 else None)
        axes[index, 0].set_ylabel(f"{row['bin']}\nratio {row['hole_ratio']:.2f}\n{row['image_id']}", fontsize=8)
    region = "the foreground region (outside M_F black)" if foreground_only else "the whole image"
    figure.suptitle(heading or f"Composited outputs per hole-ratio bin: {region}", fontsize=10)
    return figure


def curves_figure(curves: dict[str, pd.DataFrame], validation: dict[str, pd.DataFrame], cards: Cards,
                  reference: tuple[str, float] | None = None) -> Figure:
    """Top: `g/total` per model (each its own scale, log when positive); bottom: validation hole-PSNR,
    with `reference` (a method with no training, and its hole PSNR on the same pairs) as a dashed line."""
    models = list(curves)
    figure = plt.figure(figsize=(3.2 * len(models), 6.4))
    grid = figure.add_gridspec(2, len(models), hspace=0.45, wspace=0.35)
    for column, model in enumerate(models):
        axis = figure.add_subplot(grid[0, column])
        curve = curves[model].dropna(subset=["g/total"])
        axis.plot(curve["step"], curve["g/total"], marker="." if len(curve) < 30 else None,
                  color=_color(model, column, cards))
        # Each model weighs its own terms, so the totals share no scale and each panel has its own axis;
        # log when every value is positive (hinge and WGAN terms can push a total below zero).
        if len(curve) and (curve["g/total"] > 0).all():
            axis.set_yscale("log")
        axis.set_title(f"{cards.display(model)}: generator loss", fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(which="both", labelsize=7)
        axis.grid(alpha=0.3)
    axis = figure.add_subplot(grid[1, :])
    for column, model in enumerate(models):
        val = validation[model].dropna(subset=["psnr_hole"])
        axis.plot(val["step"], val["psnr_hole"], marker="o", markersize=3, label=cards.display(model),
                  color=_color(model, column, cards))
    if reference is not None and np.isfinite(reference[1]):
        name, value = reference
        axis.axhline(value, linestyle="--", linewidth=1.2, color="0.35",
                     label=f"{cards.display(name)} (no training): {value:.1f} dB")
    axis.set_title("validation PSNR inside the holes (fixed batch of test pairs)", fontsize=9)
    axis.set_xlabel("step", fontsize=8)
    axis.set_ylabel("dB", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


BIN_METRICS = (("full/psnr", "full-image PSNR (dB) ↑"), ("full/ssim", "full-image SSIM ↑"),
               ("full/mae", "full-image MAE (0-255) ↓"), ("hole/psnr", "hole PSNR (dB) ↑"),
               ("foreground/psnr", "foreground PSNR (dB) ↑"), ("foreground/ssim", "foreground SSIM ↑"))


def _bin_values(per_image: pd.DataFrame, column: str) -> pd.Series:
    """`column` as the tables count it: PSNR capped at `PSNR_CAP` (a perfect region would be
    infinite); NaN values, e.g. an SSIM over an empty region, are left out."""
    values = per_image[column].clip(upper=PSNR_CAP) if column.endswith("/psnr") else per_image[column]
    return values


def bins_means(per_image: pd.DataFrame, column: str, cards: Cards) -> pd.DataFrame:
    """Mean of `column` per method (columns, in the tables' order) and bin (rows, ascending)."""
    values = _bin_values(per_image, column)
    means = values.groupby([per_image["bin"], per_image["method"]]).mean().unstack("method")
    return means.reindex(index=bin_order(per_image["bin"]), columns=method_order(per_image, cards))


def bins_intervals(per_image: pd.DataFrame, column: str, cards: Cards, bootstrap) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(low, high): the percentile bootstrap interval of each mean of `bins_means`, resampling the
    bin's test pairs as the tables do (`eval.bootstrap`)."""
    values = _bin_values(per_image, column)
    means = bins_means(per_image, column, cards)
    low, high = means.copy() * np.nan, means.copy() * np.nan
    for (bin_label, method), group in values.groupby([per_image["bin"], per_image["method"]]):
        finite = group.dropna().to_numpy()
        if len(finite) and method in means.columns:
            indices = stats.resample_indices(len(finite), bootstrap.resamples, bootstrap.seed)
            low.loc[bin_label, method], high.loc[bin_label, method] = stats.percentile_ci(
                finite, indices, bootstrap.level)
    return low, high


def bins_figure(per_image: pd.DataFrame, cards: Cards, bootstrap) -> Figure:
    """One panel per metric of `BIN_METRICS`; x = hole-ratio bin, one line per method with its
    bootstrap interval as a band."""
    figure, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for axis, (column, title) in zip(axes.flat, BIN_METRICS):
        means = bins_means(per_image, column, cards)
        low, high = bins_intervals(per_image, column, cards, bootstrap)
        positions = np.arange(len(means.index))
        for index, method in enumerate(means.columns):
            color = _color(method, index, cards)
            axis.plot(positions, means[method].to_numpy(), marker="o", markersize=4, color=color,
                      label=cards.display(method))
            axis.fill_between(positions, low[method].to_numpy(dtype=float), high[method].to_numpy(dtype=float),
                              color=color, alpha=0.15, linewidth=0)
        axis.set_xticks(positions, means.index, fontsize=7)
        axis.set_xlabel("hole-to-image ratio", fontsize=8)
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(f"Metrics per hole-ratio bin: mean over the bin's test pairs, band = {bootstrap.level:.0%} "
                    "bootstrap interval", fontsize=10)
    figure.tight_layout()
    return figure
