"""`fgi serve`: paint a hole on your own photo and compare every method side by side.

    fgi serve                       # http://127.0.0.1:8765, every method under models/
    fgi serve --model-uri mine=runs:/<run_id>/generator --port 9000

A local web app (FastAPI under uvicorn, both installed with MLflow). The page
(`fgi/apps/web/`) and everything it loads come from this server; its
Content-Security-Policy lets nothing else in, so no request leaves the machine.

API, one JSON request per comparison:

    GET  /api/methods    {"methods": [{"name", "label", "size"}], "max_pixels", "face_crop"}
    POST /api/inpaint    {"image": <base64 or data URL of the photo file>,
                          "mask": <base64 PNG, white = hole, the photo's size>,
                          "methods": [names], "face_crop": bool}
                      -> {"width", "height", "results": [{"method", "label", "seconds",
                          "crop", "png" (base64) | "error"}]}

Each method runs as `fgi inpaint` runs it (`fgi.apps.inpaint.inpaint_image`), on the
face-aware crop when `face_crop` is on (`fgi.apps.facecrop`); the known pixels of
every result are the photo's own. A user's mistake (not an image, a
decompression bomb or a photo over `serve.max_pixels`, a mask of another size
or with no hole, an unknown method) is a 4xx with a message the page shows; a
method that fails is reported in its own result and the others still run.
Requests share nothing but the loaded models, each behind its own lock.

(No `from __future__ import annotations` here: FastAPI reads the handlers'
annotations, and `Request` is imported inside `make_app` so that `fgi`'s other
commands start without importing FastAPI.)
"""

import argparse
import base64
import binascii
import dataclasses
import io
import json
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fgi import methods as registry
from fgi.apps.facecrop import FACE_SCALE, inpaint_cropped
from fgi.apps.inpaint import inpaint_image
from fgi.apps.photos import hole_mask, rgb8
from fgi.config import Params, load_params, method_config
from fgi.errors import UserError
from fgi.inference import TRUST_FLAG, TRUST_HELP, device, load_generator, load_mlflow_generator

WEB = Path(__file__).parent / "web"
MAX_BODY_BYTES = 200 * 2**20  # a 40-megapixel PNG, base64-encoded, fits
CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")


class BadRequest(Exception):
    """A request the user can fix: its HTTP status and the message the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Method:
    """One method the app can run: loaded on first use, one request at a time."""

    name: str
    label: str
    load: Callable[[], tuple]  # () -> (generator, working size)
    size: int | None = None
    _loaded: tuple | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def run(self, image: Image.Image, hole: np.ndarray, face_crop: bool, face_scale: float):
        """(result, crop): the photo with its hole filled, as `fgi inpaint [--face-crop]` would."""
        with self.lock:
            if self._loaded is None:
                self._loaded = self.load()
                self.size = self._loaded[1]
            generator, size = self._loaded
            return inpaint_cropped(lambda crop, crop_hole: inpaint_image(generator, size, crop, crop_hole,
                                                                          precision="float32"),
                                   image, hole, face_scale, face_crop)


def _checkpoint_loader(path: Path):
    def load():
        _, generator, size = load_generator(path, device())
        return generator, size
    return load


def _uri_loader(uri: str, trust_pickled: bool):
    return lambda: load_mlflow_generator(uri, None, device(), trust_pickled)


def _display(name: str) -> str:
    return registry.get(name).display if name in registry.names() else name


def find_methods(params: Params, models: Path, model_uris: dict[str, str],
                 trust_pickled: bool = False) -> dict[str, Method]:
    """Every method with a `models/<name>/model.pt`, every classical method of `methods` (it needs no
    training: built from its params section when its train stage has not run), and the named MLflow
    models (loaded without unpickling unless `trust_pickled`, see `fgi.inference.load_mlflow_generator`)."""
    methods = {}
    for path in sorted(Path(models).glob("*/model.pt")):
        name = path.parent.name
        methods[name] = Method(name, _display(name), _checkpoint_loader(path))
    for name in params.methods:
        method = registry.get(name)
        if name not in methods and not method.learned:
            solver = method.generator(method_config(params, name), params.data.size)
            methods[name] = Method(name, method.display, lambda solver=solver: (solver, params.data.size),
                                   size=params.data.size)
    for name, uri in model_uris.items():
        if name in methods:
            raise UserError(f"--model-uri {name}={uri}: the name {name!r} is taken; choose another")
        methods[name] = Method(name, f"{name} ({uri})", _uri_loader(uri, trust_pickled))
    return methods


# ---------------------------------------------------------------- requests

def decode_base64(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadRequest(400, f"{what}: missing; " + ("open a photo" if what == "photo" else "paint the hole"))
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadRequest(400, f"{what}: not base64 data ({err})") from err


def open_upload(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A decoded image, refused before decoding when its header says it is over `max_pixels`."""
    try:
        with warnings.catch_warnings():
            # Our own limit below speaks first; Pillow's error (twice its limit) still stops a bomb.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise BadRequest(413, f"{what}: {image.width}x{image.height} is {image.width * image.height / 1e6:.1f} "
                                      f"megapixels, over the limit of {max_pixels / 1e6:.1f} (serve.max_pixels); "
                                      "scale the photo down or raise the limit")
            image.load()
    except BadRequest:
        raise
    except Image.DecompressionBombError as err:
        raise BadRequest(413, f"{what}: refused as a decompression bomb ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise BadRequest(400, f"{what}: not an image Pillow can read ({err}); use a JPEG or PNG") from err
    return image


def inpaint_request(body: dict, methods: dict[str, Method], params: Params,
                    face_scale: float = FACE_SCALE) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(400, "the request must be a JSON object")
    limit = params.serve.max_pixels
    image = open_upload(decode_base64(body.get("image"), "photo"), "photo", limit)
    mask = open_upload(decode_base64(body.get("mask"), "mask"), "mask", limit)
    width, height = rgb8(image).shape[1::-1]
    hole = hole_mask(mask)
    if hole.shape != (height, width):
        raise BadRequest(422, f"mask: {hole.shape[1]}x{hole.shape[0]} but the photo is {width}x{height}; "
                              "paint on the photo or upload a mask of its size")
    if not hole.any():
        raise BadRequest(422, "mask: no hole; paint over what to remove (white = hole in an uploaded mask)")
    names = body.get("methods")
    if not isinstance(names, list) or not names:
        raise BadRequest(422, "methods: pick at least one method")
    unknown = [name for name in names if name not in methods]
    if unknown:
        raise BadRequest(422, f"methods: unknown {', '.join(map(str, unknown))}; "
                              f"this server runs {', '.join(methods)}")
    face_crop = bool(body.get("face_crop", params.serve.face_crop))
    results = []
    for name in dict.fromkeys(names):
        method = methods[name]
        start = time.perf_counter()
        try:
            result, crop = method.run(image, hole, face_crop, face_scale)
        except Exception as err:  # noqa: BLE001 - one method's failure is shown, the others still run
            message = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            results.append({"method": name, "label": method.label, "error": message,
                            "seconds": time.perf_counter() - start})
            continue
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
        results.append({"method": name, "label": method.label, "seconds": time.perf_counter() - start,
                        "crop": crop.describe(), "strategy": crop.strategy,
                        "png": base64.b64encode(buffer.getvalue()).decode("ascii")})
    return {"width": width, "height": height, "results": results}


# ---------------------------------------------------------------- the app

class BodyTooLarge(Exception):
    """A request body past MAX_BODY_BYTES: refused with 413 without reading the rest."""


async def read_body(chunks, limit: int) -> bytes:
    """The body from an async iterator of byte chunks, stopping (BodyTooLarge) once it passes `limit`:
    whether or not the request declared its length, at most `limit` plus one chunk is held."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def make_app(params: Params, methods: dict[str, Method], face_scale: float = FACE_SCALE):
    # FastAPI here, not at the top: every `fgi` command imports this module to list its options.
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, JSONResponse

    app = FastAPI(title="fgi serve", docs_url=None, redoc_url=None, openapi_url=None)
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

    def static(name: str, media_type: str):
        return lambda: FileResponse(WEB / name, media_type=media_type, headers=headers)

    app.get("/")(static("index.html", "text/html"))
    app.get("/app.js")(static("app.js", "text/javascript"))
    app.get("/app.css")(static("app.css", "text/css"))

    @app.get("/api/methods")
    def list_methods():
        return {"methods": [{"name": m.name, "label": m.label, "size": m.size} for m in methods.values()],
                "max_pixels": params.serve.max_pixels, "face_crop": params.serve.face_crop}

    def too_large():
        return JSONResponse({"error": f"request over {MAX_BODY_BYTES / 2**20:g} MiB; scale the photo down"},
                            status_code=413)

    @app.middleware("http")
    async def refuse_large(request: Request, call_next):
        # A declared length over the limit is refused before a byte is read; a chunked body
        # (no length) is counted as it arrives, by `read_body`.
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return too_large()
        return await call_next(request)

    @app.post("/api/inpaint")
    async def inpaint(request: Request):
        try:
            body = json.loads(await read_body(request.stream(), MAX_BODY_BYTES))
        except BodyTooLarge:
            return too_large()
        except ValueError as err:
            return JSONResponse({"error": f"the request is not JSON ({err})"}, status_code=400)
        try:
            # In a worker thread: one slow method does not block the page or other requests.
            return await run_in_threadpool(inpaint_request, body, methods, params, face_scale)
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(Exception)
    async def any_error(_request, err):  # never a traceback in the page
        return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}"}, status_code=500)

    return app


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0):
    """(url, server, thread): the app served by uvicorn in a daemon thread, started (port 0: any
    free port). For tests and the README's figures; stop with `server.should_exit = True`."""
    import uvicorn  # noqa: PLC0415 - as FastAPI in make_app: only the app needs it

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise UserError(f"fgi serve: cannot listen on {host}:{port}")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{host}:{port}", server, thread


def serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - as FastAPI in make_app: only the app needs it

    params = load_params(Path(args.params))
    uris = {}
    for item in args.model_uri or []:
        name, sep, uri = item.partition("=")
        if not sep or not name or not uri:
            raise UserError(f"--model-uri {item}: write NAME=URI, e.g. mine=runs:/<run_id>/generator")
        uris[name] = uri
    methods = find_methods(params, Path(args.models), uris, args.trust_pickled_model)
    print(f"fgi serve: http://{args.host}:{args.port}  methods: {', '.join(methods)}", flush=True)
    uvicorn.run(make_app(params, methods, args.face_scale), host=args.host, port=args.port, log_level="warning")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="compare every method on your own photo in the browser",
                                   description="A local web app: paint a hole, run every method, compare.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--params", default="params.yaml", help="params file (its serve and data sections)")
    parser.add_argument("--models", default="models", help="folder of trained models (<name>/model.pt)")
    parser.add_argument("--model-uri", action="append", metavar="NAME=URI",
                        help="also offer an MLflow-logged generator, e.g. mine=runs:/<run_id>/generator "
                             "(loaded without unpickling)")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    parser.add_argument("--face-scale", type=float, default=FACE_SCALE, metavar="X",
                        help=f"face crop: the square's side in face-detector boxes (default {FACE_SCALE})")
    parser.set_defaults(run=serve)
    return parser
