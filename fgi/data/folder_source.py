"""A folder source's pixels: a user's face images and foreground masks as prepare and foreground read them.

* **Orientation.** A photo's EXIF orientation is applied (`ImageOps.exif_transpose`), so a
  portrait stored sideways is read upright, as a viewer shows it. Masks go through the same call
  (a parser's PNG carries no EXIF, so it stays as it is).
* **Square** (`data.folder.square`). `crop` keeps the centred square of the shorter side; `pad`
  centres the image on a square of the longer side, black around it (a mask: background around
  it). When the difference is odd, the extra pixel is cut from, or added at, the right or bottom.
* **Size.** The square face is then resized to `data.size` with Lanczos, as prepare resizes
  CelebA-HQ's faces; a mask with nearest neighbour, as a label map must not be blended.
* **Foreground masks.** Binary (`data.folder.label_ids: []`): white = foreground, i.e. grey
  >= 128, or 1 in a mask whose values are only 0 and 1 (as some parsers save them). Label maps
  (`label_ids` the foreground ids, e.g. skin and hair): one id per pixel, in a greyscale, palette
  or 16-bit PNG, every id below `data.folder.label_count` (an id beyond it means the file is no
  raw label map of that parser, e.g. a coloured visualisation). `foreground.fill_holes` fills
  the enclosed holes before the square is cut, as for CelebAMask-HQ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from fgi.errors import UserError

EXIF_ORIENTATION = 0x0112
SWAPS_SIDES = (5, 6, 7, 8)  # the EXIF orientations that turn the picture by 90 degrees
LABEL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B")  # one integer per pixel


class Undecodable(UserError):
    """A file Pillow cannot decode: `data.on_corrupt` decides whether it stops the stage or is skipped."""


def _open(path: Path, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded, upright picture and its upright size at full resolution. `draft`: decode a JPEG at
    the smallest DCT scale that keeps both sides >= it (a 1024² face needed at 256² decodes 16x faster)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION, 1) in SWAPS_SIDES:
                width, height = height, width
            if draft:
                image.draft("RGB", (draft, draft))
            image.load()
            return ImageOps.exif_transpose(image), (width, height)
    except FileNotFoundError:
        raise UserError(f"{path}: not found; it was listed by the manifest stage, so the folder changed during "
                        "the run: run `dvc repro` again") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise Undecodable(f"{path}: cannot decode image ({err}); the file is truncated or not an image: replace "
                          "or delete it, or set data.on_corrupt: skip to leave it out") from err


def square_box(width: int, height: int, rule: str) -> tuple[int, int, int, int]:
    """The crop box of the square: inside the picture for `crop`, around it for `pad` (Pillow fills the
    part outside the picture with zeros)."""
    side = min(width, height) if rule == "crop" else max(width, height)
    # Floor division leaves the odd pixel at the right or bottom either way: crop cuts it there, pad adds it there.
    left = (width - side) // 2 if rule == "crop" else -((side - width) // 2)
    top = (height - side) // 2 if rule == "crop" else -((side - height) // 2)
    return left, top, left + side, top + side


def load_face(path: Path, size: int, rule: str) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 (size, size, 3): the upright face, made square by `rule`, Lanczos-resized; and its upright
    size at full resolution (what its mask must measure)."""
    image, upright = _open(path, draft=size)
    rgb = image.convert("RGB")
    # The box in the decoded picture's pixels: a drafted JPEG is smaller than `upright` by a whole factor.
    scale = rgb.size[0] / upright[0]
    box = tuple(round(edge * scale) for edge in square_box(*upright, rule))
    square = rgb.crop(box)
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8), upright


def check_mask(mask: Path, image: Path, upright: tuple[int, int]) -> None:
    """Decode the foreground mask of `image` and check it has the image's upright size."""
    _, size = _open(mask)  # decoded in full: a truncated mask fails here, before the split is made
    if size == upright:
        return
    (w, h), (mw, mh) = upright, size
    turned = " (the image's EXIF orientation turns it upright, and the mask matches its stored pixels: rotate " \
             "the mask the same way, or run the parser on the upright image)" if (mh, mw) == upright else ""
    raise UserError(f"{mask}: {mw}x{mh}, but its image {image} is {w}x{h}{turned}; a foreground mask must have its "
                    "image's size: resize it with nearest neighbour, or run the parser on that image")


def mask_pixels(path: Path, label_ids: list[int], label_count: int) -> np.ndarray:
    """bool (H, W), True = foreground, from a binary mask or (with `label_ids`) a label map."""
    image, _ = _open(path)
    if not label_ids:
        grey = np.asarray(image.convert("L"))
        return grey == 1 if grey.max() == 1 else grey >= 128
    if image.mode not in LABEL_MODES:
        raise UserError(f"{path}: a {image.mode} image, not a label map (one id per pixel, greyscale, palette or "
                        "16-bit); save the parser's raw labels, not a coloured view, or set data.folder.label_ids: "
                        "[] for binary masks")
    ids = np.asarray(image, dtype=np.int64)
    if int(ids.max()) >= label_count:
        found = sorted(int(i) for i in np.unique(ids[ids >= label_count]))
        raise UserError(f"{path}: label id(s) {', '.join(map(str, found[:5]))} but data.folder.label_count is "
                        f"{label_count} (ids 0-{label_count - 1}); give your parser's number of classes, or save "
                        "its raw label map rather than a scaled or coloured one")
    return np.isin(ids, label_ids)


def foreground_mask(path: Path, label_ids: list[int], label_count: int, fill_holes: bool, rule: str,
                    size: int) -> np.ndarray:
    """bool (size, size): the foreground of a folder source's mask, enclosed holes filled when asked,
    made square like its face, nearest-resized."""
    foreground = mask_pixels(path, label_ids, label_count)
    if fill_holes:
        foreground = ndimage.binary_fill_holes(foreground)
    height, width = foreground.shape
    square = Image.fromarray(foreground.astype(np.uint8) * 255).crop(square_box(width, height, rule))
    return np.asarray(square.resize((size, size), Image.Resampling.NEAREST)) >= 128
