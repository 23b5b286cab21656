"""Table 6: every method on the component test pairs (stage `holes_semantic`, docs/design.md §7).

    table6_components  per method and component (eyes, nose, mouth, ...): PSNR, SSIM and LPIPS
                       over the hole and over the foreground, each mean with its bootstrap
                       interval over that component's pairs (paired across methods)
    table6_paired      the proposed method against every other, per component, region and metric:
                       the mean paired difference, its interval, Wilcoxon p, and Holm's adjustment
                       over every test of this table

Each as `.csv`, `.md` and `.tex` under `reports/tables/`, from
`reports/per_image_components.csv` (one row per method and component pair, the
columns of `reports/per_image.csv`, the component in `bin`). The whole image
is left out: outside the hole every output is the input, so full-image and
hole differences tell the same story.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fgi.evaluation import tables
from fgi.evaluation.cards import CARDS, Cards, load_cards

REGIONS = ("hole", "foreground")
METRICS = ("psnr", "ssim", "lpips")


def components_of(per_image: pd.DataFrame) -> list[str]:
    """The components in the order the stage wrote them."""
    return list(dict.fromkeys(per_image["bin"]))


def header(region: str, metric: str) -> str:
    return f"{region.capitalize()} {tables.HEADERS[metric]}"


def summary_frame(per_image: pd.DataFrame, bootstrap, cards: Cards) -> tuple[pd.DataFrame, dict]:
    """One row per method and component; and {method: {component: {region/metric: mean}}}."""
    components = components_of(per_image)
    by_component = {}  # (component, region) -> (means, intervals), one set of resamples per component
    for component in components:
        pairs = per_image[per_image["bin"] == component]
        for region in REGIONS:
            by_component[component, region] = (tables.summarise(pairs, region, {}, cards),
                                                tables.intervals(pairs, region, bootstrap, cards))
    rows, measured = [], {}
    for method in tables.method_order(per_image, cards):
        for component in components:
            of_pair = (per_image["method"] == method) & (per_image["bin"] == component)
            row = {"Method": cards.display(method), "Component": component, "Pairs": int(of_pair.sum())}
            for region in REGIONS:
                means, cis = by_component[component, region]
                for metric in METRICS:
                    row[header(region, metric)] = means[method][metric]
                    tables.with_ci(row, header(region, metric), cis.get(method, {}).get(metric))
                    measured.setdefault(method, {}).setdefault(component, {})[f"{region}/{metric}"] = \
                        means[method][metric]
            rows.append(row)
    return pd.DataFrame(rows), measured


def paired_frame(per_image: pd.DataFrame, bootstrap, cards: Cards) -> pd.DataFrame:
    """Table 5's paired tests, per component, on the hole and foreground PSNR, SSIM and LPIPS;
    Holm's adjustment over every row. Empty without a `proposed` method."""
    parts = []
    for component in components_of(per_image):
        frame = tables.paired_frame(per_image[per_image["bin"] == component], bootstrap, cards)
        if frame.empty:
            return frame
        frame = frame[frame["Region"].isin(REGIONS)
                      & frame["Metric"].isin([tables.HEADERS[m] for m in METRICS])].drop(columns=["Holm p", "Better"])
        frame.insert(1, "Component", component)
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True)
    us = cards.display(cards.proposed())
    frame["Holm p"] = tables.stats.holm(frame["Wilcoxon p"].tolist())
    frame["Better"] = [tables.verdict(row, 1.0 - bootstrap.level, us) for row in frame.to_dict("records")]
    return frame


def build_component_tables(per_image: pd.DataFrame, out, bootstrap, cards: Cards) -> dict:
    """Write Table 6 and its paired tests; return the measured means for `reports/metrics.json`."""
    summary, measured = summary_frame(per_image, bootstrap, cards)
    note = (tables.interval_note(bootstrap).replace("Table 4: within each bin", "here: within each component")
            + " Holes: each face's component (its CelebAMask-HQ parts) dilated by holes.semantic.margin; faces "
            "lacking a component are skipped (data/holes_semantic/summary.json). " + tables.DEFINITIONS)
    tables.write_table(summary, out, "table6_components", tables.title("table6_components", cards), note)
    if cards.proposed():
        paired = paired_frame(per_image, bootstrap, cards)
        if not paired.empty:
            tables.write_table(paired, out, "table6_paired", tables.title("table6_paired", cards),
                               tables.paired_note(bootstrap, len(paired), cards.display(cards.proposed())))
    return measured


def rebuild(reports: Path, bootstrap) -> dict | None:
    """`fgi tables`: Table 6 again from `reports/per_image_components.csv`; None when there is none."""
    path = reports / "per_image_components.csv"
    if not path.is_file():
        return None
    per_image = pd.read_csv(path, dtype={"image_id": str})
    if per_image.empty:  # a run without component pairs (a folder source) writes the header only
        return None
    return build_component_tables(per_image, reports / "tables", bootstrap, load_cards(reports / CARDS))
