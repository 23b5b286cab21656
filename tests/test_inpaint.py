"""`fgi inpaint` on real files: any image mode and size, exact known pixels, folders, errors, MLflow URIs."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from fgi.errors import UserError, exits_cleanly
from fgi.apps.inpaint import hole_mask, inpaint_batch, inpaint_image, inpaint_paths, register
from fgi.data.dataset import PairSet, to_uint8
from fgi.inference import bfloat16_is_native, for_inference, load_generator, resolve_precision

from conftest import save_random_ours

SIZE = 32


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A random-init `ours` generator at 32², saved the way the train stage writes model.pt."""
    return save_random_ours(tmp_path / "models" / "ours", SIZE)


@pytest.fixture
def generator(checkpoint):
    return load_generator(checkpoint)[1]


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3): a smooth colour gradient plus noise, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 100 + 60], -1)
    return (smooth + rng.normal(0, 12, smooth.shape)).clip(0, 255).astype(np.uint8)


def constant(value: float):
    """A stand-in generator predicting one grey everywhere; it records what it was given."""
    seen = []

    def predict(masked_image, hole):
        seen.append((masked_image.clone(), hole.clone()))
        return torch.full_like(masked_image, value)

    predict.seen = seen
    return predict


def never_called(masked_image, hole):
    raise AssertionError("the model ran on an empty mask")


def centre_hole(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), bool)
    hole[height // 4: height // 2, width // 3: 2 * width // 3] = True
    return hole


def test_portrait_jpeg_keeps_every_known_pixel(tmp_path, generator):
    Image.fromarray(photo(600, 800)).save(tmp_path / "face.jpg", quality=90)
    drawn = Image.new("L", (600, 800), 0)
    pen = ImageDraw.Draw(drawn)
    pen.line([(50, 100), (550, 300)], fill=255, width=25)
    pen.line([(300, 400), (320, 780)], fill=255, width=15)
    pen.ellipse([(100, 500), (220, 640)], fill=255)
    drawn.save(tmp_path / "mask.png")

    [written] = inpaint_paths(generator, SIZE, tmp_path / "face.jpg", tmp_path / "mask.png", tmp_path / "out.png")

    out = Image.open(written)
    assert written == tmp_path / "out.png" and out.mode == "RGB" and out.size == (600, 800)
    out, decoded = np.asarray(out), np.asarray(Image.open(tmp_path / "face.jpg").convert("RGB"))
    hole = np.asarray(drawn) >= 128
    np.testing.assert_array_equal(out[~hole], decoded[~hole])
    assert (out[hole] != decoded[hole]).any(axis=-1).mean() > 0.5


def test_hole_gets_the_resized_prediction_and_the_model_sees_no_hole_content(tmp_path):
    image = photo(90, 60)
    hole = np.zeros((60, 90), bool)
    hole[10:50, 20:40] = True
    hole[:, 70] = True  # a one-pixel stroke, 1/3 of an S-pixel wide at 32²
    model = constant(-0.5)  # (-0.5 + 1) * 127.5 = 63.75 -> 64

    out = np.asarray(inpaint_image(model, SIZE, Image.fromarray(image), hole))

    assert (out[hole] == 64).all()
    np.testing.assert_array_equal(out[~hole], image[~hole])
    [(masked, small_hole)] = model.seen
    assert masked.shape == (1, 3, SIZE, SIZE) and small_hole.shape == (1, 1, SIZE, SIZE)
    assert set(small_hole.unique().tolist()) == {0.0, 1.0}
    assert small_hole[0, 0, :, 70 * SIZE // 90].all()  # the thin stroke survives the downscale
    assert (masked[small_hole.expand_as(masked) == 1] == 0).all()


def test_what_is_under_the_hole_does_not_reach_the_model():
    image = np.full((64, 96, 3), 100, np.uint8)
    hole = np.zeros((64, 96), bool)
    hole[20:40, 30:57] = True  # edges off the 3-pixel grid of 96 -> 32, between S-pixels
    image[hole] = 250  # the object the user wants gone
    model = constant(0.0)

    inpaint_image(model, SIZE, Image.fromarray(image), hole)

    [(masked, small_hole)] = model.seen
    known = masked[small_hole.expand_as(masked) == 0]
    torch.testing.assert_close(known, torch.full_like(known, 100 / 127.5 - 1))


def test_any_image_mode_keeps_its_known_pixels_in_8_bit_rgb(tmp_path, generator):
    height, width = 30, 40
    rgb = photo(width, height, seed=1)
    grey16 = (np.arange(height * width, dtype=np.uint16).reshape(height, width) * 53)
    palette = np.array([[255, 0, 0], [0, 128, 255], [20, 200, 20], [9, 9, 9]], np.uint8)
    indices = (np.arange(height * width).reshape(height, width) % 4).astype(np.uint8)
    indexed = Image.fromarray(indices, "P")
    indexed.putpalette(palette.ravel().tolist())
    alpha = np.full((height, width, 1), 77, np.uint8)
    cases = {  # image -> its 8-bit RGB by hand
        "rgba": (Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA"), rgb),
        "grey": (Image.fromarray(rgb[..., 0], "L"), np.repeat(rgb[..., :1], 3, -1)),
        "grey16": (Image.fromarray(grey16), np.repeat(np.round(grey16 / 257).astype(np.uint8)[..., None], 3, -1)),
        "palette": (indexed, palette[indices]),
    }
    hole = centre_hole(height, width)
    Image.fromarray(hole).save(tmp_path / "mask.png")
    for name, (image, expected) in cases.items():
        image.save(tmp_path / f"{name}.png")
        assert Image.open(tmp_path / f"{name}.png").mode == {"grey16": "I;16"}.get(name, image.mode)
        inpaint_paths(generator, SIZE, tmp_path / f"{name}.png", tmp_path / "mask.png", tmp_path / "out")
        out = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert out.shape == (height, width, 3), name
        np.testing.assert_array_equal(out[~hole], expected[~hole], err_msg=name)


def test_exif_orientation_is_honoured(tmp_path, generator):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90°
    Image.fromarray(photo(40, 20)).save(tmp_path / "side.jpg", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "side.jpg")).convert("RGB"))
    assert upright.shape == (40, 20, 3)
    hole = centre_hole(40, 20)

    out = np.asarray(inpaint_image(generator, SIZE, Image.open(tmp_path / "side.jpg"), hole))

    assert out.shape == (40, 20, 3)
    np.testing.assert_array_equal(out[~hole], upright[~hole])


def test_mask_reading_rules():
    grey = np.array([[0, 127], [128, 255]], np.uint8)
    np.testing.assert_array_equal(hole_mask(Image.fromarray(grey)), [[False, False], [True, True]])
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[1, 1] = 255  # white: hole; pure red has luminance 76: not a hole
    colour[0, 1] = [255, 0, 0]
    np.testing.assert_array_equal(hole_mask(Image.fromarray(colour)), [[False, False], [False, True]])
    strokes = np.zeros((2, 2, 4), np.uint8)  # black paint on a transparent layer: alpha is the mask
    strokes[0, 0, 3] = strokes[1, 0, 3] = 255
    np.testing.assert_array_equal(hole_mask(Image.fromarray(strokes, "RGBA")), [[True, False], [True, False]])
    opaque_black = np.zeros((2, 2, 4), np.uint8)
    opaque_black[..., 3] = 255
    assert not hole_mask(Image.fromarray(opaque_black, "RGBA")).any()
    np.testing.assert_array_equal(hole_mask(np.array([[0, 255], [1, 0]], np.uint8)), [[False, True], [True, False]])


def test_empty_mask_returns_the_input_without_running_the_model(tmp_path):
    image = photo(50, 70)
    for empty in (np.zeros((70, 50), bool), Image.new("L", (50, 70), 0)):
        out = inpaint_image(never_called, SIZE, Image.fromarray(image), empty)
        assert out.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(out), image)


def test_mask_of_another_size_needs_resize_mask(tmp_path):
    image = photo(20, 16)
    small = np.zeros((8, 10), bool)
    small[2:5, 3:7] = True
    with pytest.raises(UserError, match=r"mask is 10x8 but the image is 20x16.*--resize-mask"):
        inpaint_image(constant(-0.5), SIZE, Image.fromarray(image), small)

    out = np.asarray(inpaint_image(constant(-0.5), SIZE, Image.fromarray(image), small, resize_mask=True))

    stretched = small.repeat(2, axis=0).repeat(2, axis=1)  # nearest neighbour at exactly 2x
    assert (out[stretched] == 64).all()
    np.testing.assert_array_equal(out[~stretched], image[~stretched])


def test_folders_pair_by_name(tmp_path, generator):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, name in enumerate(["face1", "face2"]):
        Image.fromarray(photo(36 + 8 * i, 44, seed=i)).save(tmp_path / "images" / f"{name}.jpg")
        Image.fromarray(centre_hole(44, 36 + 8 * i)).save(tmp_path / "masks" / f"{name}.png")

    written = inpaint_paths(generator, SIZE, tmp_path / "images", tmp_path / "masks", tmp_path / "out", batch_size=2)

    assert written == [tmp_path / "out" / "face1.png", tmp_path / "out" / "face2.png"]
    for i, path in enumerate(written):
        out = np.asarray(Image.open(path))
        decoded = np.asarray(Image.open(tmp_path / "images" / f"{path.stem}.jpg").convert("RGB"))
        hole = centre_hole(44, 36 + 8 * i)
        np.testing.assert_array_equal(out[~hole], decoded[~hole])

    Image.fromarray(photo(36, 44)).save(tmp_path / "images" / "stranger.png")
    with pytest.raises(UserError, match="stranger.png"):
        inpaint_paths(generator, SIZE, tmp_path / "images", tmp_path / "masks", tmp_path / "out")


def test_one_mask_file_serves_a_folder(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(photo(24, 24, seed=ord(name))).save(tmp_path / "images" / f"{name}.png")
    Image.fromarray(centre_hole(12, 12)).save(tmp_path / "mask.png")
    with pytest.raises(UserError, match=r"mask.png \(mask of .*a.png\): mask is 12x12 .* 24x24.*--resize-mask"):
        inpaint_paths(constant(-0.5), SIZE, tmp_path / "images", tmp_path / "mask.png", tmp_path / "out")

    written = inpaint_paths(constant(-0.5), SIZE, tmp_path / "images", tmp_path / "mask.png", tmp_path / "out",
                            resize_mask=True, batch_size=2)

    assert [path.name for path in written] == ["a.png", "b.png", "c.png"]
    hole = centre_hole(12, 12).repeat(2, axis=0).repeat(2, axis=1)
    for path in written:
        assert (np.asarray(Image.open(path))[hole] == 64).all()


def test_bad_files_are_user_errors(tmp_path, generator):
    Image.fromarray(centre_hole(20, 20)).save(tmp_path / "mask.png")
    with pytest.raises(UserError, match="nowhere.png.*not found"):
        inpaint_paths(generator, SIZE, tmp_path / "nowhere.png", tmp_path / "mask.png", tmp_path / "out.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="broken.png.*cannot decode"):
        inpaint_paths(generator, SIZE, tmp_path / "broken.png", tmp_path / "mask.png", tmp_path / "out.png")
    with pytest.raises(UserError, match="overwrite the input"):
        inpaint_paths(generator, SIZE, tmp_path / "mask.png", tmp_path / "mask.png", tmp_path)
    with pytest.raises(UserError, match="no trained model"):
        load_generator(tmp_path / "models" / "none")


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["inpaint", *argv])


def test_cli_writes_the_output_and_exits_2_on_a_user_error(tmp_path, checkpoint):
    Image.fromarray(photo(30, 30)).save(tmp_path / "face.png")
    Image.fromarray(centre_hole(30, 30)).save(tmp_path / "mask.png")
    files = ["--image", str(tmp_path / "face.png"), "--mask", str(tmp_path / "mask.png")]

    args = cli("--checkpoint", str(checkpoint), *files, "--out", str(tmp_path / "out.jpg"))
    assert exits_cleanly(args.run)(args) == 0
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"

    args.model_uri = "runs:/0123456789abcdef/generator"
    with pytest.raises(UserError, match="exactly one of --checkpoint"):
        args.run(args)
    for argv in (["--checkpoint", str(tmp_path / "missing")], []):
        args = cli(*argv, *files, "--out", str(tmp_path / "never.png"))
        with pytest.raises(SystemExit) as exit_info:
            exits_cleanly(args.run)(args)
        assert exit_info.value.code == 2
    assert not (tmp_path / "never.png").exists()


def logged_generator(checkpoint: Path) -> str:
    """runs:/<id>/generator of a run that logged `checkpoint` the way the train stage does."""
    from fgi.tracking import Run

    with Run("inpaint") as run:
        run.log_generator(checkpoint / "model.pt")
    assert run.enabled, "logging failed"
    return f"runs:/{run.run_id}/generator"


def inpaint_args(tmp_path: Path, *model: str, out: str = "out.png") -> argparse.Namespace:
    if not (tmp_path / "face.png").exists():
        Image.fromarray(photo(40, 50)).save(tmp_path / "face.png")
        Image.fromarray(centre_hole(50, 40)).save(tmp_path / "mask.png")
    return cli(*model, "--image", str(tmp_path / "face.png"), "--mask", str(tmp_path / "mask.png"),
               "--out", str(tmp_path / out), "--precision", "float32")


def test_model_uri_loads_a_logged_generator_and_knows_its_size(tmp_path, mlflow_db, checkpoint, generator):
    uri = logged_generator(checkpoint)
    args = inpaint_args(tmp_path, "--model-uri", uri)
    assert args.run(args) == 0

    direct = inpaint_image(generator, SIZE, Image.open(tmp_path / "face.png"), centre_hole(50, 40), precision="float32")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(direct))
    args = inpaint_args(tmp_path, "--model-uri", uri, "--size", "64", out="never.png")
    with pytest.raises(UserError, match="works at 32x32, not --size 64"):
        args.run(args)
    args = inpaint_args(tmp_path, "--model-uri", "runs:/0123456789abcdef/generator", out="never.png")
    with pytest.raises(UserError, match="cannot load the MLflow model"):
        args.run(args)
    assert not (tmp_path / "never.png").exists()


class UnpickleWitness(torch.nn.Module):
    """A generator that leaves a file behind when it is unpickled: proof that code ran on load."""

    def __init__(self, generator, witness: Path):
        super().__init__()
        self.generator, self.witness = generator, str(witness)

    def forward(self, masked_image, hole):
        return self.generator(masked_image, hole)

    def __setstate__(self, state):
        super().__setstate__(state)
        Path(self.witness).write_text("unpickled")


def test_a_pickled_mlflow_model_loads_only_with_the_trust_flag(tmp_path, mlflow_db, generator):
    import mlflow
    import mlflow.pytorch

    witness = tmp_path / "witness"
    experiment = mlflow.create_experiment("inpaint", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:  # as an older fgi logged generators
        mlflow.log_param("data.size", SIZE)
        mlflow.pytorch.log_model(UnpickleWitness(generator, witness), name="generator",
                                 serialization_format="pickle", pip_requirements=["torch"])
    uri = f"runs:/{run.info.run_id}/generator"

    args = inpaint_args(tmp_path, "--model-uri", uri)
    with pytest.raises(SystemExit) as exit_info:
        exits_cleanly(args.run)(args)
    assert exit_info.value.code == 2
    with pytest.raises(UserError, match=rf"{uri}: a pickled MLflow PyTorch model.*runs any code.*"
                                        r"Pass --trust-pickled-model only if you trust everyone"):
        args.run(args)
    assert not witness.exists() and not (tmp_path / "out.png").exists()

    args = inpaint_args(tmp_path, "--model-uri", uri, "--trust-pickled-model")
    assert args.run(args) == 0
    assert witness.read_text() == "unpickled"
    direct = inpaint_image(generator, SIZE, Image.open(tmp_path / "face.png"), centre_hole(50, 40), precision="float32")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(direct))


class RunsCode:
    """What a hostile model.pt would hold: unpickling it calls os.mkdir(path)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path, mlflow_db, checkpoint):
    import mlflow

    from fgi.tracking import describe_checkpoint

    ran = tmp_path / "payload-ran"
    content = torch.load(checkpoint / "model.pt", weights_only=True)
    hostile = tmp_path / "hostile" / "model.pt"
    hostile.parent.mkdir()
    torch.save({**content, "step": RunsCode(ran)}, hostile)
    description = {**describe_checkpoint(checkpoint / "model.pt"),
                   "sha256": hashlib.sha256(hostile.read_bytes()).hexdigest()}  # a consistent forgery
    (hostile.parent / "checkpoint.json").write_text(json.dumps(description))
    experiment = mlflow.create_experiment("inpaint", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:  # whoever can write to the server can do this
        mlflow.log_artifacts(str(hostile.parent), "generator")

    args = inpaint_args(tmp_path, "--model-uri", f"runs:/{run.info.run_id}/generator")
    with pytest.raises(UserError, match=r"model.pt holds objects other than tensors and plain data, so it was "
                                        r"refused unread \(it asks for posix.mkdir\); fgi never writes such a file"):
        args.run(args)
    assert not ran.exists(), "loading ran the payload"
    torch.load(hostile, weights_only=False)  # the control: unpickled, the file does run code
    assert ran.is_dir()


def test_a_checkpoint_that_does_not_match_its_hash_is_refused(tmp_path, checkpoint):
    from fgi.inference import load_mlflow_generator
    from fgi.tracking import describe_checkpoint

    (checkpoint / "checkpoint.json").write_text(json.dumps(describe_checkpoint(checkpoint / "model.pt")))
    assert load_mlflow_generator(str(checkpoint), None, "cpu")[1] == SIZE  # a local folder is a URI too
    with open(checkpoint / "model.pt", "ab") as file:
        file.write(b"\0")
    with pytest.raises(UserError, match="model.pt does not match the sha256 in checkpoint.json"):
        load_mlflow_generator(str(checkpoint), None, "cpu")


@pytest.mark.parametrize("description,why", [
    ([], 'no "format": "fgi-checkpoint" object'),
    ({"format": "fgi-checkpoint", "file": "../model.pt", "sha256": "0"}, "file '../model.pt' is not a file name"),
    ({"format": "fgi-checkpoint", "file": "..", "sha256": "0"}, "file '..' is not a file name"),
    ({"format": "fgi-checkpoint", "file": "model.pt"}, "no sha256"),
], ids=["not an object", "a path out", "the parent", "no hash"])
def test_a_description_that_is_not_ours_is_refused_naming_it(tmp_path, checkpoint, description, why):
    from fgi.inference import load_mlflow_generator

    (checkpoint / "checkpoint.json").write_text(json.dumps(description))
    with pytest.raises(UserError, match=rf"checkpoint.json is not a checkpoint description \({re.escape(why)}\); "
                                        r"re-log the generator"):
        load_mlflow_generator(str(checkpoint), None, "cpu")


@pytest.mark.parametrize("name", ["ours", "ce", "pconv", "gc", "lama"])
def test_bfloat16_inference_stays_within_a_few_levels_of_float32(micro_pipeline, name):
    """The fast path `fgi inpaint` takes by default where bfloat16 is native, on the trained micro checkpoints."""
    pairs = PairSet(micro_pipeline / "data" / "prepared", micro_pipeline / "data" / "foreground",
                    micro_pipeline / "data" / "holes")
    images, holes = zip(*[(Image.fromarray(to_uint8(image[None])[0]), hole[0].numpy() > 0.5)
                          for image, hole, _, _ in (pairs[i] for i in range(len(pairs)))])
    _, generator, size = load_generator(micro_pipeline / "models" / name)
    exact = [np.asarray(out, np.int16) for out in inpaint_batch(generator, size, images, holes, precision="float32")]
    assert for_inference(generator, "bfloat16", torch.device("cpu")) == "bfloat16"
    assert all(p.dtype == torch.float32 for p in generator.parameters())  # autocast casts per op
    fast = [np.asarray(out, np.int16) for out in inpaint_batch(generator, size, images, holes, precision="bfloat16")]
    for hole, a, b in zip(holes, exact, fast):
        np.testing.assert_array_equal(a[~hole], b[~hole])  # known pixels are the input's either way
    delta = np.concatenate([np.abs(a - b)[hole].ravel() for hole, a, b in zip(holes, exact, fast)])
    assert delta.mean() < 1.0 and delta.max() <= 8, (delta.mean(), delta.max())


def test_auto_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bfloat16" if bfloat16_is_native(cpu) else "float32")
    assert resolve_precision("float32", cpu) == "float32"
    with pytest.raises(UserError, match="precision 'half': choose one of auto, float32, bfloat16"):
        resolve_precision("half", cpu)
