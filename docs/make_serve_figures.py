"""The README's figures for `fgi inpaint --face-crop` and `fgi serve`, from the trained models.

    .venv/bin/python docs/make_serve_figures.py        # after `make repro`; writes docs/face_crop.png, docs/serve.png

face_crop.png: scikit-image's astronaut (512², a real photo that ships with the
package) with a stroke painted over her face, inpainted by models/ours as a
whole image (resized to the model's size, the default of `fgi inpaint`) and on
the face-aware crop (`--face-crop`), each shown around the face.
serve.png: the app in Debian's Chromium after painting the same photo and
running every method with the face crop on (needs `playwright`).
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
    _, generator, size = load_generator(ROOT / "models" / "ours")
    model = lambda image, crop_hole: inpaint_image(generator, size, image, crop_hole, precision="float32")  # noqa: E731
    whole, _ = inpaint_cropped(model, Image.fromarray(photo), hole, face_crop=False)
    cropped, crop = inpaint_cropped(model, Image.fromarray(photo), hole)
    shown = photo.copy()
    shown[hole] = (255, 0, 0)
    panels = [("photo and hole (red)", shown), (f"whole image at {size}² (default)", np.asarray(whole)),
              (f"--face-crop: {crop.side}² square at {size}²", np.asarray(cropped))]
    figure, axes = plt.subplots(1, 3, figsize=(10.5, 3.9), dpi=110)
    for axis, (title, pixels) in zip(axes, panels):
        axis.imshow(pixels[VIEW])
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    left, top, right, bottom = crop.box
    axes[0].add_patch(plt.Rectangle((left - VIEW[1].start, top - VIEW[0].start), right - left, bottom - top,
                                    fill=False, edgecolor="yellow", linewidth=1.2))
    figure.suptitle(f"models/ours on a real photo; {crop.describe()}", fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    print(f"wrote {out}: {crop.describe()}")


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


if __name__ == "__main__":
    import tempfile

    face_crop_figure(ROOT / "docs" / "face_crop.png")
    with tempfile.TemporaryDirectory() as folder:
        screenshot(ROOT / "docs" / "serve.png", Path(folder))
