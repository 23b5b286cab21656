"""The `report` stage: the figures, `report.md` and a self-contained `report.html` of one run.

Reads what the earlier stages wrote (the test pairs, ground truths, foreground
masks, every method's composited outputs, the training curves, the per-image
metrics, Tables 1-5 and the method cards) and writes under `out/`:

    figures/fig3_foreground.png   Fig. 3 of Jam et al.: test images and their foreground masks M_F
    figures/fig4_comparison.png   Fig. 4: masked input | each method | ground truth
    figures/fig5_foreground.png   Fig. 5: the same rows, only the foreground region shown
    figures/training_curves.png   generator loss and validation hole-PSNR of each learned model
    figures/metrics_by_bin.png    PSNR, SSIM, MAE and hole PSNR per hole-ratio bin
    report.md                     run identity, weights provenance, the tables, the figures, the params
    report.html                   the same page for a browser, offline: figures as data URIs, no script

`report.html` is rendered from `report.md` by the small converter below, so
the two never disagree; a Content-Security-Policy forbids every network fetch.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fgi import files, tracking
from fgi.config import Params, to_dict
from fgi.data.layout import foreground_available, read_csv
from fgi.errors import UserError
from fgi.evaluation import figures
from fgi.evaluation.cards import CARDS, Cards, load_cards
from fgi.evaluation.tables import DEFINITIONS, PSNR_CAP, TABLES, TITLES, title

TABLE_NAMES = (*TABLES, "table4_bins", "table5_paired", "table6_components", "table6_paired")
COMPONENT_TABLES = ("table6_components", "table6_paired")  # only where the component pairs were evaluated
FIGURES = {  # name: (heading, caption)
    "fig3_foreground": ("Fig. 3: foreground masks",
                        "Test images, their foreground masks M_F (the union of `foreground.parts`; the paper's "
                        "skin + hair) and M_F overlaid in green."),
    "fig4_comparison": ("Fig. 4: qualitative comparison",
                        "The masked input (holes white), each method's composited output and the ground truth, "
                        "for test pairs spread over the hole-ratio bins."),
    "fig5_foreground": ("Fig. 5: the foreground region",
                        "The same test pairs with only the foreground region M_F shown (outside M_F black), "
                        "where the foreground-guided losses act."),
    "training_curves": ("Training curves",
                        "Each learned model's total generator loss and its PSNR inside the holes of a fixed "
                        "validation batch of test pairs (monitoring only; nothing is selected on it)."),
    "metrics_by_bin": ("Metrics per hole-ratio bin",
                       "Full-image PSNR, SSIM, MAE and hole PSNR per hole-ratio bin and method, means over the "
                       "bin's test pairs (PSNR capped at 100 dB, as in the tables)."),
    "fig6_components": ("Fig. 6: whole components hidden",
                        "One test face, one row per component of `holes.semantic` (its parts dilated by the "
                        "margin): the masked input, each method's composited output and the ground truth."),
}
FOREGROUND_SAMPLES = 4  # Fig. 3 shows a handful of faces, as the paper does
FOREGROUND_FIGURES = ("fig3_foreground", "fig5_foreground")  # drawn only where the run has foreground masks


def need(path: Path, stage: str) -> Path:
    """`path` if it is a file, else the UserError naming the stage that writes it."""
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro {stage}`")
    return path


def pick_pairs(pairs: list[dict], samples_per_bin: int) -> list[dict]:
    """The first `samples_per_bin` test pairs (by image id) of every hole-ratio bin, bins ascending."""
    picked = []
    for label in figures.bin_order(pair["bin"] for pair in pairs):
        in_bin = sorted((pair for pair in pairs if pair["bin"] == label), key=lambda pair: pair["image_id"])
        picked += in_bin[:samples_per_bin]
    return picked


def load_pair(root: Path, pair: dict, methods: list[str], holes: str = "holes") -> dict:
    """Ground truth, hole, M_F (None in a run without foreground masks) and every method's output of one
    test pair of `data/<holes>`, as arrays. A component pair's output is `components/<mask>` (a face has
    one per component)."""
    image_id = pair["image_id"]
    output = f"{image_id}.png" if holes == "holes" else f"components/{pair['mask']}"
    outputs = {method: files.load_image_rgb(need(root / "data/predictions" / method / output, f"predict@{method}"))
               for method in methods}
    return {"image_id": image_id, "bin": pair["bin"], "hole_ratio": float(pair["hole_ratio"]),
            "truth": files.load_image_rgb(need(root / "data/prepared/images" / f"{image_id}.png", "prepare")),
            "hole": files.load_mask(need(root / "data" / holes / pair["mask"], holes)),
            "fg_mask": files.load_mask(need(root / "data/foreground" / f"{image_id}.png", "foreground"))
            if foreground_available(root / "data/foreground") else None,
            "outputs": outputs}


def revision(root: Path) -> dict:
    """The git commit and the dvc.lock the report was made from."""
    lock = root / "dvc.lock"
    return {"git_commit": tracking.git_commit(root),
            "dvc_lock": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None}


def read_curves(root: Path, cards: Cards) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Each trained method's `curve.csv` and `val.csv`, in the tables' order (not a learned method
    whose weights are a release's: nothing was trained here)."""
    curves, validation = {}, {}
    trained = (method for method in cards.predicted() if cards[method]["learned"] and not cards[method].get("released"))
    for model in trained:
        curves[model] = pd.read_csv(need(root / "models" / model / "curve.csv", f"train@{model}"))
        validation[model] = pd.read_csv(need(root / "models" / model / "val.csv", f"train@{model}"))
    return curves, validation


def validation_reference(per_image: pd.DataFrame, pairs: list[dict], val_images: int,
                         cards: Cards) -> tuple[str, float] | None:
    """The reference method (no training) and its hole PSNR on the training loop's validation pairs
    (the first `val_images` test pairs, one per image), averaged as training validates: +inf capped."""
    reference = next(iter(cards.with_role("reference")), None)
    if reference is None:
        return None
    val_ids = {pair["image_id"] for pair in pairs[:val_images]}
    rows = per_image[(per_image["method"] == reference) & per_image["image_id"].astype(str).isin(val_ids)]
    return reference, float(np.minimum(rows["hole/psnr"], PSNR_CAP).mean()) if len(rows) else float("nan")


def draw_figures(params: Params, root: Path, out: Path, pairs: list[dict], per_image: pd.DataFrame,
                 curves: dict[str, pd.DataFrame], validation: dict[str, pd.DataFrame], cards: Cards) -> dict[str, Path]:
    """Write the five figures under `out/figures/`; return {name: path}."""
    dpi = params.report.dpi
    paths = {name: out / "figures" / f"{name}.png" for name in FIGURES}
    with_foreground = foreground_available(root / "data/foreground")

    if with_foreground:
        faces = sorted({pair["image_id"] for pair in pairs})[:FOREGROUND_SAMPLES]
        samples = [{"image_id": image_id,
                    "image": files.load_image_rgb(need(root / "data/prepared/images" / f"{image_id}.png", "prepare")),
                    "fg_mask": files.load_mask(need(root / "data/foreground" / f"{image_id}.png", "foreground"))}
                   for image_id in faces]
        figures.save_figure(figures.foreground_figure(samples), paths["fig3_foreground"], dpi)

    methods = cards.predicted()
    rows = [load_pair(root, pair, methods) for pair in pick_pairs(pairs, params.report.samples_per_bin)]
    figures.save_figure(figures.comparison_figure(rows, methods, cards), paths["fig4_comparison"], dpi)
    if with_foreground:
        figures.save_figure(figures.comparison_figure(rows, methods, cards, foreground_only=True),
                            paths["fig5_foreground"], dpi)
    else:
        for name in FOREGROUND_FIGURES:
            del paths[name]

    reference = validation_reference(per_image, pairs, params.train.val_images, cards)
    figures.save_figure(figures.curves_figure(curves, validation, cards, reference), paths["training_curves"], dpi)
    figures.save_figure(figures.bins_figure(per_image, cards, params.eval.bootstrap), paths["metrics_by_bin"], dpi)
    component_pairs = root / "data/holes_semantic/test_pairs.csv"
    if component_pairs.is_file():
        rows = [load_pair(root, pair, methods, "holes_semantic") for pair in one_face(read_csv(component_pairs))]
        figures.save_figure(figures.comparison_figure(rows, methods, cards, heading="Composited outputs with one "
                                                      "whole component hidden"), paths["fig6_components"], dpi)
    else:
        del paths["fig6_components"]
    return paths


def one_face(pairs: list[dict]) -> list[dict]:
    """The component pairs of the first test face (by id) that has every component, else of the first face."""
    components = set(pair["bin"] for pair in pairs)
    by_face: dict[str, list[dict]] = {}
    for pair in pairs:
        by_face.setdefault(pair["image_id"], []).append(pair)
    complete = sorted(face for face, of_face in by_face.items() if {p["bin"] for p in of_face} == components)
    return by_face[complete[0] if complete else min(by_face)]


# ---------------------------------------------------------------- Markdown


def _cell(text) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def render_markdown(params: Params, pairs: list[dict], provenance: dict, tables: dict[str, str],
                    ids: dict, cards: Cards, drawn=FIGURES) -> str:
    labels = figures.bin_order(pair["bin"] for pair in pairs)
    per_bin = {label: sum(pair["bin"] == label for pair in pairs) for label in labels}
    weights = ", ".join(f"{name}: {entry.get('status', '?')}" for name, entry in provenance.items())
    lock = f"sha256 `{ids['dvc_lock'][:16]}` (present)" if ids["dvc_lock"] else "absent (not run with `dvc repro`)"
    lines = [
        f"# fgi report: profile `{params.profile}`", "",
        "A run of the pipeline reproducing Jam et al., *Foreground-guided Facial Inpainting with Fidelity "
        "Preservation*: " + ", ".join(f"{card['display']} ({card['citation']})" for card in cards.values())
        + ", all on the same fixed test pairs.", "",
        "## Run", "",
        "| what | value |", "| --- | --- |",
        f"| profile | `{params.profile}` |",
        f"| git commit | `{ids['git_commit']}` |",
        f"| dvc.lock | {lock} |",
        f"| test pairs | {len(pairs)}: " + ", ".join(f"{n} in {label}" for label, n in per_bin.items()) + " |",
        f"| methods | {', '.join(cards.display(m) for m in cards)} |",
        f"| weights | {weights} |",
        "", "## Weights provenance", "",
        "| network | status | source | sha256 or reason |", "| --- | --- | --- | --- |",
    ]
    for name, entry in provenance.items():
        detail = entry.get("sha256") or entry.get("reason", "")
        lines.append(f"| {_cell(name)} | {_cell(entry.get('status', '?'))} | {_cell(entry.get('source', ''))} "
                     f"| {_cell(detail)} |")
    lines += ["", "## Tables", ""]
    for index, name in enumerate(tables):
        text = tables[name].strip()
        if index:  # every table file repeats the same definitions; the page states them once
            text = text.replace(DEFINITIONS, f"Definitions as under {TITLES[TABLE_NAMES[0]].split(':')[0]}.")
        lines += [text, ""]
    lines += ["## Figures", "", "Fig. 3-5 are numbered as their counterparts in Jam et al. and drawn from this run's "
              "outputs.", ""]
    if not any(name in drawn for name in FOREGROUND_FIGURES):
        lines += ["Fig. 3 and 5 are not drawn: this run has no foreground masks (data.source: folder without "
                  "data.folder.foreground).", ""]
    for name, (heading, caption) in FIGURES.items():
        if name in drawn:
            lines += [f"### {heading}", "", f"![{heading}](figures/{name}.png)", "", caption, ""]
    lines += ["## Params", "", f"The profile `{params.profile}` as loaded from the params file:", "",
              "```yaml", yaml.safe_dump(to_dict(params), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #eef0f3; }
tr:nth-child(even) td { background: #f8f9fa; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption, p.note { font-size: .85em; color: #555; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
pre { background: #f4f4f6; padding: .8em; overflow-x: auto; }
"""
# Nothing may leave the page: images come as data URIs and styles inline; the browser refuses the rest.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
IMAGE_LINE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")


def _inline(text: str) -> str:
    """Escape `text`; `code` and *emphasis* become tags (all the report's Markdown uses)."""
    escaped = html.escape(text.replace(r"\|", "|"))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*([^*\s][^*]*)\*", r"<em>\1</em>", escaped)


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def table_html(block: list[str]) -> str:
    """A pipe table (header, `---` / `---:` separator, rows) as an HTML table; `---:` columns right-aligned."""
    header, separator, *rows = (_split_row(line) for line in block)
    align = [' class="r"' if cell.endswith(":") else "" for cell in separator]
    head = "".join(f"<th{a}>{_inline(cell)}</th>" for a, cell in zip(align, header))
    body = "".join("<tr>" + "".join(f"<td{a}>{_inline(cell)}</td>" for a, cell in zip(align, row)) + "</tr>\n"
                   for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def markdown_to_html(markdown: str, images: dict[str, bytes], title: str) -> str:
    """The report's Markdown as one offline page; `images` maps each image link to its PNG bytes."""
    lines, body, i = markdown.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,4}) (.*)", line)
        image = IMAGE_LINE.fullmatch(line.strip())
        if line.startswith("```"):
            end = lines.index("```", i + 1)
            code = "\n".join(lines[i + 1:end])
            body.append(f"<pre><code>{html.escape(code)}</code></pre>")
            i = end + 1
            continue
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.startswith("|"):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            body.append(table_html(lines[i:end]))
            i = end
            continue
        elif image:
            data = base64.b64encode(images[image["src"]]).decode("ascii")
            alt = html.escape(image["alt"])
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"></figure>')
        elif line.strip():
            end = i
            while end < len(lines) and lines[end].strip() and not re.match(r"(#|\||```|!\[)", lines[end]):
                end += 1
            text = " ".join(lines[i:end])
            css = ' class="note"' if text == DEFINITIONS or text.startswith("Definitions as under") else ""
            body.append(f"<p{css}>{_inline(text)}</p>")
            i = end
            continue
        i += 1
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ---------------------------------------------------------------- the stage


def build_report(params: Params, root: Path = Path("."), out: Path = Path("reports")) -> dict:
    """Write `out/figures/*.png`, `out/report.md` and `out/report.html` from the outputs under `root`."""
    root, out = Path(root), Path(out)
    pairs = read_csv(root / "data/holes/test_pairs.csv")
    if not pairs:
        raise UserError(f"{root / 'data/holes/test_pairs.csv'}: no test pairs; run `dvc repro holes`")
    # Every table and curve is read before the first figure is drawn: a missing one fails in a second.
    provenance = json.loads(need(root / "data/weights/provenance.json", "weights").read_text())
    per_image = pd.read_csv(need(root / "reports/per_image.csv", "evaluate"), dtype={"image_id": str})
    cards = load_cards(need(root / "reports" / CARDS, "evaluate"))
    curves, validation = read_curves(root, cards)
    # Table 5 compares the proposed method with the rest: a comparison without one has no Table 5.
    names = [name for name in TABLE_NAMES if name != "table5_paired" or cards.proposed()]
    components = root / "reports/per_image_components.csv"
    if not components.is_file() or pd.read_csv(components).empty:  # no component pairs were evaluated
        names = [name for name in names if name not in COMPONENT_TABLES]
    elif not cards.proposed():
        names = [name for name in names if name != "table6_paired"]
    tables = {name: need(root / "reports/tables" / f"{name}.md", "evaluate").read_text() for name in names}
    for name in names:
        if not tables[name].lstrip().startswith(f"### {title(name, cards)}"):
            raise UserError(f"{root / 'reports/tables' / name}.md: not a table `fgi.evaluation.tables` wrote; "
                            "run `dvc repro evaluate` (or `fgi tables`)")

    paths = draw_figures(params, root, out, pairs, per_image, curves, validation, cards)
    markdown = render_markdown(params, pairs, provenance, tables, revision(root), cards, drawn=paths)
    files.write_text_atomic(out / "report.md", markdown)
    images = {f"figures/{path.name}": path.read_bytes() for path in paths.values()}
    page = markdown_to_html(markdown, images, f"fgi report: profile {params.profile}")
    files.write_text_atomic(out / "report.html", page)
    return {"figures": len(paths), "comparison_rows": len(pick_pairs(pairs, params.report.samples_per_bin)),
            "test_pairs": len(pairs), "html_kib": round(len(page.encode("utf-8")) / 1024, 1)}
