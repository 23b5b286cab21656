"""`fgi inpaint`: fill the holes of your own photos with a trained model.

    fgi inpaint --checkpoint models/ours --image face.jpg --mask face_mask.png --out filled.png
    fgi inpaint --model-uri runs:/<run_id>/generator --image photos/ --mask masks/ --out filled/
    fgi inpaint --checkpoint models/ours --image photo.jpg --mask hole.png --out filled.png --face-crop

The model works at its fixed size S (the `data.size` it was trained at), so a
photo of any size is resized to S x S, filled there, and the prediction is
resized back; only the hole pixels of the output come from it. Conventions:

* image: any mode Pillow reads, EXIF orientation applied, made 8-bit RGB —
  alpha dropped (RGBA, LA, PA: the colour channels as stored), grey and
  palette expanded, 16-bit grey (I;16, I) scaled by 255/65535 and rounded.
  These 8-bit RGB pixels are what the output keeps, byte for byte, outside the
  hole (exactly so in a PNG; a JPEG output re-encodes them).
* mask: same size as the image (or `--resize-mask`: nearest-neighbour to the
  image's size); hole where the luminance is >= 128 (white = hole). An alpha
  mask — an alpha channel that varies while the colour channels are one
  constant colour — uses alpha >= 128 instead.
* at S: the image, its hole first filled with the mean known colour, is
  resized with Pillow's antialiased bicubic filter; an S-pixel is a hole when
  ANY original pixel under it is (not area >= 0.5), so a thin stroke survives
  the downscale and nothing under the hole reaches the model's input.
* an empty mask returns the image (as 8-bit RGB) without running the model.
* `--face-crop`: a photo is not an aligned face; inpaint a square around the
  face instead (or around the hole when no face is found), see `fgi.apps.facecrop`.
* `--model-uri`: a generator the train stage logged (`model.pt`), read
  without unpickling; a pickled MLflow model runs its author's code on load
  and needs `--trust-pickled-model` (`fgi.inference.load_mlflow_generator`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fgi import files
from fgi.apps.facecrop import FACE_SCALE, inpaint_cropped
from fgi.apps.photos import hole_mask, rgb8
from fgi.data.dataset import image_tensor, to_uint8
from fgi.errors import UserError
from fgi.inference import (PRECISIONS, TRUST_FLAG, TRUST_HELP, device, inference_autocast, load_generator,
                           load_mlflow_generator, memory_format, prepare_generator,
                           resolve_precision)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


# ---------------------------------------------------------------- pixels

def _fit_mask(hole: np.ndarray, shape: tuple[int, int], resize_mask: bool, name: str) -> np.ndarray:
    if hole.shape == shape:
        return hole
    if not resize_mask:
        raise UserError(f"{name}: mask is {hole.shape[1]}x{hole.shape[0]} but the image is {shape[1]}x{shape[0]}; "
                        "pass --resize-mask to scale the mask to the image (nearest neighbour)")
    stretched = Image.fromarray(hole.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(stretched) >= 128


def _device_of(generator) -> torch.device:
    try:
        return next(generator.parameters()).device
    except (AttributeError, StopIteration):  # a plain function, or a module without weights
        return torch.device("cpu")


# ---------------------------------------------------------------- inpainting

def inpaint_batch(generator, size: int, images: list[Image.Image], masks: list, resize_mask: bool = False,
                  names: list[str] | None = None, precision: str = "auto") -> list[Image.Image]:
    """Fill each image's hole with one forward pass over all that have one; RGB images back.

    `precision` (auto, float32, bfloat16) is the generator's compute precision, see
    `fgi.inference.for_inference`; the composite is made in float32 either way.
    """
    names = names or [f"image {i}" for i in range(len(images))]
    pixels = [rgb8(image) for image in images]  # each uint8 (H, W, 3)
    holes = [_fit_mask(hole_mask(mask), rgb.shape[:2], resize_mask, name)
             for rgb, mask, name in zip(pixels, masks, names)]
    outputs = [Image.fromarray(rgb) for rgb in pixels]
    todo = [i for i, hole in enumerate(holes) if hole.any()]
    if not todo:
        return outputs
    small_images, small_holes = [], []
    for i in todo:
        # The filter reaches past an S-pixel's footprint: blend known neighbours towards the
        # known mean, not towards what the user wants removed.
        known = pixels[i].copy()
        if not holes[i].all():
            known[holes[i]] = pixels[i][~holes[i]].mean(axis=0).round().astype(np.uint8)
        small = Image.fromarray(known).resize((size, size), Image.Resampling.BICUBIC)
        small_images.append(image_tensor(np.array(small)))  # (3, S, S)
        hole = torch.from_numpy(holes[i]).float()[None, None]  # (1, 1, H, W)
        small_holes.append(F.adaptive_max_pool2d(hole, size)[0])  # (1, S, S): any hole pixel under it
    where = _device_of(generator)
    precision = resolve_precision(precision, where)
    layout = memory_format(generator, precision)
    image = torch.stack(small_images).to(where)  # (N, 3, S, S)
    hole = torch.stack(small_holes).to(where)  # (N, 1, S, S)
    with torch.no_grad():
        with inference_autocast(precision, where):
            prediction = generator((image * (1 - hole)).contiguous(memory_format=layout),
                                   hole.contiguous(memory_format=layout))
        prediction = prediction.float().contiguous()  # (N, 3, S, S)
        for row, i in enumerate(todo):
            height, width = holes[i].shape
            full = F.interpolate(prediction[row:row + 1], size=(height, width), mode="bicubic",
                                 align_corners=False)  # (1, 3, H, W)
            filled = np.where(holes[i][..., None], to_uint8(full)[0], pixels[i])  # (H, W, 3)
            outputs[i] = Image.fromarray(filled)
    return outputs


def inpaint_image(generator, size: int, image: Image.Image, mask: Image.Image | np.ndarray,
                  resize_mask: bool = False, precision: str = "auto") -> Image.Image:
    """The image (RGB, original size) with its hole filled by `generator` working at size x size."""
    return inpaint_batch(generator, size, [image], [mask], resize_mask, precision=precision)[0]


def open_image(path: Path) -> Image.Image:
    """A fully decoded image; UserError naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image not found; check the path")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here
            return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot decode image ({err}); pass a PNG or JPEG file") from err


def _listing(folder: Path, what: str) -> dict[str, Path]:
    """stem -> file for the images in `folder` (hidden files skipped)."""
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in by_stem:
                raise UserError(f"{folder}: {by_stem[path.stem].name} and {path.name} share a name; "
                                f"keep one {what} per name")
            by_stem[path.stem] = path
    if not by_stem:
        raise UserError(f"{folder}: no {what}s ({', '.join(sorted(IMAGE_SUFFIXES))}); check the folder")
    return by_stem


def _pairs(image: Path, mask: Path) -> list[tuple[Path, Path]]:
    if not image.exists():
        raise UserError(f"{image}: image not found; check the path")
    if not mask.exists():
        raise UserError(f"{mask}: mask not found; check the path")
    if not image.is_dir():
        if mask.is_dir():
            raise UserError(f"{mask}: a mask folder needs an image folder; pass --mask FILE for one image")
        return [(image, mask)]
    images = _listing(image, "image")
    if not mask.is_dir():
        return [(path, mask) for path in images.values()]
    masks = _listing(mask, "mask")
    unmatched = sorted(images.keys() ^ masks.keys())
    if unmatched:
        names = [(images.get(stem) or masks[stem]).name for stem in unmatched]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise UserError(f"{image} and {mask}: no partner for {shown}; give each image a mask "
                        "with the same name (face1.jpg <-> face1.png) or remove the extra files")
    return [(images[stem], masks[stem]) for stem in images]


def _destination(out: Path, source: Path, many: bool) -> tuple[Path, str]:
    """Where the output of `source` goes, and its format."""
    if many or out.is_dir() or not out.suffix:
        if out.is_file():
            raise UserError(f"{out}: is a file; pass a folder as --out for a folder of images")
        path, image_format = out / f"{source.stem}.png", "PNG"
    elif out.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"{out}: unknown output type {out.suffix!r}; end --out with .png or .jpg, or pass a folder")
    else:
        path, image_format = out, OUTPUT_FORMATS[out.suffix.lower()]
    if path.resolve() == source.resolve():
        raise UserError(f"{path}: --out would overwrite the input image; pass another --out")
    return path, image_format


def save_image(image: Image.Image, path: Path, image_format: str) -> None:
    with files.atomic_path(path) as tmp:
        image.save(tmp, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))


def inpaint_paths(generator, size: int, image: Path, mask: Path, out: Path, resize_mask: bool = False,
                  batch_size: int = 8, precision: str = "auto", face_scale: float | None = None) -> list[Path]:
    """Inpaint a file or a folder (masks paired by file stem); return the files written.

    With `face_scale`, each image is inpainted on a face-aware crop (`fgi.apps.facecrop`), one at a
    time, and the strategy that ran is printed."""
    image, mask, out = Path(image), Path(mask), Path(out)
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    pairs = _pairs(image, mask)
    targets = [_destination(out, image_path, image.is_dir()) for image_path, _ in pairs]  # fail before any work
    if face_scale is not None:
        for (image_path, mask_path), (path, image_format) in zip(pairs, targets):
            photo = open_image(image_path)
            hole = _fit_mask(hole_mask(open_image(mask_path)), rgb8(photo).shape[:2], resize_mask,
                             f"{mask_path} (mask of {image_path})")
            result, crop = inpaint_cropped(lambda crop, crop_hole: inpaint_image(generator, size, crop, crop_hole,
                                                                                  precision=precision),
                                           photo, hole, face_scale)
            print(f"{image_path}: {crop.describe()}")
            save_image(result, path, image_format)
        return [path for path, _ in targets]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        filled = inpaint_batch(generator, size, [open_image(p) for p, _ in chunk], [open_image(m) for _, m in chunk],
                               resize_mask, names=[f"{m} (mask of {p})" for p, m in chunk], precision=precision)
        for result, (path, image_format) in zip(filled, targets[start:start + batch_size]):
            save_image(result, path, image_format)
    return [path for path, _ in targets]


# ---------------------------------------------------------------- command line

def run(args: argparse.Namespace) -> int:
    if bool(args.checkpoint) == bool(args.model_uri):
        raise UserError("inpaint: pass exactly one of --checkpoint PATH (folder with model.pt) or --model-uri URI")
    where = device()
    if args.checkpoint:
        _, generator, size = load_generator(Path(args.checkpoint), where)
    else:
        generator, size = load_mlflow_generator(args.model_uri, args.size, where, args.trust_pickled_model)
    precision = prepare_generator(generator, args.precision, where)
    written = inpaint_paths(generator, size, Path(args.image), Path(args.mask), Path(args.out),
                            resize_mask=args.resize_mask, batch_size=args.batch_size, precision=precision,
                            face_scale=args.face_scale if args.face_crop else None)
    print(f"wrote {len(written)} image{'s' * (len(written) != 1)} ({where.type}, {precision}, model at {size}x{size})"
          + (f": {written[0]}" if len(written) == 1 else f" to {args.out}"))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `inpaint` to an argparse subparsers object."""
    parser = subparsers.add_parser("inpaint", help="fill the holes of your own photos with a trained model",
                                   description="Fill the holes of your own photos with a trained model.")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="PATH", help="a folder holding model.pt (e.g. models/ours), or the file")
    model.add_argument("--model-uri", metavar="URI",
                       help="a generator logged with MLflow, e.g. runs:/<run_id>/generator (loaded without "
                            "unpickling; the tracking server is $MLFLOW_TRACKING_URI)")
    parser.add_argument("--size", type=int, metavar="S",
                        help="the working size of a --model-uri that does not record it (a pickled MLflow model "
                             "outside runs:/); a generator logged by fgi knows its size")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    parser.add_argument("--image", required=True, help="an image file, or a folder of images")
    parser.add_argument("--mask", required=True,
                        help="a mask file (white = hole) for every image, or a folder of masks named like the images")
    parser.add_argument("--out", required=True, help="an output .png/.jpg, or a folder (PNGs named like the images)")
    parser.add_argument("--resize-mask", action="store_true", help="scale a mask of another size to the image's")
    parser.add_argument("--face-crop", action="store_true",
                        help="find the face (OpenCV's bundled detector) and inpaint a square around it at the "
                             "training framing; no face: a square around the hole")
    parser.add_argument("--face-scale", type=float, default=FACE_SCALE, metavar="X",
                        help=f"with --face-crop: the square's side in face-detector boxes (default {FACE_SCALE})")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass (default 8)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the model's compute precision: auto (default) is bfloat16 where the CPU or GPU runs it "
                             "natively (AVX512-BF16/AMX, sm80+), else float32; float32 for bit-stable outputs")
    parser.set_defaults(run=run)
    return parser
