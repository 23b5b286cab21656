"""`fgi serve` over HTTP: a real uvicorn server on 127.0.0.1, real PNGs, every bad input a 4xx."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgi.apps import serve
from fgi.config import load_params

from conftest import save_random_ours

MICRO = Path(__file__).parent / "micro_params.yaml"
SIZE = 32


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app over models/ours (random weights), models/broken (a corrupt file) and biharmonic."""
    models = tmp_path_factory.mktemp("serve") / "models"
    save_random_ours(models / "ours", SIZE)
    (models / "broken").mkdir()
    (models / "broken" / "model.pt").write_bytes(b"not a checkpoint")
    params = load_params(MICRO)
    url, server, thread = serve.serve_in_thread(serve.make_app(params, serve.find_methods(params, models, {})))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def photo(height: int = 48, width: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 4, y * 4, (x + y) * 2 + seed * 20], -1)
    return (smooth + rng.normal(0, 8, smooth.shape)).clip(0, 255).astype(np.uint8)


def hole(height: int = 48, width: int = 40, rows=slice(10, 20), cols=slice(5, 30)) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[rows, cols] = 255
    return mask


def header_only_png(width: int, height: int) -> str:
    """A few-byte PNG whose header claims width x height (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return base64.b64encode(data).decode("ascii")


def post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/inpaint", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def result_pixels(result: dict) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(result["png"]))) as image:
        return np.asarray(image.convert("RGB"))


def test_the_page_and_the_methods_are_served_locally(app_url):
    with urllib.request.urlopen(app_url + "/") as response:
        page = response.read().decode()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert '<script src="/app.js"' in page and "://" not in page  # nothing from another origin
    with urllib.request.urlopen(app_url + "/api/methods") as response:
        listing = json.load(response)
    assert [m["name"] for m in listing["methods"]] == ["broken", "ours", "biharmonic"]
    assert listing["max_pixels"] == load_params(MICRO).serve.max_pixels


def test_two_methods_keep_the_known_pixels_and_a_failing_one_is_reported(app_url):
    image, mask = photo(), hole()
    status, answer = post(app_url, {"image": "data:image/png;base64," + png(image), "mask": png(mask),
                                    "methods": ["ours", "biharmonic", "broken"], "face_crop": False})
    assert status == 200 and (answer["width"], answer["height"]) == (40, 48)
    by_method = {result["method"]: result for result in answer["results"]}
    for name in ("ours", "biharmonic"):
        filled = result_pixels(by_method[name])
        assert filled.shape == image.shape
        assert (filled[mask == 0] == image[mask == 0]).all()  # the photo's own bytes
        assert by_method[name]["seconds"] > 0 and "whole image" in by_method[name]["crop"]
    assert not (result_pixels(by_method["biharmonic"])[mask > 0] == image[mask > 0]).all()
    assert "not a model checkpoint" in by_method["broken"]["error"] and "png" not in by_method["broken"]


def test_face_crop_without_a_face_crops_around_the_hole(app_url):
    status, answer = post(app_url, {"image": png(photo()), "mask": png(hole()), "methods": ["biharmonic"],
                                    "face_crop": True})
    assert status == 200 and answer["results"][0]["strategy"] == "hole"
    assert answer["results"][0]["crop"].startswith("no face found")


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not JSON"),
    ({"image": base64.b64encode(b"hello, not an image").decode(), "mask": "", "methods": ["ours"]}, 400,
     "not an image Pillow can read"),
    ({"image": "%%%", "mask": "", "methods": ["ours"]}, 400, "not base64"),
    ({"image": header_only_png(10_000, 10_000), "mask": "", "methods": ["ours"]}, 413,
     "100.0 megapixels, over the limit"),
    ({"image": header_only_png(60_000, 60_000), "mask": "", "methods": ["ours"]}, 413, "decompression bomb"),
    ({"image": png(photo()), "mask": png(hole(20, 20)), "methods": ["ours"]}, 422,
     "mask: 20x20 but the photo is 40x48"),
    ({"image": png(photo()), "mask": png(np.zeros((48, 40), np.uint8)), "methods": ["ours"]}, 422, "no hole"),
    ({"image": png(photo()), "mask": png(hole()), "methods": []}, 422, "pick at least one method"),
    ({"image": png(photo()), "mask": png(hole()), "methods": ["lama"]}, 422, "unknown lama"),
])
def test_bad_input_is_a_4xx_with_a_message(app_url, body, status, message):
    got, answer = post(app_url, body)
    assert got == status and message in answer["error"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(app_url, monkeypatch):
    monkeypatch.setattr(serve, "MAX_BODY_BYTES", 1000)
    status, answer = post(app_url, {"image": png(photo(64, 64)), "mask": png(hole(64, 64)), "methods": ["ours"]})
    assert status == 413 and "request over" in answer["error"]


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(app_url, monkeypatch):
    """No Content-Length to check: the server counts the body as it comes and stops at the limit,
    so 64 MiB sent against a 1 MiB limit are never held (the server runs in this process)."""
    monkeypatch.setattr(serve, "MAX_BODY_BYTES", 2**20)
    host, port = app_url.removeprefix("http://").split(":")
    before = resident_bytes()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/inpaint HTTP/1.1\r\nHost: fgi\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"7" * 2**16
        for _ in range(1024):  # 64 MiB
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            part = sock.recv(65536)
            assert part, f"the server closed without answering: {response!r}"
            response += part
    assert response.startswith(b"HTTP/1.1 413 ")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["error"].startswith("request over 1 MiB")
    assert resident_bytes() - before < 16 * 2**20, "the body was held in memory"


def test_concurrent_requests_each_get_their_own_photo_back(app_url):
    photos = [photo(seed=seed) for seed in range(6)]
    masks = [hole(rows=slice(5 + seed, 15 + seed)) for seed in range(6)]

    def one(index: int):
        return post(app_url, {"image": png(photos[index]), "mask": png(masks[index]),
                              "methods": ["ours", "biharmonic"], "face_crop": False})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    for index, (status, answer) in enumerate(answers):
        assert status == 200
        known = masks[index] == 0
        for result in answer["results"]:
            assert (result_pixels(result)[known] == photos[index][known]).all()


def test_model_uris_load_without_unpickling_unless_trusted(tmp_path, mlflow_db):
    import argparse

    import mlflow
    import mlflow.pytorch

    from fgi.inference import load_generator
    from fgi.tracking import Run

    models = tmp_path / "models"
    save_random_ours(models / "ours", SIZE)
    with Run("serve") as run:
        run.log_generator(models / "ours" / "model.pt")
    experiment = mlflow.create_experiment("pickled", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as pickled:  # as an older fgi logged generators
        mlflow.log_param("data.size", SIZE)
        mlflow.pytorch.log_model(load_generator(models / "ours")[1], name="generator",
                                 serialization_format="pickle", pip_requirements=["torch"])
    uris = {"logged": f"runs:/{run.run_id}/generator", "pickled": f"runs:/{pickled.info.run_id}/generator"}
    params = load_params(MICRO)
    url, server, thread = serve.serve_in_thread(serve.make_app(params, serve.find_methods(params, models, uris)))
    try:
        status, answer = post(url, {"image": png(photo()), "mask": png(hole()),
                                    "methods": ["ours", "logged", "pickled"], "face_crop": False})
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert status == 200
    by_method = {result["method"]: result for result in answer["results"]}
    np.testing.assert_array_equal(result_pixels(by_method["logged"]), result_pixels(by_method["ours"]))
    assert "a pickled MLflow PyTorch model" in by_method["pickled"]["error"]
    assert "--trust-pickled-model" in by_method["pickled"]["error"] and "png" not in by_method["pickled"]

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    assert parser.parse_args(["serve", "--trust-pickled-model"]).trust_pickled_model
    generator, size = serve.find_methods(params, models, uris, trust_pickled=True)["pickled"].load()
    assert isinstance(generator, torch.nn.Module) and size == SIZE
