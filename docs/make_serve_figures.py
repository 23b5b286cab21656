"""The README's figures from the demo's trained models, each stamped as a record (`fgi records`).

    .venv/bin/python docs/make_serve_figures.py        # after `make repro`

face_crop.png: scikit-image's astronaut (512², a real photo that ships with the
package) with a stroke painted over her face, inpainted by models/ours as a
whole image (resized to the model's size, the default of `fgi inpaint`), then by
every method of the run on the face-aware crop (`--face-crop`), each shown
around the face.
serve.png: the app in Debian's Chromium after painting the same photo and
running every method with the face crop on (needs `playwright`).
demo_fig4.png, demo_fig6.png: the demo's Fig. 4 and component figure, copied
from reports/figures/ so that the README and docs/results.md show them.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from skimage import data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fgi import records  # noqa: E402
from fgi.apps import serve  # noqa: E402
from fgi.config import load_params  # noqa: E402
from fgi.apps.facecrop import inpaint_cropped  # noqa: E402
from fgi.apps.inpaint import inpaint_image  # noqa: E402
from fgi.inference import load_generator  # noqa: E402

STROKE = [(196, 100), (222, 112), (250, 104)]  # across her eyes, in the photo's pixels
WIDTH = 9
VIEW = (slice(30, 230), slice(120, 320))  # rows, cols around the face


def stroke_hole(shape) -> np.ndarray:
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(canvas).line(STROKE, fill=255, width=WIDTH, joint="curve")
    return np.asarray(canvas) >= 128


def face_crop_figure(out: Path) -> None:
    photo = data.astronaut()  # (512, 512, 3)
    hole = stroke_hole(photo.shape)
    params = load_params(ROOT / "params.yaml")
    methods = serve.find_methods(params, ROOT / "models", {})
    ours = methods[next(name for name in params.methods if name == "ours")]  # the seed paper's
    whole, _ = ours.run(Image.fromarray(photo), hole, False, serve.FACE_SCALE)
    shown = photo.copy()
    shown[hole] = (255, 0, 0)
    panels = [("photo and hole (red)", shown), (f"{ours.label}: whole image (default)", np.asarray(whole))]
    crop = None
    for name in params.methods:
        if name in methods:
            cropped, crop = methods[name].run(Image.fromarray(photo), hole, True, serve.FACE_SCALE)
            panels.append((f"{methods[name].label}: --face-crop", np.asarray(cropped)))
    columns = 4
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.7 * rows), dpi=100)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (title, pixels) in zip(axes.flat, panels):
        axis.imshow(pixels[VIEW])
        axis.set_title(title, fontsize=9)
    left, top, right, bottom = crop.box
    axes.flat[0].add_patch(plt.Rectangle((left - VIEW[1].start, top - VIEW[0].start), right - left, bottom - top,
                                         fill=False, edgecolor="yellow", linewidth=1.2))
    figure.suptitle(f"the demo's models on a real photo; {crop.describe()}", fontsize=9)
    figure.tight_layout(h_pad=2.0)
    figure.savefig(out)
    print(f"wrote {out}: {len(panels) - 2} methods; {crop.describe()}")


def screenshot(out: Path, tmp: Path) -> None:
    from playwright.sync_api import sync_playwright

    params = load_params(ROOT / "params.yaml")
    url, server, _ = serve.serve_in_thread(serve.make_app(params, serve.find_methods(params, ROOT / "models", {})))
    photo_path = tmp / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        page.goto(url)
        page.wait_for_selector("input[name=method][value=biharmonic]", state="attached")
        page.set_input_files("#photo-file", str(photo_path))
        page.wait_for_selector("#stage", state="visible")
        box = page.locator("#mask").bounding_box()
        scale = box["width"] / 512
        page.fill("#brush", str(max(2, round(WIDTH / scale))))
        page.mouse.move(box["x"] + STROKE[0][0] * scale, box["y"] + STROKE[0][1] * scale)
        page.mouse.down()
        for x, y in STROKE[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=10)
        page.mouse.up()
        page.check("#face-crop")
        page.click("#run")
        page.wait_for_selector("#status:has-text('done')", timeout=300_000)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    server.should_exit = True
    print(f"wrote {out}")


# What the figures ran: the demo's stages up to the trained models (face_crop, serve) or all of them
# (the copied report figures), and the apps' code.
MODELS = ["fetch_*", "manifest", "prepare", "foreground", "holes*", "weights", "train@*"]
APPS = {"modules": ["fgi.apps.serve", "fgi.apps.facecrop", "fgi.apps.inpaint"],
        "paths": ["fgi/apps/web", "docs/make_serve_figures.py"]}
DEMO_FIGURES = {"demo_fig4.png": "fig4_comparison.png", "demo_fig6.png": "fig6_components.png"}


def main() -> None:
    import shutil
    import tempfile

    from fgi.inference import cpu_name

    face_crop_figure(ROOT / "docs" / "face_crop.png")
    with tempfile.TemporaryDirectory() as folder:
        screenshot(ROOT / "docs" / "serve.png", Path(folder))
    made = "make repro, then .venv/bin/python docs/make_serve_figures.py"
    records.stamp(ROOT, "figures/apps", ["docs/face_crop.png", "docs/serve.png"], made,
                  {"pipeline": MODELS, **APPS}, params_file="params.yaml", machine=cpu_name())
    for copy, original in DEMO_FIGURES.items():
        shutil.copyfile(ROOT / "reports" / "figures" / original, ROOT / "docs" / copy)
    records.stamp(ROOT, "figures/demo", [f"docs/{copy}" for copy in DEMO_FIGURES], made,
                  {"pipeline": True, "paths": ["docs/make_serve_figures.py"]}, params_file="params.yaml",
                  machine=cpu_name())


if __name__ == "__main__":
    main()
