"""The paper's tables from per-image metrics (docs/design.md §7).

    table1_full        Table 1 of the paper: the whole image
    table2_foreground  Table 2: the foreground region (M_F = 1: face skin + hair)
    table3_hole        the hole region only
    table4_bins        every method per hole-ratio bin (whole image)

Each as `.csv`, `.md` and `.tex` under `reports/tables/`. Tables 1 and 2 put
the paper's published values under each method's row, labelled `published`.
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

METRICS = ("mse", "mae", "fid", "psnr", "ssim")
HEADERS = {"mse": "MSE ↓", "mae": "MAE ↓", "fid": "FID ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑"}
METHODS = ("ce", "pconv", "gc", "ours", "biharmonic")
DISPLAY = {"ce": "CE", "pconv": "PConv", "gc": "GC", "ours": "Ours", "biharmonic": "Biharmonic"}
AUTHORS = {"ce": "Pathak et al. [3]", "pconv": "Liu et al. [4]", "gc": "Yu et al. [6]",
           "ours": "Foreground-guided", "biharmonic": "scikit-image (reference)"}
# Jam et al., Tables 1 and 2: 3,000 CelebA-HQ test images at 256².
PUBLISHED = {
    "full": {"ce": (133.481, 129.30, 29.96, 27.71, 0.76), "pconv": (124.62, 105.94, 15.86, 28.82, 0.90),
             "gc": (102.42, 43.10, 4.29, 39.96, 0.92), "ours": (194.86, 57.38, 9.63, 34.35, 0.92)},
    "foreground": {"ce": (133.481, 129.30, 27.38, 27.71, 0.76), "pconv": (102.72, 4.35, 7.99, 29.24, 0.87),
                   "gc": (29.14, 1.47, 2.23, 35.33, 0.95), "ours": (26.01, 2.58, 1.19, 37.38, 0.96)},
}
TABLES = {"table1_full": "full", "table2_foreground": "foreground", "table3_hole": "hole"}
PSNR_CAP = 100.0
DEFINITIONS = (
    "Our values: mean over the test pairs of per-image metrics on the saved uint8 outputs (0-255). "
    "MSE and MAE over the region's pixels x channels; PSNR = 10 log10(255^2 / MSE) per image, "
    f"a perfect region (MSE 0) counted as {PSNR_CAP:g} dB; SSIM = mean over the region of one "
    "scikit-image SSIM map per image (Gaussian, sigma 1.5, data range 255), without the 5-pixel image "
    "border that scikit-image's own mean SSIM leaves out; FID = pytorch-fid "
    "(Inception pool3, 2048-d) between the composited outputs and the ground truths, pixels outside "
    "the region set to 0 in both sets; n/a when the Inception weights are not the pretrained ones. "
    "Published: Jam et al., 3,000 CelebA-HQ test images at 256x256, metric code unpublished. Their "
    "MSE/MAE cannot be per-pixel values as defined here (CE's MAE 129.30 exceeds sqrt(MSE) = 11.55, "
    "impossible since MAE <= sqrt(MSE); GC's MSE 102.42 would give 28.0 dB, not 39.96), so compare "
    "PSNR, SSIM and FID, not MSE/MAE, across the two."
)


def method_order(per_image: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(per_image["method"]))
    return [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]


def summarise(per_image: pd.DataFrame, region: str, fid: dict) -> dict[str, dict[str, float | None]]:
    """{method: {metric: mean}} for one region; FID from `fid` (None = n/a)."""
    result = {}
    for method in method_order(per_image):
        rows = per_image[per_image["method"] == method]
        psnr = rows[f"{region}/psnr"].clip(upper=PSNR_CAP)
        values = {"mse": rows[f"{region}/mse"].mean(), "mae": rows[f"{region}/mae"].mean(),
                  "fid": fid.get(method, {}).get(region), "psnr": psnr.mean(),
                  "ssim": rows[f"{region}/ssim"].mean()}
        result[method] = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                          for k, v in values.items()}
    return result


def comparison_frame(summary: dict, region: str) -> pd.DataFrame:
    rows = []
    for method, values in summary.items():
        rows.append({"Method": DISPLAY.get(method, method), "Author": AUTHORS.get(method, "external"),
                     "Values": "this run", **{HEADERS[m]: values[m] for m in METRICS}})
        published = PUBLISHED.get(region, {}).get(method)
        if published:
            rows.append({"Method": DISPLAY[method], "Author": AUTHORS[method], "Values": "published",
                         **dict(zip((HEADERS[m] for m in METRICS), published))})
    return pd.DataFrame(rows)


def bins_frame(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per method and hole-ratio bin, bins in ascending order."""
    labels = sorted(per_image["bin"].unique(), key=lambda label: float(label.strip("(").split(",")[0]))
    rows = []
    for method in method_order(per_image):
        of_method = per_image[per_image["method"] == method]
        for label in labels:
            group = of_method[of_method["bin"] == label]
            rows.append({"Method": DISPLAY.get(method, method), "Hole ratio": label, "Images": len(group),
                         HEADERS["mse"]: group["full/mse"].mean(), HEADERS["mae"]: group["full/mae"].mean(),
                         HEADERS["psnr"]: group["full/psnr"].clip(upper=PSNR_CAP).mean(),
                         HEADERS["ssim"]: group["full/ssim"].mean(),
                         "Hole PSNR ↑": group["hole/psnr"].clip(upper=PSNR_CAP).mean()})
    return pd.DataFrame(rows)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"  # SSIM needs the digits
    return str(value)


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column])


def to_markdown(frame: pd.DataFrame, title: str, note: str) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(frame.columns) + " |",
             "|" + "|".join(" ---: " if _numeric(frame, c) else " --- " for c in frame.columns) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines + ["", note, ""])


def to_latex(frame: pd.DataFrame, title: str, note: str) -> str:
    def tex(text: str) -> str:
        return (str(text).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
                .replace("_", r"\_").replace("#", r"\#").replace("↓", r"$\downarrow$").replace("↑", r"$\uparrow$"))
    spec = "".join("r" if _numeric(frame, c) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(title)}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(tex(c) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(_cell(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\par\footnotesize {tex(note)}", r"\end{table}", ""]
    return "\n".join(lines)


TITLES = {"table1_full": "Table 1: the whole image", "table2_foreground": "Table 2: the foreground region (face + hair)",
          "table3_hole": "Table 3: the hole region", "table4_bins": "Table 4: per hole-ratio bin (whole image)"}


def write_table(frame: pd.DataFrame, out: Path, name: str) -> None:
    files.write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))
    files.write_text_atomic(out / f"{name}.md", to_markdown(frame, TITLES[name], DEFINITIONS))
    files.write_text_atomic(out / f"{name}.tex", to_latex(frame, TITLES[name], DEFINITIONS))


def build_tables(per_image: pd.DataFrame, fid: dict, out: Path) -> dict:
    """Write every table; return the measured values for `reports/metrics.json`."""
    measured = {}
    for name, region in TABLES.items():
        summary = summarise(per_image, region, fid)
        measured[name] = summary
        write_table(comparison_frame(summary, region), out, name)
    write_table(bins_frame(per_image), out, "table4_bins")
    return measured


def rebuild(reports: Path = Path("reports")) -> dict:
    """`fgi tables`: the tables again from the saved per-image rows and FID values."""
    per_image = pd.read_csv(reports / "per_image.csv", dtype={"image_id": str})
    fid = json.loads((reports / "fid.json").read_text()) if (reports / "fid.json").exists() else {}
    return build_tables(per_image, fid, reports / "tables")
