"""The report stage on the micro pipeline's real outputs: figures, report.md, an offline report.html."""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import built_in_cards, plugin_importable
from fgi.config import load_params, to_dict
from fgi.errors import UserError
from fgi.evaluation.report import FIGURES, build_report, markdown_to_html, pick_pairs, validation_reference
from fgi.evaluation.tables import title

pytestmark = pytest.mark.e2e

TABLE_NAMES = ("table1_full", "table2_foreground", "table3_hole", "table4_bins", "table5_paired")
CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep a headless Chromium from reaching anything but the page it is given.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(micro_pipeline, tmp_path_factory):
    """build_report called directly on the micro pipeline (independent of the stage's wiring)."""
    out = tmp_path_factory.mktemp("report")
    with plugin_importable(micro_pipeline):  # module scope: before the per-test fixture that does this
        summary = build_report(load_params(micro_pipeline / "params.yaml"), root=micro_pipeline, out=out)
    return {"out": out, "summary": summary, "markdown": (out / "report.md").read_text(),
            "html": (out / "report.html").read_text()}


def test_every_figure_is_a_png_of_sensible_size(report):
    assert report["summary"]["figures"] == len(FIGURES) == 6  # Fig. 6: the micro pipeline has component pairs
    for name in FIGURES:
        with Image.open(report["out"] / "figures" / f"{name}.png") as image:
            assert image.format == "PNG"
            image.load()  # a truncated file fails here
            pixels = np.asarray(image.convert("RGB"))
        height, width, _ = pixels.shape
        assert 150 <= width <= 4000 and 100 <= height <= 4000, (name, width, height)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{name} is (nearly) blank"


def test_comparison_rows_cover_every_bin(report, micro_pipeline):
    per_bin = yaml.safe_load((micro_pipeline / "params.yaml").read_text())["report"]["samples_per_bin"]
    with open(micro_pipeline / "data/holes/test_pairs.csv", newline="") as handle:
        bins = {row["bin"] for row in csv.DictReader(handle)}
    # The micro profile asks for one pair per bin: one row for each bin its test pairs fall in.
    assert per_bin == 1 and report["summary"]["comparison_rows"] == len(bins) > 1


def test_pick_pairs_takes_the_first_ids_of_each_bin_in_bin_order():
    pairs = [{"image_id": "07", "bin": "(0.1,0.2]"}, {"image_id": "03", "bin": "(0.5,0.6]"},
             {"image_id": "05", "bin": "(0.1,0.2]"}, {"image_id": "01", "bin": "(0.01,0.1]"},
             {"image_id": "02", "bin": "(0.1,0.2]"}]
    assert [p["image_id"] for p in pick_pairs(pairs, 2)] == ["01", "02", "05", "03"]
    assert [p["image_id"] for p in pick_pairs(pairs, 1)] == ["01", "02", "03"]


def test_validation_reference_is_biharmonics_capped_mean_on_the_validation_pairs():
    import pandas as pd

    per_image = pd.DataFrame({
        "method": ["biharmonic", "biharmonic", "biharmonic", "ce"],
        "image_id": ["00003", "00001", "00002", "00001"],
        "hole/psnr": [30.0, np.inf, 12.0, 50.0],
    })
    pairs = [{"image_id": "00001"}, {"image_id": "00003"}, {"image_id": "00002"}]
    # the first two pairs: 00001 (perfect hole, capped at 100 dB) and 00003; CE and 00002 left out
    cards = built_in_cards()
    assert validation_reference(per_image, pairs, 2, cards) == ("biharmonic", pytest.approx((100.0 + 30.0) / 2))
    assert np.isnan(validation_reference(per_image[per_image["method"] == "ce"], pairs, 2, cards)[1])
    del cards["biharmonic"]  # no method with nothing to train: no reference line
    assert validation_reference(per_image, pairs, 2, cards) is None


def test_training_curves_draw_the_biharmonic_line_on_the_validation_panel():
    import pandas as pd

    from fgi.evaluation.figures import curves_figure

    curve = pd.DataFrame({"step": [10, 20], "g/total": [1.0, 0.5]})
    val = pd.DataFrame({"step": [10, 20], "psnr_hole": [15.0, 18.0]})
    figure = curves_figure({"ours": curve}, {"ours": val}, built_in_cards(), reference=("biharmonic", 27.5))
    validation_axis = figure.axes[-1]
    flat = [line for line in validation_axis.lines if np.allclose(line.get_ydata(), 27.5)]
    assert len(flat) == 1 and flat[0].get_label() == "Biharmonic (no training): 27.5 dB"
    without = curves_figure({"ours": curve}, {"ours": val}, built_in_cards(), reference=None)
    assert not any(np.allclose(line.get_ydata(), 27.5) for line in without.axes[-1].lines)


def test_markdown_links_figures_and_holds_tables_and_provenance(report, micro_pipeline):
    markdown = report["markdown"]
    for name in FIGURES:
        assert f"](figures/{name}.png)" in markdown  # relative, so the folder can move as a whole
    for name in TABLE_NAMES:
        assert f"### {title(name, built_in_cards())}" in markdown
        # The table rows themselves, not only the titles.
        first_row = (micro_pipeline / "reports/tables" / f"{name}.md").read_text().splitlines()[4]
        assert first_row.startswith("| CE |") and first_row in markdown
    assert "## Weights provenance" in markdown
    assert "| vgg16 | random-init (offline) |" in markdown
    assert "| inception | random-init (offline) |" in markdown
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=micro_pipeline, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert f"| git commit | `{commit}` |" in markdown
    lock = hashlib.sha256((micro_pipeline / "dvc.lock").read_bytes()).hexdigest()
    assert f"sha256 `{lock[:16]}` (present)" in markdown
    assert "| profile | `micro` |" in markdown
    params = markdown.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    # as loaded: a folder key written `none` reads as no folder, ""
    assert yaml.safe_load(params) == to_dict(load_params(micro_pipeline / "params.yaml"))


def test_html_is_self_contained(report):
    page = report["html"]
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    assert not [link for link in links if re.match(r"(https?:)?//", link, flags=re.IGNORECASE)]
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page  # CSS can fetch too
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(links) == 6  # the figures, and nothing else is fetched
    figures = {(report["out"] / "figures" / f"{name}.png").read_bytes() for name in FIGURES}
    assert {base64.b64decode(data) for data in embedded} == figures
    # Run, provenance, Tables 1-6 and Table 6 paired; the Markdown pipes became real cells.
    assert page.count("<table>") == 9
    assert '<td>Biharmonic</td><td>scikit-image (reference)</td><td>this run</td><td class="r">' in page


def test_markdown_to_html_escapes_and_aligns():
    page = markdown_to_html("## A & B\n\n| name | value |\n| --- | ---: |\n| x<y \\| z | `1.5` |\n\ntext *em*\n",
                            {}, "t")
    assert "<h2>A &amp; B</h2>" in page
    assert '<th>name</th><th class="r">value</th>' in page
    assert '<td>x&lt;y | z</td><td class="r"><code>1.5</code></td>' in page
    assert "<p>text <em>em</em></p>" in page


def test_missing_input_names_the_stage_to_run(tmp_path, micro_pipeline):
    params = load_params(micro_pipeline / "params.yaml")
    with pytest.raises(UserError, match=r"test_pairs\.csv: not found; run `dvc repro holes`"):
        build_report(params, root=tmp_path / "empty", out=tmp_path / "out")
    # Everything but GC's outputs: the error names the predict stage of exactly that method.
    root = tmp_path / "partial"
    for folder in ("data/prepared", "data/foreground", "data/holes", "data/weights", "models", "reports"):
        (root / folder).parent.mkdir(parents=True, exist_ok=True)
        (root / folder).symlink_to(micro_pipeline / folder)
    for method in ("ce", "pconv", "ours", "biharmonic"):
        (root / "data/predictions").mkdir(exist_ok=True)
        (root / "data/predictions" / method).symlink_to(micro_pipeline / "data/predictions" / method)
    with pytest.raises(UserError, match=r"predictions/gc/\d+\.png: not found; run `dvc repro predict@gc`"):
        build_report(params, root=root, out=tmp_path / "out")


def test_the_stage_logged_the_report_to_mlflow(micro_pipeline):
    if "report" not in yaml.safe_load((micro_pipeline / "dvc.yaml").read_text())["stages"]:
        pytest.skip("dvc.yaml has no `report` stage yet")
    from mlflow.tracking import MlflowClient

    for name in ("report.html", "report.md", *(f"figures/{name}.png" for name in FIGURES)):
        assert (micro_pipeline / "reports" / name).is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{micro_pipeline / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgi-micro")
    [run] = client.search_runs([experiment.experiment_id], "tags.dvc_stage = 'report'")
    logged = {item.path for item in client.list_artifacts(run.info.run_id, "report")}
    logged |= {item.path for item in client.list_artifacts(run.info.run_id, "report/figures")}
    assert {"report/report.html", "report/report.md"} <= logged
    assert {f"report/figures/{name}.png" for name in FIGURES} <= logged


# ---------------------------------------------------------------- the browser


def chromium(page: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}",
                           "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def page_errors(stderr: str) -> list[str]:
    """Console messages (the page has no script, so any is a CSP block or an error) and failed loads."""
    return [line for line in stderr.splitlines()
            if ":CONSOLE" in line or "Failed to load resource" in line or "Uncaught" in line or "ERR_" in line]


def test_report_renders_in_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: `apt-get install chromium` (the Makefile's test setup does this)")
    page = report["out"] / "report.html"
    shot = tmp_path / "shot.png"
    result = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert result.returncode == 0, result.stderr[-3000:]
    assert page_errors(result.stderr) == []
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20 and pixels.std() > 10, "blank screenshot"

    dom = chromium(page, tmp_path, "--dump-dom").stdout
    assert dom.count("<table>") == 9 and dom.count('<img src="data:image/png;base64,') == 6
    assert "fgi report: profile <code>micro</code>" in dom

    # The control: the same page with one external image. The error check must see it, or it sees nothing.
    leaky = tmp_path / "leaky.html"
    leaky.write_text(report["html"].replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'))
    blocked = page_errors(chromium(leaky, tmp_path, "--dump-dom").stderr)
    assert any("127.0.0.1:9/x.png" in line for line in blocked), "a fetch of the page went unnoticed"



def test_metrics_by_bin_bands_are_the_bootstrap_intervals_of_each_bins_mean():
    import pandas as pd

    from fgi.config import Bootstrap
    from fgi.evaluation import figures

    rng = np.random.default_rng(0)
    rows = [{"method": method, "bin": label, "full/psnr": value, "hole/psnr": value, "foreground/psnr": value + 1,
             "full/ssim": 0.9, "full/mae": 3.0, "foreground/ssim": np.nan if i == 0 else 0.8}
            for method in ("ours", "biharmonic") for label in ("(0.01, 0.1]", "(0.1, 0.2]")
            for i, value in enumerate(rng.normal(25, 2, 12))]
    per_image = pd.DataFrame(rows)
    bootstrap = Bootstrap(resamples=400, level=0.9, seed=3)
    low, high = figures.bins_intervals(per_image, "foreground/psnr", built_in_cards(), bootstrap)
    means = figures.bins_means(per_image, "foreground/psnr", built_in_cards())
    cell = per_image[(per_image["method"] == "ours") & (per_image["bin"] == "(0.1, 0.2]")]["foreground/psnr"]
    resampled = cell.to_numpy()[np.random.default_rng(3).integers(0, 12, size=(400, 12))].mean(axis=1)
    assert (low.loc["(0.1, 0.2]", "ours"], high.loc["(0.1, 0.2]", "ours"]) == pytest.approx(
        tuple(np.quantile(resampled, [0.05, 0.95])))
    assert (low <= means).all().all() and (means <= high).all().all()
    # An SSIM over an empty foreground (NaN) is left out, not counted as 0.
    low, high = figures.bins_intervals(per_image, "foreground/ssim", built_in_cards(), bootstrap)
    assert low.loc["(0.01, 0.1]", "ours"] == pytest.approx(0.8)
    figure = figures.bins_figure(per_image, built_in_cards(), bootstrap)
    assert [axis.get_title() for axis in figure.axes][4:] == ["foreground PSNR (dB) ↑", "foreground SSIM ↑"]
