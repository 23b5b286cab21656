"""`fgi serve` driven as a person drives it: Debian's Chromium opens the page, loads the astronaut,
paints a stroke with the mouse, runs two methods and downloads a result."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from fgi.apps import serve
from fgi.config import load_params

from conftest import save_random_ours
from test_serve import MICRO, SIZE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright: `make setup` installs it")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed: `apt-get install chromium` (the Makefile's test setup does this)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    models = tmp_path_factory.mktemp("serve-browser") / "models"
    save_random_ours(models / "ours", SIZE)
    params = load_params(MICRO)
    url, server, thread = serve.serve_in_thread(serve.make_app(params, serve.find_methods(params, models, {})))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def data_url_pixels(url: str, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:
        return np.asarray(image.convert(mode))


def test_paint_run_two_methods_and_download(browser, app_url, tmp_path):
    astronaut = data.astronaut()  # (512, 512, 3)
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo_path)
    page = browser.new_page(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(app_url)
    page.wait_for_selector("input[name=method][value=biharmonic]", state="attached")
    page.set_input_files("#photo-file", str(photo_path))
    page.wait_for_selector("#stage", state="visible")

    # A stroke across her forehead, with the mouse.
    box = page.locator("#mask").bounding_box()
    scale = box["width"] / 512
    page.mouse.move(box["x"] + 190 * scale, box["y"] + 95 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 260 * scale, box["y"] + 100 * scale, steps=12)
    page.mouse.up()
    hole = data_url_pixels(page.evaluate("maskPNG()"), "L") >= 128  # what the page will send
    assert hole.shape == (512, 512) and 500 < hole.sum() < 20_000 and hole[97, 225]

    page.check("#face-crop")
    page.click("#run")
    page.wait_for_selector(".card img >> nth=1", timeout=120_000)
    cards = page.locator(".card")
    assert sorted(cards.evaluate_all("cards => cards.map(card => card.dataset.method)")) == ["biharmonic", "ours"]
    assert "face found" in page.locator(".card[data-method=ours] p").inner_text()
    assert page.locator("#status").inner_text().startswith("done: 2 result(s)")

    with page.expect_download() as download:
        page.click(".card[data-method=biharmonic] a")
    downloaded = download.value.path()
    with Image.open(downloaded) as image:
        assert image.format == "PNG"
        result = np.asarray(image.convert("RGB"))
    assert (result[~hole] == astronaut[~hole]).all()  # the known pixels are the photo's own
    assert np.abs(result[hole].astype(int) - astronaut[hole]).mean() > 0  # the hole was filled

    # A run without a hole: the server's 422 message appears in the page, the page keeps working.
    page.click("#clear")
    page.click("#run")
    page.wait_for_selector("#status.error")
    assert "no hole" in page.locator("#status").inner_text()
    assert errors == [] or all("422" in error for error in errors)
    page.close()
