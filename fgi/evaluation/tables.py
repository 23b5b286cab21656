"""The paper's tables from per-image metrics (docs/design.md §7).

    table1_full        Table 1 of the paper: the whole image
    table2_foreground  Table 2: the foreground region (M_F = 1: face skin + hair)
    table3_hole        the hole region only
    table4_bins        every method per hole-ratio bin (whole image)
    table5_paired      the proposed method against every other: paired differences and tests
    table5_all_pairs   every pair of methods, likewise, Holm over the whole table
    table5_ranks       each method's rank by mean PSNR per region and bin, its interval
                       (`fgi.evaluation.ranks`), and groups of methods not ordered strictly

Each as `.csv`, `.md` and `.tex` under `reports/tables/`. Tables 1 and 2 put
the paper's published values under each method's row, labelled `published`.
Every measured mean carries its bootstrap interval (`fgi.evaluation.stats`): `mean ± half
width` in md/tex (`fgi.evaluation.table_text`), `<metric> ci_low` / `<metric> ci_high` columns in csv.
`fgi tables` rebuilds them from `reports/per_image.csv` and `reports/fid.json`
without recomputing a metric.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pandas as pd

from fgi import files
from fgi.evaluation import ranks, stats
from fgi.evaluation.cards import CARDS, Cards, load_cards
from fgi.evaluation.table_text import CI_SUFFIXES, to_latex, to_markdown

METRICS = ("mse", "mae", "fid", "psnr", "ssim", "lpips")
HEADERS = {"mse": "MSE ↓", "mae": "MAE ↓", "fid": "FID ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
TABLES = {"table1_full": "full", "table2_foreground": "foreground", "table3_hole": "hole"}
PSNR_CAP = 100.0
PER_IMAGE_METRICS = ("mse", "mae", "psnr", "ssim", "lpips")  # FID is a distance between sets: no per-pair value
ALL_PAIRS_METRICS = ("psnr", "ssim", "lpips")  # MSE and MAE order the methods as PSNR does, mostly
LOWER_IS_BETTER = {"mse", "mae", "fid", "lpips"}
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


class PairedValues:
    """Every per-pair metric of one run's per-image rows as (pairs, methods) tables, each pivoted
    once: the tables read a region and metric dozens of times, and a pivot per read was a third
    of their time. Call it with (region, metric); see `paired_values`. The tables it returns are
    shared between calls: read them, do not modify them."""

    def __init__(self, per_image: pd.DataFrame, cards: Cards):
        counts = per_image.groupby("method")["image_id"].nunique()
        if counts.nunique() != 1 or per_image.duplicated(["method", "image_id"]).any():
            raise ValueError("the methods were not evaluated on the same test pairs")
        self.per_image, self.methods = per_image, method_order(per_image, cards)
        self._pivoted: dict[str, pd.DataFrame] = {}

    def __call__(self, region: str, metric: str) -> pd.DataFrame:
        column = f"{region}/{metric}"
        if column not in self.per_image:
            return pd.DataFrame(columns=self.methods)
        if column not in self._pivoted:
            values = self.per_image.pivot(index="image_id", columns="method", values=column).sort_index()
            values = values[self.methods].dropna()
            self._pivoted[column] = values.clip(upper=PSNR_CAP) if metric == "psnr" else values
        return self._pivoted[column]


def paired_values(per_image: pd.DataFrame, region: str, metric: str, cards: Cards) -> pd.DataFrame:
    """(pairs, methods) values of one metric, rows in image_id order, PSNR capped as in the means;
    only the pairs where every method has a value (an empty foreground has none). Empty when
    the metric was not measured (an older run, or LPIPS without its weights)."""
    return PairedValues(per_image, cards)(region, metric)


def intervals(per_image: pd.DataFrame, region: str, bootstrap, cards: Cards,
              paired: PairedValues | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """{method: {metric: (low, high)}}: the bootstrap interval of each per-pair mean, one set of
    resamples for every method (paired). `paired`: the rows' `PairedValues`, when already built."""
    paired = paired or PairedValues(per_image, cards)
    result: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in method_order(per_image, cards)}
    indices = None
    for metric in PER_IMAGE_METRICS:
        values = paired(region, metric)
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


def bin_labels(per_image: pd.DataFrame) -> list[str]:
    """The hole-ratio bins, such as "(0.1,0.2]", in ascending order."""
    return sorted(per_image["bin"].unique(), key=lambda label: float(label.strip("(").split(",")[0]))


def bins_frame(per_image: pd.DataFrame, cards: Cards, bootstrap=None, paired: PairedValues | None = None) -> pd.DataFrame:
    """One row per method and hole-ratio bin, bins in ascending order; with `bootstrap`, each
    mean's interval over the bin's pairs (paired across methods within the bin)."""
    labels = bin_labels(per_image)
    columns = {HEADERS["mse"]: "full/mse", HEADERS["mae"]: "full/mae", HEADERS["psnr"]: "full/psnr",
               HEADERS["ssim"]: "full/ssim", HEADERS["lpips"]: "full/lpips", "Hole PSNR ↑": "hole/psnr"}
    columns = {header: column for header, column in columns.items() if column in per_image}
    cis: dict[tuple[str, str, str], tuple[float, float]] = {}
    if bootstrap is not None:
        # One (pairs, methods) table per column, sliced per bin: every pair sits in one bin.
        paired = paired or PairedValues(per_image, cards)
        wide = {header: paired(*column.split("/")) for header, column in columns.items()}
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


def paired_differences(paired: PairedValues, bootstrap, metrics, comparisons):
    """(region, metric, first, second, first − second per pair, its interval) for each pair of
    methods `comparisons(methods)` names, in every region and metric that has values; the
    differences' intervals share one set of resamples per region (paired)."""
    for region in TABLES.values():
        indices = None
        for metric in metrics:
            values = paired(region, metric)
            if values.empty:
                continue
            if indices is None or indices.shape[1] != len(values):
                indices = stats.resample_indices(len(values), bootstrap.resamples, bootstrap.seed)
            for first, second in comparisons(list(values.columns)):
                difference = (values[first] - values[second]).to_numpy()
                yield region, metric, first, second, difference, stats.percentile_ci(difference, indices,
                                                                                     bootstrap.level)


def paired_frame(per_image: pd.DataFrame, bootstrap, cards: Cards, paired: PairedValues | None = None) -> pd.DataFrame:
    """Table 5: for every other method, region and per-pair metric, the mean of (proposed − method)
    over the pairs, its paired bootstrap interval, the Wilcoxon signed-rank p-value and its
    Holm-adjusted value over every test of the table. Empty without a `proposed` method."""
    reference = cards.proposed()
    if reference not in set(per_image["method"]):
        return pd.DataFrame()
    us = cards.display(reference)
    rows = [{f"{us} vs": cards.display(method), "Region": region, "Metric": HEADERS[metric],
             "Pairs": len(difference), f"{us} − other": difference.mean(), f"{us} − other ci_low": low,
             f"{us} − other ci_high": high, "Wilcoxon p": stats.wilcoxon_p(difference)}
            for region, metric, _, method, difference, (low, high) in paired_differences(
                paired or PairedValues(per_image, cards), bootstrap, PER_IMAGE_METRICS,
                lambda methods: [(reference, m) for m in methods if m != reference])]
    return tested(rows, lambda row: verdict(row, 1.0 - bootstrap.level, us))


def all_pairs_frame(per_image: pd.DataFrame, bootstrap, cards: Cards, paired: PairedValues | None = None) -> pd.DataFrame:
    """Table 5 for every pair of methods (A before B in the cards' order), per region and metric
    of ALL_PAIRS_METRICS: the mean of A − B over the pairs, its paired interval, Wilcoxon p,
    Holm p over every test of this table, and the better method where Holm p < 1 − level."""
    rows = [{"Method A": cards.display(first), "Method B": cards.display(second), "Region": region,
             "Metric": HEADERS[metric], "Pairs": len(difference), "A − B": difference.mean(), "A − B ci_low": low,
             "A − B ci_high": high, "Wilcoxon p": stats.wilcoxon_p(difference)}
            for region, metric, first, second, difference, (low, high) in paired_differences(
                paired or PairedValues(per_image, cards), bootstrap, ALL_PAIRS_METRICS, lambda methods: itertools.combinations(methods, 2))]
    return tested(rows, lambda row: better(row["Method A"], row["Method B"], row["Metric"], row["A − B"],
                                           row["Holm p"], 1.0 - bootstrap.level))


def tested(rows: list[dict], winner) -> pd.DataFrame:
    """The rows with `Holm p` over all their Wilcoxon p-values, and `Better` from `winner(row)`."""
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["Holm p"] = stats.holm(frame["Wilcoxon p"].tolist())
        frame["Better"] = [winner(row) for row in frame.to_dict("records")]
    return frame


def better(first: str, second: str, metric: str, difference: float, holm_p: float, alpha: float) -> str:
    """Which of two methods the difference first − second favours on `metric` (a header), where
    its Holm-adjusted p is below `alpha`; `—` where the test does not say."""
    if holm_p >= alpha:
        return "—"
    lower_is_better = metric.split()[0].lower() in LOWER_IS_BETTER
    return first if (difference < 0) == lower_is_better else second


def verdict(row: dict, alpha: float, us: str) -> str:
    """Table 5's `better` for one row; `us` is the proposed method's display name."""
    return better(us, row[f"{us} vs"], row["Metric"], row[f"{us} − other"], row["Holm p"], alpha)


def rank_frame(runs: list[pd.DataFrame], bootstrap, cards: Cards,
               paired: list[PairedValues] | None = None) -> pd.DataFrame:
    """The methods' ranks by mean PSNR (capped) per region, over all pairs and per hole-ratio bin,
    with intervals and groups (`ranks.rank_frame`); `runs`: the per-image rows of one setting's
    training seeds, on the same test pairs (the first gives the bins)."""
    paired = paired or [PairedValues(run, cards) for run in runs]
    psnr = {region: [of_run(region, "psnr") for of_run in paired] for region in TABLES.values()}
    bin_of_pair = runs[0].drop_duplicates("image_id").set_index("image_id")["bin"]
    return ranks.rank_frame({region: frames for region, frames in psnr.items() if not frames[0].empty},
                            bin_labels(runs[0]), bin_of_pair, bootstrap, cards.display)


TITLES = {"table1_full": "Table 1: the whole image", "table2_foreground": "Table 2: the foreground region (face + hair)",
          "table3_hole": "Table 3: the hole region", "table4_bins": "Table 4: per hole-ratio bin (whole image)",
          "table5_paired": "Table 5: {us} against each other method, paired over the test pairs",
          "table5_all_pairs": "Table 5, all pairs: every method against every other, paired over the test pairs",
          "table5_ranks": "Table 5, ranks: each method's rank by mean PSNR, with its interval",
          "table6_components": "Table 6: whole facial components hidden",
          "table6_paired": "Table 6, paired: {us} against each other method, per component"}


def interval_note(bootstrap) -> str:
    return (f"± is half the width of the {bootstrap.level:.0%} percentile bootstrap interval of the mean over the "
            f"test pairs ({bootstrap.resamples:,} resamples, seed {bootstrap.seed}, the same resamples for every "
            "method; Table 4: within each bin); the csv gives both ends (ci_low, ci_high). FID is one distance "
            "between two sets of images, with no per-pair value, so it has no interval here.")


def paired_note(bootstrap, tests: int, us: str | None) -> str:
    """The note under a table of paired differences: the proposed method `us` against every other
    (Table 5, Table 6 paired), or, with `us` None, every pair of methods (table5_all_pairs)."""
    what = (f"{us} − other: the mean over the test pairs of {us}'s value minus the other method's on the same pair"
            if us else "Every pair of methods, A before B in the methods' order. A − B: the mean over the test pairs "
            "of A's value minus B's on the same pair")
    return (f"{what}, with its {bootstrap.level:.0%} paired bootstrap interval [low, high] ({bootstrap.resamples:,} "
            f"resamples, seed {bootstrap.seed}). Wilcoxon p: two-sided Wilcoxon signed-rank test of those "
            "differences (scipy; zero differences dropped; 1 when every difference is 0). Holm p: the "
            f"Holm-Bonferroni adjustment over all {tests} tests of this table. Better: the method the difference "
            f"favours where Holm p < {1 - bootstrap.level:.2g}, — where the test does not say. FID has no per-pair "
            "value and is not tested. " + DEFINITIONS)


def write_comparisons(per_image: pd.DataFrame, out: Path, bootstrap, cards: Cards,
                      paired: PairedValues | None = None) -> list[Path]:
    """Every pair of methods tested (table5_all_pairs) and the ranks with intervals (table5_ranks)
    under `out`; nothing with fewer than two methods. Returns what was written."""
    paired = paired or PairedValues(per_image, cards)
    all_pairs = all_pairs_frame(per_image, bootstrap, cards, paired)
    if all_pairs.empty:
        return []
    write_table(all_pairs, out, "table5_all_pairs", title("table5_all_pairs", cards),
                with_releases(cards, paired_note(bootstrap, len(all_pairs), None)))
    write_table(rank_frame([per_image], bootstrap, cards, [paired]), out, "table5_ranks", title("table5_ranks", cards),
                with_releases(cards, ranks.note(bootstrap, PSNR_CAP)))
    return [out / f"{name}.{kind}" for name in ("table5_all_pairs", "table5_ranks") for kind in ("csv", "md", "tex")]


def with_releases(cards: Cards, note: str) -> str:
    """`note`, after a sentence per method whose weights are a release's (its rows are marked)."""
    released = cards.released_note()
    return f"{released} {note}" if released else note


def title(name: str, cards: Cards) -> str:
    return TITLES[name].format(us=cards.display(cards.proposed() or "the proposed method"))


def write_table(frame: pd.DataFrame, out: Path, name: str, heading: str, note: str = DEFINITIONS) -> None:
    files.write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))
    files.write_text_atomic(out / f"{name}.md", to_markdown(frame, heading, note))
    files.write_text_atomic(out / f"{name}.tex", to_latex(frame, heading, note))


def build_tables(per_image: pd.DataFrame, fid: dict, out: Path, bootstrap, cards: Cards) -> dict:
    """Write every table; return the measured means for `reports/metrics.json`."""
    measured, note = {}, with_releases(cards, interval_note(bootstrap) + " " + DEFINITIONS)
    paired = PairedValues(per_image, cards)
    for name, region in TABLES.items():
        summary = summarise(per_image, region, fid, cards)
        measured[name] = summary
        said = f"{NO_FOREGROUND} {note}" if region == "foreground" and unmeasured(per_image, region) else note
        write_table(comparison_frame(summary, region, cards, intervals(per_image, region, bootstrap, cards, paired)),
                    out, name, title(name, cards), said)
    write_table(bins_frame(per_image, cards, bootstrap, paired), out, "table4_bins", title("table4_bins", cards), note)
    against_us = paired_frame(per_image, bootstrap, cards, paired) if cards.proposed() else pd.DataFrame()
    if not against_us.empty:
        write_table(against_us, out, "table5_paired", title("table5_paired", cards),
                    with_releases(cards, paired_note(bootstrap, len(against_us), cards.display(cards.proposed()))))
    write_comparisons(per_image, out, bootstrap, cards, paired)
    return measured


def rebuild(reports: Path, bootstrap) -> dict:
    """`fgi tables`: the tables again from the saved per-image rows, FID values and method cards."""
    per_image = pd.read_csv(reports / "per_image.csv", dtype={"image_id": str})
    fid = json.loads((reports / "fid.json").read_text()) if (reports / "fid.json").exists() else {}
    return build_tables(per_image, fid, reports / "tables", bootstrap, load_cards(reports / CARDS))
