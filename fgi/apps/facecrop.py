"""Face-aware crops: inpaint a photo where the models expect a face.

Every model here was trained on aligned, square faces (CelebA-HQ framing: the
face fills the middle of the frame). A 4000 x 3000 photo resized to S x S shows
them a tiny face they never saw, so `fgi inpaint --face-crop` and `fgi serve`
first cut a square around the face at that framing, inpaint the square, and
paste it back:

* face: OpenCV's bundled Haar cascade (`haarcascade_frontalface_default.xml`,
  shipped inside the opencv-python-headless wheel, nothing downloaded) finds
  the largest frontal face. The square is `face_scale` (default 1.8) times
  the detector's box, centred a little above the box's centre, where an aligned face's
  centre sits (between eyes and mouth). The square grows, if it must, to hold
  the whole hole.
* hole: no face found, or the hole reaches outside the face's square by more
  than the square can grow: a square around the hole's bounding box, with
  margin for context.
* whole image: the hole is too large for any square inside the photo.

The paste changes hole pixels only: the crop's known pixels are the photo's
own bytes, and the inpainted crop keeps them (see `fgi.apps.inpaint`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image

from fgi.apps.photos import rgb8
from fgi.errors import UserError

CASCADE = "haarcascade_frontalface_default.xml"
# An aligned 1024² CelebA-HQ face is about 4 eye distances wide (the FFHQ/CelebA-HQ alignment
# crop); the Haar box is about 2.2 eye distances: the square is ~1.8 boxes.
FACE_SCALE = 1.8
DETECT_SIDE = 640  # detection runs on a copy whose longer side is at most this (speed)
FACE_CENTRE_DROP = -0.06  # the square's centre, relative to the box's, in box heights (negative: up)
HOLE_MARGIN = 0.5  # the hole square's context: this fraction of the hole's side on each side
MIN_SIDE = 32


@dataclasses.dataclass(frozen=True)
class Crop:
    """The square (left, top, side) cut from the photo and why it was chosen."""

    strategy: str  # face | hole | whole image
    left: int
    top: int
    side: int
    width: int  # the whole image's width and height: "whole image" crops are not square
    height: int
    face: tuple[int, int, int, int] | None = None  # the detector's box (x, y, w, h)
    why: str = ""  # for "whole image": why no square was cut

    @property
    def box(self) -> tuple[int, int, int, int]:
        if self.strategy == "whole image":
            return 0, 0, self.width, self.height
        return self.left, self.top, self.left + self.side, self.top + self.side

    def describe(self) -> str:
        left, top, right, bottom = self.box
        where = f"{right - left}x{bottom - top} at ({left}, {top})"
        if self.strategy == "face":
            return f"face found at {self.face}; inpainted the square {where}"
        if self.strategy == "hole":
            return (f"{'no face found' if self.face is None else 'the hole reaches beyond the face'}; "
                    f"inpainted the square {where} around the hole")
        return f"{self.why + '; ' if self.why else ''}inpainted the whole image, resized to the model's size"


@functools.lru_cache(maxsize=1)
def _cascade():
    try:
        import cv2  # noqa: PLC0415 - OpenCV is a large import (~0.2 s) that only the face crop needs
    except ImportError as err:  # the dependency is declared; a broken install is the user's to fix
        raise UserError("face crop: OpenCV is not installed; run `make setup` "
                        "(opencv-python-headless ships the face detector)") from err
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if cascade.empty():
        raise UserError(f"face crop: OpenCV could not load its bundled {CASCADE}; reinstall opencv-python-headless")
    return cv2, cascade


def find_face(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face in uint8 (H, W, 3) as (x, y, w, h) in its pixels, or None."""
    cv2, cascade = _cascade()
    height, width = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)  # (H, W)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def _place(centre: float, side: int, extent: int) -> int:
    """The start of a `side`-long window centred at `centre`, moved inside [0, extent)."""
    return int(min(max(round(centre - side / 2), 0), extent - side))


def _square_holding(left: int, top: int, side: int, hole_box: tuple[int, int, int, int],
                    width: int, height: int) -> tuple[int, int, int] | None:
    """The smallest square holding both the square (left, top, side) and `hole_box`, moved inside
    the image; None when no square inside the image can."""
    x0, y0 = min(left, hole_box[0]), min(top, hole_box[1])
    x1, y1 = max(left + side, hole_box[2]), max(top + side, hole_box[3])
    side = max(x1 - x0, y1 - y0)
    if side > min(width, height):
        return None
    # A window at least as long as the union, centred on it, still holds it after moving inside.
    return _place((x0 + x1) / 2, side, width), _place((y0 + y1) / 2, side, height), side


def choose_crop(rgb: np.ndarray, hole: np.ndarray, face_scale: float = FACE_SCALE, detect: bool = True) -> Crop:
    """The square to inpaint for uint8 (H, W, 3) and bool (H, W) hole, by the rules above."""
    height, width = hole.shape
    rows, cols = np.nonzero(hole)
    hole_box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)  # x0, y0, x1, y1
    face = find_face(rgb) if detect else None
    if face is not None:
        x, y, w, h = face
        side = min(max(round(face_scale * max(w, h)), MIN_SIDE), min(width, height))
        left = _place(x + w / 2, side, width)
        top = _place(y + h / 2 + FACE_CENTRE_DROP * h, side, height)
        square = _square_holding(left, top, side, hole_box, width, height)
        if square is not None:
            return Crop("face", *square, width, height, face)
    hole_side = max(hole_box[2] - hole_box[0], hole_box[3] - hole_box[1])
    side = max(round(hole_side * (1 + 2 * HOLE_MARGIN)), MIN_SIDE)
    if side > min(width, height):
        side = hole_side  # no room for context: the tightest square, if even that fits
    if side <= min(width, height):
        left = _place((hole_box[0] + hole_box[2]) / 2, side, width)
        top = _place((hole_box[1] + hole_box[3]) / 2, side, height)
        return Crop("hole", left, top, side, width, height, face)
    return Crop("whole image", 0, 0, 0, width, height, face, why="the hole is too large for a square crop")


def inpaint_cropped(inpaint, image: Image.Image, hole: np.ndarray, face_scale: float = FACE_SCALE,
                    face_crop: bool = True) -> tuple[Image.Image, Crop]:
    """`inpaint(image, hole) -> image` run on the chosen square and pasted back into `image` (RGB);
    without `face_crop`, on the whole image (what `fgi inpaint` does by default)."""
    pixels = rgb8(image)  # (H, W, 3)
    height, width = pixels.shape[:2]
    if hole.shape != (height, width):
        raise UserError(f"face crop: the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {width}x{height}")
    if not hole.any() or not face_crop:
        why = "no hole" if not hole.any() else "face crop off"
        return inpaint(Image.fromarray(pixels), hole), Crop("whole image", 0, 0, 0, width, height, why=why)
    crop = choose_crop(pixels, hole, face_scale)
    left, top, right, bottom = crop.box
    filled = np.asarray(inpaint(Image.fromarray(pixels[top:bottom, left:right]), hole[top:bottom, left:right]))
    result = pixels.copy()
    result[top:bottom, left:right] = filled  # its known pixels are the photo's own
    return Image.fromarray(result), crop
