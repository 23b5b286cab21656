"""A table as text: the cells of a table frame, and the frame as Markdown and LaTeX.

Each `<column> ci_low` / `<column> ci_high` pair of a frame (`fgi.evaluation.tables`) folds
into its column's cell: `mean ± half width` for a mean, `difference [low, high]` for a
difference (a column named `X − Y`), `rank [low, high]` for a rank; p-values (columns
ending in ` p`) in scientific notation below 0.001.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CI_SUFFIXES = (" ci_low", " ci_high")


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
    differences, whose interval's position against 0 is the point, and for ranks. Returns (cells,
    right-aligned)."""
    shown = [c for c in frame.columns if not c.endswith(CI_SUFFIXES)]
    right = {c for c in shown if _numeric(frame, c)}
    cells = pd.DataFrame(index=frame.index)
    for column in shown:
        low_key, high_key = (column + suffix for suffix in CI_SUFFIXES)
        values = frame[column].tolist()
        if column.endswith(" p"):
            cells[column] = [_p_value(value) for value in values]
            continue
        # Whole columns as lists: a cell lookup per value (frame.at) was most of a table's time.
        lows = frame[low_key].tolist() if low_key in frame else [None] * len(values)
        highs = frame[high_key].tolist() if high_key in frame else [None] * len(values)
        texts = []
        for value, low, high in zip(values, lows, highs):
            text = _cell(value)
            if text != "n/a" and low is not None and not pd.isna(low):
                if column == "Rank":
                    text = f"{value} [{low}, {high}]"
                elif " − " in column:
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
