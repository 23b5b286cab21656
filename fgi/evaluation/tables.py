"""The paper's tables from per-image metrics (docs/design.md §7).

    table1_full        Table 1 of the paper: the whole image
    table2_foreground  Table 2: the foreground region (M_F = 1: face skin + hair)
    table3_hole        the hole region only
    table4_bins        every method per hole-ratio bin (whole image)
    table5_paired      the proposed method against every other: paired differences and tests

Each as `.csv`, `.md` and `.tex` under `reports/tables/`. Tables 1 and 2 put
the paper's published values under each method's row, labelled `published`.
Every measured mean carries its bootstrap interval (`fgi.evaluation.stats`): `mean ± half
width` in md/tex, `<metric> ci_low` / `<metric> ci_high` columns in csv.
`fgi tables` rebuilds them from `reports/per_image.csv` and `reports/fid.json`
without recomputing a metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fgi import files
from fgi.evaluation import stats
from fgi.evaluation.cards import CARDS, Cards, load_cards

METRICS = ("mse", "mae", "fid", "psnr", "ssim", "lpips")
HEADERS = {"mse": "MSE ↓", "mae": "MAE ↓", "fid": "FID ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
TABLES = {"table1_full": "full", "table2_foreground": "foreground", "table3_hole": "hole"}
PSNR_CAP = 100.0
PER_IMAGE_METRICS = ("mse", "mae", "psnr", "ssim", "lpips")  # FID is a distance between sets: no per-pair value
LOWER_IS_BETTER = {"mse", "mae", "fid", "lpips"}
CI_SUFFIXES = (" ci_low", " ci_high")
DEFINITIONS = (
    "Our values: mean over the test pairs of per-image metrics on the saved uint8 outputs (0-255). "
    "MSE and MAE over the region's pixels x channels; PSNR = 10 log10(255^2 / MSE) per image, "
    f"a perfect region (MSE 0) counted as {PSNR_CAP:g} dB; SSIM = mean over the region of one "
    "scikit-image SSIM map per image (Gaussian, sigma 1.5, data range 255), without the 5-pixel image "
    "border that scikit-image's own mean SSIM leaves out; FID = pytorch-fid "
    "(Inception pool3, 2048-d) between the composited outputs and the ground truths, pixels outside "
    "the region set to 0 in both sets; n/a when the Inception weights are not the pretrained ones; "
    "LPIPS = the lpips package's VGG variant (v0.1 linear layers) on the weights stage's VGG16, the whole "
    "image's value per image, a region's the mean of its spatial map over the region; n/a when VGG16 is "
    "not the pretrained one. "
    "Published: Jam et al., 3,000 CelebA-HQ test images at 256x256, metric code unpublished. Their "
    "MSE/MAE cannot be per-pixel values as defined here (CE's MAE 129.30 exceeds sqrt(MSE) = 11.55, "
    "impossible since MAE <= sqrt(MSE); GC's MSE 102.42 would give 28.0 dB, not 39.96), so compare "
    "PSNR, SSIM and FID, not MSE/MAE, across the two."
)


NO_FOREGROUND = ("n/a: this run has no foreground masks (data.source: folder without data.folder.foreground), "
                 "so the foreground region was not measured; the published rows are the paper's.")


def unmeasured(per_image: pd.DataFrame, region: str) -> bool:
    """No pair has a value for the region: the foreground of a run without foreground masks."""
    return bool(per_image[f"{region}/mse"].isna().all())


def method_order(per_image: pd.DataFrame, cards: Cards) -> list[str]:
    return cards.order(per_image["method"])


def summarise(per_image: pd.DataFrame, region: str, fid: dict, cards: Cards) -> dict[str, dict[str, float | None]]:
    """{method: {metric: mean}} for one region; FID from `fid` (None = n/a)."""
    result = {}
    for method in method_order(per_image, cards):
        rows = per_image[per_image["method"] == method]
        psnr = rows[f"{region}/psnr"].clip(upper=PSNR_CAP)
        lpips = rows[f"{region}/lpips"].mean() if f"{region}/lpips" in rows else None  # older runs lack it
        values = {"mse": rows[f"{region}/mse"].mean(), "mae": rows[f"{region}/mae"].mean(),
                  "fid": fid.get(method, {}).get(region), "psnr": psnr.mean(),
                  "ssim": rows[f"{region}/ssim"].mean(), "lpips": lpips}
        result[method] = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                          for k, v in values.items()}
    return result


def paired_values(per_image: pd.DataFrame, region: str, metric: str, cards: Cards) -> pd.DataFrame:
    """(pairs, methods) values of one metric, rows in image_id order, PSNR capped as in the means;
    only the pairs where every method has a value (an empty foreground has none). Empty when
    the metric was not measured (an older run, or LPIPS without its weights)."""
    counts = per_image.groupby("method")["image_id"].nunique()
    if counts.nunique() != 1 or per_image.duplicated(["method", "image_id"]).any():
        raise ValueError("the methods were not evaluated on the same test pairs")
    column = f"{region}/{metric}"
    if column not in per_image:
        return pd.DataFrame(columns=method_order(per_image, cards))
    values = per_image.pivot(index="image_id", columns="method", values=column).sort_index()
    values = values[method_order(per_image, cards)].dropna()
    return values.clip(upper=PSNR_CAP) if metric == "psnr" else values


def intervals(per_image: pd.DataFrame, region: str, bootstrap, cards: Cards) -> dict[str, dict[str, tuple[float, float]]]:
    """{method: {metric: (low, high)}}: the bootstrap interval of each per-pair mean, one set of
    resamples for every method (paired)."""
    result: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in method_order(per_image, cards)}
    indices = None
    for metric in PER_IMAGE_METRICS:
        values = paired_values(per_image, region, metric, cards)
        if values.empty:
            continue
        if indices is None or indices.shape[1] != len(values):  # the same pairs share one set
            indices = stats.resample_indices(len(values), bootstrap.resamples, bootstrap.seed)
        for method in values.columns:
            result[method][metric] = stats.percentile_ci(values[method].to_numpy(), indices, bootstrap.level)
    return result


def with_ci(row: dict, header: str, interval: tuple[float, float] | None) -> None:
    low, high = interval if interval else (None, None)
    row[header + CI_SUFFIXES[0]], row[header + CI_SUFFIXES[1]] = low, high


def comparison_frame(summary: dict, region: str, cards: Cards, cis: dict | None = None) -> pd.DataFrame:
    rows = []
    for method, values in summary.items():
        row = {"Method": cards.display(method), "Author": cards.citation(method),
               "Values": "this run", **{HEADERS[m]: values[m] for m in METRICS}}
        for metric in METRICS:
            with_ci(row, HEADERS[metric], (cis or {}).get(method, {}).get(metric))
        rows.append(row)
        published = cards.get(method, {}).get("published", {}).get(region)
        if published:
            rows.append({"Method": cards.display(method), "Author": cards.citation(method), "Values": "published",
                         **dict(zip((HEADERS[m] for m in METRICS), published))})
    return pd.DataFrame(rows)


def bins_frame(per_image: pd.DataFrame, cards: Cards, bootstrap=None) -> pd.DataFrame:
    """One row per method and hole-ratio bin, bins in ascending order; with `bootstrap`, each
    mean's interval over the bin's pairs (paired across methods within the bin)."""
    labels = sorted(per_image["bin"].unique(), key=lambda label: float(label.strip("(").split(",")[0]))
    columns = {HEADERS["mse"]: "full/mse", HEADERS["mae"]: "full/mae", HEADERS["psnr"]: "full/psnr",
               HEADERS["ssim"]: "full/ssim", HEADERS["lpips"]: "full/lpips", "Hole PSNR ↑": "hole/psnr"}
    columns = {header: column for header, column in columns.items() if column in per_image}
    cis: dict[tuple[str, str, str], tuple[float, float]] = {}
    if bootstrap is not None:
        # One (pairs, methods) table per column, sliced per bin: every pair sits in one bin.
        wide = {header: paired_values(per_image, *column.split("/"), cards) for header, column in columns.items()}
        bin_of_pair = per_image.drop_duplicates("image_id").set_index("image_id")["bin"]
        for index, label in enumerate(labels):
            pairs = bin_of_pair.index[bin_of_pair == label]
            indices = stats.resample_indices(len(pairs), bootstrap.resamples, bootstrap.seed + index + 1)
            for header in columns:
                values = wide[header][wide[header].index.isin(pairs)]
                if len(values) != indices.shape[1]:  # a metric missing on some pairs: no interval
                    continue
                for method in values.columns:
                    cis[method, label, header] = stats.percentile_ci(values[method].to_numpy(), indices,
                                                                     bootstrap.level)
    rows = []
    for method in method_order(per_image, cards):
        of_method = per_image[per_image["method"] == method]
        for label in labels:
            group = of_method[of_method["bin"] == label]
            row = {"Method": cards.display(method), "Hole ratio": label, "Images": len(group)}
            for header, column in columns.items():
                values = group[column].clip(upper=PSNR_CAP) if column.endswith("psnr") else group[column]
                row[header] = values.mean()
            if bootstrap is not None:
                for header in columns:
                    with_ci(row, header, cis.get((method, label, header)))
            rows.append(row)
    return pd.DataFrame(rows)


def paired_frame(per_image: pd.DataFrame, bootstrap, cards: Cards) -> pd.DataFrame:
    """Table 5: for every other method, region and per-pair metric, the mean of (proposed − method)
    over the pairs, its paired bootstrap interval, the Wilcoxon signed-rank p-value and its
    Holm-adjusted value over every test of the table. Empty without a `proposed` method."""
    reference = cards.proposed()
    us = cards.display(reference)
    rows = []
    for region in TABLES.values():
        indices = None
        for metric in PER_IMAGE_METRICS:
            values = paired_values(per_image, region, metric, cards)
            if reference not in values.columns:
                return pd.DataFrame()
            if values.empty:
                continue
            if indices is None or indices.shape[1] != len(values):
                indices = stats.resample_indices(len(values), bootstrap.resamples, bootstrap.seed)
            for method in (m for m in values.columns if m != reference):
                difference = (values[reference] - values[method]).to_numpy()
                low, high = stats.percentile_ci(difference, indices, bootstrap.level)
                rows.append({f"{us} vs": cards.display(method), "Region": region,
                             "Metric": HEADERS[metric], "Pairs": len(difference),
                             f"{us} − other": difference.mean(), f"{us} − other ci_low": low,
                             f"{us} − other ci_high": high, "Wilcoxon p": stats.wilcoxon_p(difference)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["Holm p"] = stats.holm(frame["Wilcoxon p"].tolist())
    frame["Better"] = [verdict(row, 1.0 - bootstrap.level, us) for row in frame.to_dict("records")]
    return frame


def verdict(row: dict, alpha: float, us: str) -> str:
    """Who is better on this row at the Holm-adjusted level `alpha`, or `—` when the test does not say;
    `us` is the proposed method's display name."""
    if row["Holm p"] >= alpha:
        return "—"
    lower_is_better = row["Metric"].split()[0].lower() in LOWER_IS_BETTER
    proposed_better = (row[f"{us} − other"] < 0) == lower_is_better
    return us if proposed_better else row[f"{us} vs"]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"  # SSIM needs the digits
    return str(value)


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column])


def _like(value: float, mean: float) -> str:
    """`value` with as many decimals as `_cell` gives `mean`."""
    return f"{value:.4f}" if abs(mean) < 1 else f"{value:.2f}"


def _p_value(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}")


def display_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """The frame as text cells, each `<metric> ci_low/high` pair folded into its mean: `mean ± half
    width` (symmetric display of the interval; the csv keeps both ends), or `mean [low, high]` for
    differences, whose interval's position against 0 is the point. Returns (cells, right-aligned)."""
    shown = [c for c in frame.columns if not c.endswith(CI_SUFFIXES)]
    right = {c for c in shown if _numeric(frame, c)}
    cells = pd.DataFrame(index=frame.index)
    for column in shown:
        low_key, high_key = (column + suffix for suffix in CI_SUFFIXES)
        texts = []
        for index, value in frame[column].items():
            if column.endswith(" p"):
                texts.append(_p_value(value))
                continue
            text = _cell(value)
            low = frame.at[index, low_key] if low_key in frame else None
            high = frame.at[index, high_key] if high_key in frame else None
            if text != "n/a" and low is not None and not pd.isna(low):
                if column.endswith(" − other"):
                    text = f"{value:+.{4 if abs(value) < 1 else 2}f} [{_like(low, value)}, {_like(high, value)}]"
                else:
                    text += f" ± {_like((high - low) / 2, value)}"
            texts.append(text)
        cells[column] = texts
    return cells, right


def to_markdown(frame: pd.DataFrame, title: str, note: str) -> str:
    cells, right = display_frame(frame)
    lines = [f"### {title}", "", "| " + " | ".join(cells.columns) + " |",
             "|" + "|".join(" ---: " if c in right else " --- " for c in cells.columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines + ["", note, ""])


def to_latex(frame: pd.DataFrame, title: str, note: str) -> str:
    def tex(text: str) -> str:
        return (str(text).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
                .replace("_", r"\_").replace("#", r"\#").replace("↓", r"$\downarrow$").replace("↑", r"$\uparrow$")
                .replace("±", r"$\pm$").replace("−", r"$-$"))
    cells, right = display_frame(frame)
    spec = "".join("r" if c in right else "l" for c in cells.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(title)}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(tex(c) for c in cells.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(v) for v in row) + r" \\" for row in cells.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\par\footnotesize {tex(note)}", r"\end{table}", ""]
    return "\n".join(lines)


TITLES = {"table1_full": "Table 1: the whole image", "table2_foreground": "Table 2: the foreground region (face + hair)",
          "table3_hole": "Table 3: the hole region", "table4_bins": "Table 4: per hole-ratio bin (whole image)",
          "table5_paired": "Table 5: {us} against each other method, paired over the test pairs",
          "table6_components": "Table 6: whole facial components hidden",
          "table6_paired": "Table 6, paired: {us} against each other method, per component"}


def interval_note(bootstrap) -> str:
    return (f"± is half the width of the {bootstrap.level:.0%} percentile bootstrap interval of the mean over the "
            f"test pairs ({bootstrap.resamples:,} resamples, seed {bootstrap.seed}, the same resamples for every "
            "method; Table 4: within each bin); the csv gives both ends (ci_low, ci_high). FID is one distance "
            "between two sets of images, with no per-pair value, so it has no interval here.")


def paired_note(bootstrap, tests: int, us: str) -> str:
    return (f"{us} − other: the mean over the test pairs of {us}'s value minus the other method's on the same "
            f"pair, with its {bootstrap.level:.0%} paired bootstrap interval [low, high] ({bootstrap.resamples:,} "
            f"resamples, seed {bootstrap.seed}). Wilcoxon p: two-sided Wilcoxon signed-rank test of those "
            "differences (scipy; zero differences dropped; 1 when every difference is 0). Holm p: the "
            f"Holm-Bonferroni adjustment over all {tests} tests of this table. Better: the method the difference "
            f"favours where Holm p < {1 - bootstrap.level:.2g}, — where the test does not say. FID has no per-pair "
            "value and is not tested. " + DEFINITIONS)


def title(name: str, cards: Cards) -> str:
    return TITLES[name].format(us=cards.display(cards.proposed() or "the proposed method"))


def write_table(frame: pd.DataFrame, out: Path, name: str, heading: str, note: str = DEFINITIONS) -> None:
    files.write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))
    files.write_text_atomic(out / f"{name}.md", to_markdown(frame, heading, note))
    files.write_text_atomic(out / f"{name}.tex", to_latex(frame, heading, note))


def build_tables(per_image: pd.DataFrame, fid: dict, out: Path, bootstrap, cards: Cards) -> dict:
    """Write every table; return the measured means for `reports/metrics.json`."""
    measured, note = {}, interval_note(bootstrap) + " " + DEFINITIONS
    for name, region in TABLES.items():
        summary = summarise(per_image, region, fid, cards)
        measured[name] = summary
        said = f"{NO_FOREGROUND} {note}" if region == "foreground" and unmeasured(per_image, region) else note
        write_table(comparison_frame(summary, region, cards, intervals(per_image, region, bootstrap, cards)),
                    out, name, title(name, cards), said)
    write_table(bins_frame(per_image, cards, bootstrap), out, "table4_bins", title("table4_bins", cards), note)
    paired = paired_frame(per_image, bootstrap, cards) if cards.proposed() else pd.DataFrame()
    if not paired.empty:
        write_table(paired, out, "table5_paired", title("table5_paired", cards),
                    paired_note(bootstrap, len(paired), cards.display(cards.proposed())))
    return measured


def rebuild(reports: Path, bootstrap) -> dict:
    """`fgi tables`: the tables again from the saved per-image rows, FID values and method cards."""
    per_image = pd.read_csv(reports / "per_image.csv", dtype={"image_id": str})
    fid = json.loads((reports / "fid.json").read_text()) if (reports / "fid.json").exists() else {}
    return build_tables(per_image, fid, reports / "tables", bootstrap, load_cards(reports / CARDS))
