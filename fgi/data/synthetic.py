"""Offline stand-ins for CelebAMask-HQ and QD-IMD, written in their real on-disk layouts.

CelebAMask-HQ (Lee et al., "MaskGAN: Towards Diverse and Interactive Facial
Image Manipulation", CVPR 2020) pairs the CelebA-HQ photos with per-part masks;
QD-IMD (Iskakov, "Semi-parametric Image Inpainting", 2018; the paper's "Quick
Draw Mask") holds hole masks drawn from Quick, Draw! doodles (see
`fgi.data.doodles`). The demo cannot download either, so these modules render
look-alikes that the preparation code reads exactly as it reads the real sets:

    CelebA-HQ-img/<k>.jpg                                  RGB 1024x1024
    CelebAMask-HQ-mask-anno/<k//2000>/<k:05d>_<part>.png   L 512x512, 255 = part
    qd_imd/{train,test}/<i:05d>_<split>.png                L 512x512, 0 = hole

A face is a stack of layers painted back to front (`_Painter`); each layer keeps
its mask, so a part's annotation is exactly where that part shows in the photo:
skin has holes at the eyes, brows and mouth, a fringe hides skin, and `nose`
and `eye_g` overlap the skin as in the real masks. `l_`/`r_` follow the
person's left and right. Every file depends only on (seed, index), never on
the number of worker processes.
"""

from __future__ import annotations

import colorsys
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from fgi import files
from fgi.errors import UserError

IMAGE_SIZE = 1024
ANNO_SIZE = 512
IMAGES_DIR = "CelebA-HQ-img"
ANNO_DIR = "CelebAMask-HQ-mask-anno"
FACES_PER_ANNO_FOLDER = 2000
PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)

SKIN_TONES = np.array(
    [[247, 219, 200], [236, 192, 165], [214, 165, 130], [184, 132, 98],
     [141, 96, 67], [98, 64, 45], [70, 46, 34]], float)
HAIR_COLOURS = np.array(
    [[22, 18, 16], [48, 34, 26], [86, 60, 40], [124, 78, 44], [140, 60, 32],
     [196, 158, 104], [225, 205, 160], [150, 146, 140], [205, 203, 200]], float)
IRIS_COLOURS = np.array(
    [[90, 55, 30], [50, 30, 20], [120, 95, 50], [80, 110, 70], [70, 110, 160], [110, 120, 130]], float)
LIPSTICKS = np.array([[170, 20, 40], [210, 60, 110], [115, 25, 60], [225, 90, 75], [150, 40, 40]], float)
METALS = np.array([[212, 175, 55], [200, 200, 210], [240, 235, 225]], float)
MOUTH_INSIDE = (70, 22, 28)
TEETH = np.array([235, 230, 215], float)


# --------------------------------------------------------------------------- drawing


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.round(colour), 0, 255))


def _ellipse(cx, cy, rx, ry, n=40, t0=0.0, t1=2 * np.pi):
    t = np.linspace(t0, t1, n)
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def _mirror(points):
    """The same shape on the other side of the face (x -> -x)."""
    return np.asarray(points) * [-1.0, 1.0]


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Unit-variance noise with features about size/cells pixels wide, (size, size)."""
    coarse = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32))
    return np.asarray(coarse.resize((size, size), Image.BICUBIC))


class _Pose:
    """Similarity transform from face coordinates (1024-px upright face, origin
    between the eyes, y down) to image pixels."""

    def __init__(self, centre, scale: float, degrees: float):
        c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
        self.centre, self.scale = np.asarray(centre, float), scale
        self.matrix = scale * np.array([[c, -s], [s, c]])

    def __call__(self, points) -> np.ndarray:
        return np.asarray(points, float) @ self.matrix.T + self.centre

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        return (xy - self.centre) @ np.linalg.inv(self.matrix).T


class _Texture:
    """A smooth full-frame texture kept at low resolution and upsampled only where painted."""

    def __init__(self, pixels: np.ndarray):
        self.small = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    def crop(self, box: tuple[int, int, int, int]) -> Image.Image:
        scale = self.small.width / IMAGE_SIZE
        size = (box[2] - box[0], box[3] - box[1])
        return self.small.resize(size, Image.BILINEAR, box=tuple(v * scale for v in box))


@dataclass
class _Shape:
    """A binary mask covering only its box (x0, y0, x1, y1; even, so it halves exactly)."""

    box: tuple[int, int, int, int]
    mask: Image.Image


class _Painter:
    """Paints layers back to front and remembers which part each pixel shows."""

    def __init__(self, image: Image.Image, pose: _Pose):
        self.image, self.pose = image, pose
        self.layers: list[tuple[str | None, bool, _Shape]] = []

    def _shape(self, points, pad: float, draw: Callable) -> _Shape | None:
        xy = self.pose(points)
        lo = np.floor((xy.min(0) - pad - 2) / 2).astype(int) * 2
        hi = np.ceil((xy.max(0) + pad + 2) / 2).astype(int) * 2
        x0, y0 = np.maximum(lo, 0)
        x1, y1 = np.minimum(hi, IMAGE_SIZE)
        if x1 <= x0 or y1 <= y0:
            return None
        mask = Image.new("L", (int(x1 - x0), int(y1 - y0)), 0)
        draw(ImageDraw.Draw(mask), (xy - [x0, y0]).ravel().tolist())
        return _Shape((int(x0), int(y0), int(x1), int(y1)), mask)

    def polygon(self, points) -> _Shape | None:
        return self._shape(points, 0, lambda d, xy: d.polygon(xy, fill=255))

    def line(self, points, width: float) -> _Shape | None:
        """A stroke with round joints and caps, `width` in face pixels."""
        w = max(1, round(width * self.pose.scale))

        def draw(d, xy):
            d.line(xy, fill=255, width=w, joint="curve")
            for x, y in (xy[:2], xy[-2:]):
                d.ellipse((x - (w - 1) / 2, y - (w - 1) / 2, x + (w - 1) / 2, y + (w - 1) / 2), fill=255)

        return self._shape(points, w, draw)

    def paint(self, shape: _Shape | None, fill, part: str | None = None, occludes: bool = True,
              opacity: float = 1.0, blur: float = 0.0) -> None:
        """Paint `fill` (an RGB colour, or a full-frame image or `_Texture`) through `shape`.

        A layer with a `part` labels its pixels and, if `occludes`, hides the parts
        behind it in the annotation (a lens or the nose on the skin does not).
        Layers without a part (shading, iris, teeth) only change the photo.
        """
        if shape is None or shape.mask.getbbox() is None:
            return
        if part is not None:
            self.layers.append((part, occludes, shape))
        box, alpha = shape.box, shape.mask
        if blur:
            radius = blur * self.pose.scale
            margin = 2 * int(np.ceil(1.5 * radius))
            x0, y0, x1, y1 = box
            box = (max(x0 - margin, 0), max(y0 - margin, 0),
                   min(x1 + margin, IMAGE_SIZE), min(y1 + margin, IMAGE_SIZE))
            padded = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
            padded.paste(alpha, (x0 - box[0], y0 - box[1]))
            alpha = padded.filter(ImageFilter.GaussianBlur(radius))
        if opacity < 1:
            alpha = alpha.point(lambda v: round(v * opacity))
        source = fill.crop(box) if hasattr(fill, "crop") else _rgb(fill)
        self.image.paste(source, box, alpha)

    def annotation(self) -> dict[str, np.ndarray]:
        """Visible pixels of every part at ANNO_SIZE, (ANNO_SIZE, ANNO_SIZE) bool each."""
        covered = np.zeros((ANNO_SIZE, ANNO_SIZE), bool)
        parts: dict[str, np.ndarray] = {}
        for part, occludes, shape in reversed(self.layers):
            x0, y0, x1, y1 = (v // 2 for v in shape.box)
            inside = np.asarray(shape.mask.reduce(2)) >= 128  # (y1 - y0, x1 - x0)
            visible = parts.setdefault(part, np.zeros_like(covered))
            visible[y0:y1, x0:x1] |= inside & ~covered[y0:y1, x0:x1]
            if occludes:
                covered[y0:y1, x0:x1] |= inside
        return {part: pixels for part, pixels in parts.items() if pixels.any()}


def _clip(shape: _Shape | None, within: _Shape | None) -> _Shape | None:
    """The part of `shape` inside `within` (an iris inside its eye)."""
    if shape is None or within is None:
        return None
    outer = Image.new("L", shape.mask.size, 0)
    outer.paste(within.mask, (within.box[0] - shape.box[0], within.box[1] - shape.box[1]))
    return _Shape(shape.box, ImageChops.darker(shape.mask, outer))


# --------------------------------------------------------------------------- faces


@dataclass
class _Face:
    """What every part of one face agrees on; lengths in face pixels."""

    a: float  # half width of the head at the eyes
    top: float  # eye line to the top of the skull
    chin: float  # eye line to the chin
    jaw: float  # < 1 squares the jaw
    taper: float  # narrows the chin
    skin: np.ndarray
    hair: np.ndarray
    light: float  # -1 (from the left) .. 1: the far cheek is darker
    eye_x: float
    eye_y: float
    neck: float  # half width of the neck


def _random_colour(rng, saturation=(0.05, 0.7), value=(0.15, 0.95)) -> np.ndarray:
    hsv = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    return 255 * np.array(colorsys.hsv_to_rgb(*hsv))


def _sample_face(rng) -> _Face:
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(tone), len(SKIN_TONES) - 2)
    skin = SKIN_TONES[i] + (tone - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i]) + rng.normal(0, 6, 3)
    # Hair far enough from the skin that face and hair are separable, as in most photos.
    far = [c for c in HAIR_COLOURS if np.linalg.norm(c - skin) > 70]
    hair = far[rng.integers(len(far))] * rng.uniform(0.85, 1.15) + rng.normal(0, 5, 3)
    a = rng.uniform(165, 200)
    return _Face(a=a, top=rng.uniform(270, 310), chin=rng.uniform(235, 275), jaw=rng.uniform(0.6, 1.0),
                 taper=rng.uniform(0.0, 0.3), skin=skin, hair=np.clip(hair, 0, 255),
                 light=rng.uniform(-1, 1), eye_x=rng.uniform(0.36, 0.42) * a,
                 eye_y=rng.uniform(-8, 8), neck=rng.uniform(0.48, 0.6) * a)


def _head_outline(face: _Face, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    lower = s > 0
    x = np.where(lower, face.a * np.sign(c) * np.abs(c) ** face.jaw * (1 - face.taper * s**2), face.a * c)
    return np.column_stack([x, np.where(lower, face.chin * s, face.top * s)])


def _background(rng) -> Image.Image:
    n = 128
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip(np.cos(angle) * xx + np.sin(angle) * yy + 0.5, 0, 1)[..., None]
    near, far = _random_colour(rng), _random_colour(rng)
    pixels = near + ramp * (far - near)
    pixels += 22 * _smooth_noise(rng, n, 5)[..., None] + 7 * _smooth_noise(rng, n, 24)[..., None]
    if rng.random() < 0.4:  # a wall edge or a door frame
        x0, width = rng.integers(0, n), rng.integers(4, 40)
        pixels[:, x0:x0 + width] *= rng.uniform(0.6, 1.3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)


def _skin_texture(rng, face: _Face, pose: _Pose) -> _Texture:
    """Skin colour lit like a cylinder from the side of `face.light`; covers the whole frame."""
    n = 128
    grid = (np.stack(np.mgrid[0:n, 0:n][::-1], -1) + 0.5) * (IMAGE_SIZE / n)
    x, y = np.moveaxis(pose.inverse(grid), -1, 0)
    across = x / face.a + 0.35 * face.light
    down = y / face.chin
    shade = 1.06 - 0.2 * np.minimum(across**2, 2) - 0.1 * np.clip((down - 0.95) / 0.3, 0, 1)
    shade += 0.025 * _smooth_noise(rng, n, 12)
    return _Texture(face.skin * shade[..., None])


def _hair_texture(rng, face: _Face, pose: _Pose, bottom: float) -> Image.Image:
    """Hair colour with strands combed down and away from the crown; covers the whole frame."""
    texture = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), _rgb(face.hair))
    draw = ImageDraw.Draw(texture)
    n = 1400
    start = np.column_stack([rng.uniform(-face.a - 220, face.a + 220, n),
                             rng.uniform(-face.top - 110, bottom, n)])
    away = start - [0, -0.6 * face.top]
    away /= np.linalg.norm(away, axis=1, keepdims=True)
    flow = away + [0, 0.7] + rng.normal(0, 0.15, (n, 2))  # gravity pulls strands down
    flow /= np.linalg.norm(flow, axis=1, keepdims=True)
    end = start + flow * rng.uniform(25, 90, (n, 1))
    ends = pose(np.stack([start, end], 1).reshape(-1, 2)).reshape(n, 4).tolist()
    brightness = rng.uniform(0.55, 1.5, n)
    colours = np.clip(face.hair * brightness[:, None] + 45 * (brightness[:, None] - 1), 0, 255)
    width = max(1, round(2 * pose.scale))
    for xy, colour in zip(ends, colours.astype(int).tolist()):
        draw.line(xy, fill=tuple(colour), width=width)
    return texture


def _cloth_texture(rng, colour: np.ndarray) -> _Texture:
    n = 128
    folds = Image.fromarray(rng.standard_normal((4, 24)).astype(np.float32)).resize((n, n), Image.BICUBIC)
    shade = 1 + 0.12 * np.asarray(folds) + 0.05 * _smooth_noise(rng, n, 16)
    pixels = colour * shade[..., None]
    if rng.random() < 0.3:  # stripes, across or down
        period, phase = rng.uniform(4, 14), rng.uniform(0, 2 * np.pi)
        stripe = np.sin(np.arange(n) * 2 * np.pi / period + phase) > 0.3
        rows = pixels if rng.random() < 0.5 else pixels.swapaxes(0, 1)  # a view either way
        rows[stripe] = _random_colour(rng)
    return _Texture(pixels)


def _paint_body(p: _Painter, rng, face: _Face, skin: _Texture) -> None:
    """Neck and chest, the shadow under the jaw, a necklace, clothes with a neckline."""
    w, chin = face.neck, face.chin
    collar = chin + rng.uniform(85, 110)
    neck = p.polygon([(-w, 0.3 * chin), (w, 0.3 * chin), (w, collar - 10), (w + 130, collar + 90),
                      (w + 220, chin + 700), (-w - 220, chin + 700), (-w - 130, collar + 90),
                      (-w, collar - 10)])
    p.paint(neck, skin, "neck")
    jaw = _head_outline(face)
    p.paint(_clip(p.polygon(jaw[jaw[:, 1] > 0] + [0, 22]), neck), face.skin * 0.55, opacity=0.55, blur=14)
    if rng.random() < 0.12:
        t = np.linspace(0.05, np.pi - 0.05, 24)
        depth = rng.uniform(30, 90)
        chain = np.column_stack([0.97 * w * np.cos(t), collar - 40 + depth * np.sin(t)])
        metal = METALS[rng.integers(len(METALS))]
        p.paint(p.line(chain, rng.uniform(4, 8)), metal, "neck_l")
        p.paint(p.polygon(_ellipse(0, collar - 30 + depth, 9, 12)), metal * 0.9, "neck_l")
    x = np.linspace(1, -1, 21)
    style = rng.integers(3)  # crew, scoop, V
    depth = (rng.uniform(15, 40), rng.uniform(60, 130), rng.uniform(80, 200))[style]
    dip = 1 - np.abs(x) if style == 2 else np.sqrt(1 - x**2)
    neckline = np.column_stack([(w + 10) * x, collar + depth * dip])
    drop = rng.uniform(20, 50)
    right = [(w + 150, collar + drop), (face.a + 200, collar + drop + 45), (face.a + 300, collar + 200),
             (face.a + 380, collar + 700)]
    cloth = np.concatenate([neckline, _mirror(right), right[::-1]])
    colour = _random_colour(rng, value=(0.1, 0.95))
    p.paint(p.polygon(cloth), _cloth_texture(rng, colour), "cloth")


def _paint_head(p: _Painter, rng, face: _Face, skin: _Texture) -> None:
    """Ears (with earrings), the face itself, cheeks and eye sockets."""
    rx, ry, cy = rng.uniform(24, 32), rng.uniform(50, 65), rng.uniform(10, 35)
    cx = face.a + 0.3 * rx
    earring = rng.integers(3) if rng.random() < 0.25 else None  # stud, hoop, drop
    metal = METALS[rng.integers(len(METALS))]
    for side, part in ((1, "l_ear"), (-1, "r_ear")):
        ear = _ellipse(side * cx, cy, rx, ry)
        ear[:, 1] -= 0.25 * side * (ear[:, 0] - side * cx)  # the top leans outwards
        p.paint(p.polygon(ear), skin, part)
        p.paint(p.polygon(_ellipse(side * (cx + 0.25 * rx), cy - 5, 0.45 * rx, 0.6 * ry)),
                face.skin * 0.7, opacity=0.6, blur=4)
        if earring is not None:
            lobe = np.array([side * (cx + 0.1 * rx), cy + 0.85 * ry])
            if earring == 0:
                shape = p.polygon(_ellipse(*lobe, 7, 7))
            elif earring == 1:
                shape = p.line(_ellipse(lobe[0], lobe[1] + 16, 15, 18, 30, -np.pi / 2, 1.5 * np.pi), 4)
            else:
                shape = p.polygon([lobe + d for d in [(-3, 0), (3, 0), (9, 34), (0, 44), (-9, 34)]])
            p.paint(shape, metal, "ear_r")
    p.paint(p.polygon(_head_outline(face)), skin, "skin")
    blush = rng.uniform(0.0, 0.2)
    for side in (1, -1):
        p.paint(p.polygon(_ellipse(side * (face.eye_x + 8), face.eye_y + 75, 45, 30)),
                (200, 80, 90), opacity=blush, blur=18)
        p.paint(p.polygon(_ellipse(side * face.eye_x, face.eye_y - 6, 46, 26)),
                face.skin * 0.72, opacity=0.35, blur=10)


def _paint_eyes(p: _Painter, rng, face: _Face, squint: float) -> None:
    """Almond eyes (white, iris, pupil, catch-light, lid line) and arched brows."""
    half, upper, lower = rng.uniform(26, 33), rng.uniform(11, 16) * squint, rng.uniform(7, 10) * squint
    tilt, gaze = rng.uniform(-0.08, 0.12), rng.uniform(-4, 4)
    iris_colour = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.85, 1.15)
    iris_r = rng.uniform(11.5, 14)
    liner = rng.uniform(2.5, 5.5)
    brow_colour = np.minimum(face.hair * 0.8, face.skin * 0.5)
    brow_y, arch = face.eye_y - rng.uniform(32, 46), rng.uniform(5, 14)
    brow_in, brow_out = rng.uniform(0.8, 1.1), rng.uniform(1.05, 1.3)
    thick_in, thick_out, slant = rng.uniform(9, 15), rng.uniform(4, 7), rng.uniform(-4, 8)

    u = np.linspace(0, 1, 24)  # inner corner (0) to outer corner (1), on the person's left
    x = face.eye_x - half + 2 * half * u
    base = face.eye_y + 2 - tilt * 2 * half * u
    top = np.column_stack([x, base - upper * np.sin(np.pi * u**0.85)])
    bottom = np.column_stack([x, base + lower * np.sin(np.pi * u**1.15)])
    white = np.concatenate([top, bottom[::-1]])
    v = np.linspace(0, 1, 16)
    bx = face.eye_x - half * brow_in + (half * brow_in + half * brow_out) * v
    by = brow_y - arch * np.sin(np.pi * v**0.8) + slant * v
    thick = (thick_in + (thick_out - thick_in) * v) / 2
    brow = np.concatenate([np.column_stack([bx, by - thick]), np.column_stack([bx, by + thick])[::-1]])
    iris_xy = (face.eye_x + gaze, face.eye_y - 2)
    for side, mirror in (("l", lambda q: q), ("r", _mirror)):
        eye = p.polygon(mirror(white))
        centre = mirror(np.array([iris_xy]))[0]
        p.paint(eye, (235, 232, 228), f"{side}_eye")
        p.paint(_clip(p.polygon(_ellipse(*centre, iris_r, iris_r)), eye), iris_colour)
        p.paint(_clip(p.polygon(_ellipse(*centre, iris_r * 0.42, iris_r * 0.42)), eye), (12, 10, 10))
        p.paint(p.polygon(_ellipse(*(centre + [3, -4]), 2.5, 2.5)), (250, 250, 250))
        p.paint(p.line(mirror(top), liner), (28, 20, 20), f"{side}_eye")
        p.paint(p.polygon(mirror(brow)), brow_colour, f"{side}_brow", blur=1.5)


def _paint_nose(p: _Painter, rng, face: _Face, skin: _Texture) -> None:
    """A skin-coloured nose shaped by its shading: bridge shadow, tip highlight, nostrils."""
    tip, wing = rng.uniform(0.38, 0.46) * face.chin, rng.uniform(26, 38)
    bridge = rng.uniform(11, 15)
    right = [(bridge, -10), (bridge + 2, 35), (0.65 * wing, tip - 30), (wing, tip - 2),
             (0.9 * wing, tip + 12), (0.45 * wing, tip + 17), (0, tip + 15)]
    p.paint(p.polygon(np.concatenate([right, _mirror(right[-2::-1])])), skin, "nose", occludes=False)
    dark = face.skin * 0.68
    shadow_side = 1 if face.light < 0 else -1  # the side away from the light
    strip = [(4, 0), (bridge + 2, 0), (bridge + 6, tip - 25), (wing, tip + 2), (0.4 * wing, tip - 20)]
    p.paint(p.polygon(np.asarray(strip) * [shadow_side, 1]), dark,
            opacity=0.3 + 0.25 * abs(face.light), blur=7)
    p.paint(p.polygon(_ellipse(0, tip - 10, 10, 13)), np.minimum(face.skin * 1.12 + 10, 255),
            opacity=0.5, blur=6)
    p.paint(p.polygon(_ellipse(0, tip + 24, wing, 8)), dark, opacity=0.4, blur=6)
    nostril = rng.uniform(6, 9), rng.uniform(3.5, 5)
    for side in (1, -1):
        p.paint(p.polygon(_ellipse(side * 0.42 * wing, tip + 8, *nostril)), face.skin * 0.33,
                blur=1.5)


def _paint_mouth(p: _Painter, rng, face: _Face, expression: str) -> None:
    """Upper lip with a cupid's bow, fuller lower lip, and the mouth between them
    (a dark line when closed, teeth and a dark inside when open)."""
    half, y = rng.uniform(42, 60), rng.uniform(0.62, 0.72) * face.chin
    upper, lower = rng.uniform(7, 13), rng.uniform(10, 18)
    smile, gap, teeth = {
        "neutral": (rng.uniform(-3, 3), rng.uniform(2.5, 4), False),
        "smile": (rng.uniform(8, 16), rng.uniform(8, 16), True),
        "open": (rng.uniform(-2, 8), rng.uniform(18, 40), rng.random() < 0.5),
    }[expression]
    if rng.random() < 0.25:  # make-up
        colour = LIPSTICKS[rng.integers(len(LIPSTICKS))] * rng.uniform(0.85, 1.1)
    else:
        colour = (0.62 * face.skin + 0.38 * np.array([170, 65, 80])) * 0.9
    x = np.linspace(-half, half, 41)
    r = x / half
    round_ = np.sqrt(1 - r**2)  # 0 at the corners, where lips and mouth meet
    line = y - smile * r**2
    bow = 1 + 0.2 * np.exp(-(((np.abs(r) - 0.3) / 0.15) ** 2)) - 0.25 * np.exp(-((r / 0.08) ** 2))
    inner_top, inner_bottom = line - gap / 2 * round_, line + gap / 2 * round_
    outer_top = inner_top - upper * round_**0.7 * bow
    outer_bottom = inner_bottom + lower * round_**0.8

    def band(upper_edge, lower_edge):
        return np.concatenate([np.column_stack([x, upper_edge]), np.column_stack([x, lower_edge])[::-1]])

    mouth = p.polygon(band(inner_top, inner_bottom))
    p.paint(mouth, MOUTH_INSIDE, "mouth")
    if teeth:
        band_bottom = inner_top + np.minimum(0.45 * gap, 12) * round_ + 3
        p.paint(_clip(p.polygon(band(inner_top - 2, band_bottom)), mouth),
                TEETH * rng.uniform(0.85, 1.0))
    p.paint(p.polygon(band(outer_top, inner_top)), colour * 0.9, "u_lip")
    p.paint(p.polygon(band(inner_bottom, outer_bottom)), colour, "l_lip")
    p.paint(p.polygon(_ellipse(0, y + gap / 2 + 0.45 * lower, 0.45 * half, 0.22 * lower)), (255, 255, 255),
            opacity=0.18, blur=4)
    p.paint(p.polygon(_ellipse(0, y + gap / 2 + lower + 12, 0.5 * half, 7)), face.skin * 0.7,
            opacity=0.3, blur=6)


@dataclass
class _Hair:
    style: str  # short | long | fringe | bald
    long: bool  # hangs to the shoulders and beyond
    side: float  # extra width beside the head
    volume: float  # extra height above the skull
    ends: float  # where the hair in front of the face ends (y)
    back: float  # where the hair behind the head ends (y)


def _sample_hair(rng, face: _Face) -> _Hair:
    style = ("short", "long", "fringe", "bald")[rng.choice(4, p=[0.3, 0.35, 0.25, 0.1])]
    long = style == "long" or (style == "fringe" and rng.random() < 0.5)
    ends = rng.uniform(0.5, 1.6) * face.chin if long else rng.uniform(-70, -20)
    return _Hair(style, long, side=rng.uniform(8, 40), volume=rng.uniform(15, 60), ends=ends,
                 back=face.chin + rng.uniform(100, 380))


def _paint_hair_back(p: _Painter, rng, face: _Face, hair: _Hair, texture: Image.Image) -> None:
    flare = rng.uniform(10, 90)
    width = face.a + hair.side + 10
    x = np.linspace(width + flare, -width - flare, 15)
    tips = np.column_stack([x, hair.back + rng.uniform(-30, 30, len(x))])
    shape = np.concatenate([_ellipse(0, 0, width, face.top + hair.volume - 5, 30, np.pi, 2 * np.pi),
                            tips])
    outline = p.polygon(shape)
    p.paint(outline, texture, "hair")
    p.paint(outline, (0, 0, 0), opacity=0.3)  # in the shade of the head


def _paint_hair_front(p: _Painter, rng, face: _Face, hair: _Hair, texture: Image.Image) -> None:
    """The hair over the skull: a hairline across the forehead (jagged and low for a
    fringe) that drops at the temples to `hair.ends` in front of the ears or cheeks."""
    a, top = face.a, face.top
    width, height = a + hair.side, top + hair.volume
    skip = np.arcsin(np.clip(-hair.ends / height, 0, 1))  # short hair ends above y = 0
    outer = _ellipse(0, 0, width, height, 40, np.pi + skip, 2 * np.pi - skip)
    outer *= 1 + 0.025 * np.clip(_smooth_noise(rng, 40, 6)[0], -1, 2)[:, None]  # uneven volume
    if hair.ends > 0:
        outer = np.concatenate([[(-width, hair.ends)], outer, [(width, hair.ends)]])
    inset = rng.uniform(5, 0.18 * a) if hair.long else rng.uniform(0, 10)
    u = np.linspace(1, -1, 41)
    if hair.style == "fringe":
        hairline = -rng.uniform(0.1, 0.3) * top + rng.uniform(-30, 30) * u
        hairline += np.where(np.arange(len(u)) % 2 == 1, rng.uniform(4, 22, len(u)), 0) * (np.abs(u) < 0.85)
    else:
        hairline = np.full_like(u, -rng.uniform(0.5, 0.65) * top)
    drop = np.abs(u) ** rng.uniform(2.5, 5)
    inner = np.column_stack([(a - inset) * u, hairline + (hair.ends - hairline) * drop])
    p.paint(p.polygon(np.concatenate([outer, inner])), texture, "hair")


def _paint_glasses(p: _Painter, rng, face: _Face) -> None:
    """Frames and faintly tinted lenses; they overlap eyes and skin in the annotation."""
    rx, ry, square = face.eye_x * rng.uniform(0.48, 0.6), rng.uniform(22, 32), rng.uniform(2, 5)
    t = np.linspace(0, 2 * np.pi, 48)
    c, s = np.cos(t), np.sin(t)
    lens = np.column_stack([face.eye_x + rx * np.sign(c) * np.abs(c) ** (2 / square),
                            face.eye_y + 2 + ry * np.sign(s) * np.abs(s) ** (2 / square)])
    frame = rng.uniform(3, 7)
    colour = (METALS[rng.integers(len(METALS))] if rng.random() < 0.4 else
              _random_colour(rng, value=(0.05, 0.5)))
    tint = _random_colour(rng, value=(0.2, 0.8))
    opacity = rng.uniform(0.08, 0.3)
    bar = face.eye_y - 0.4 * ry
    for mirror in (lambda q: q, _mirror):
        p.paint(p.polygon(mirror(lens)), tint, "eye_g", occludes=False, opacity=opacity)
        p.paint(p.line(mirror(lens), frame), colour, "eye_g", occludes=False)
        p.paint(p.line(mirror([(face.eye_x + rx, bar), (face.a + 4, bar - 6)]), frame * 0.8), colour,
                "eye_g", occludes=False)
    p.paint(p.line([(face.eye_x - rx, bar), (0, bar - 4), (rx - face.eye_x, bar)], frame * 0.8), colour,
            "eye_g", occludes=False)


def _paint_hat(p: _Painter, rng, face: _Face, hair: _Hair) -> None:
    """A beanie over the top of the head with a turned-up band."""
    width = face.a + hair.side + rng.uniform(10, 30)
    rim = -rng.uniform(0.35, 0.6) * face.top
    height = face.top + hair.volume + rng.uniform(10, 40) + rim  # rim to crown
    colour = _random_colour(rng)
    p.paint(p.polygon(_ellipse(0, rim, width, height, 40, np.pi, 2 * np.pi)), colour, "hat")
    band = rng.uniform(25, 50)
    p.paint(p.polygon([(-width - 4, rim - band), (width + 4, rim - band), (width + 4, rim + 4),
                       (-width - 4, rim + 4)]), colour * rng.uniform(0.6, 0.85), "hat")


def _finish(rng, image: Image.Image) -> Image.Image:
    """Scene lighting (a gradient and a vignette) and sensor noise, in 8-bit PIL ops for speed."""
    n = 32
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.3)
    darken = strength * (0.5 + np.cos(angle) * xx + np.sin(angle) * yy) + 0.25 * (xx**2 + yy**2)
    darken = Image.fromarray(np.clip(255 * darken, 0, 255).astype(np.uint8))
    image.paste((0, 0, 0), (0, 0, *image.size), darken.resize(image.size, Image.BILINEAR))
    amplitude = int(rng.integers(2, 5))  # noise in 0 .. 2**amplitude - 1
    noise = np.frombuffer(rng.bytes(3 * image.width * image.height), np.uint8) >> (8 - amplitude)
    noise = Image.fromarray(noise.reshape(image.height, image.width, 3))
    return ImageChops.add(image, noise, 1.0, -(2 ** (amplitude - 1)))


def render_face(rng: np.random.Generator) -> tuple[Image.Image, dict[str, np.ndarray]]:
    """One synthetic face: the RGB photo (IMAGE_SIZE²) and its visible parts
    ({part: (ANNO_SIZE, ANNO_SIZE) bool}, non-empty parts only)."""
    face = _sample_face(rng)
    hair = _sample_hair(rng, face)
    expression = ("neutral", "smile", "open")[rng.choice(3, p=[0.45, 0.35, 0.2])]
    pose = _Pose((512 + rng.uniform(-30, 30), 455 + rng.uniform(-25, 25)), rng.uniform(0.95, 1.2),
                 rng.uniform(-10, 10))
    p = _Painter(_background(rng), pose)
    skin = _skin_texture(rng, face, pose)
    hair_texture = None if hair.style == "bald" else _hair_texture(
        rng, face, pose, max(hair.back if hair.long else -20, hair.ends))
    if hair.long:
        _paint_hair_back(p, rng, face, hair, hair_texture)
    _paint_body(p, rng, face, skin)
    _paint_head(p, rng, face, skin)
    _paint_nose(p, rng, face, skin)
    _paint_eyes(p, rng, face, squint=0.8 if expression == "smile" else 1.0)
    _paint_mouth(p, rng, face, expression)
    if hair_texture is not None:
        _paint_hair_front(p, rng, face, hair, hair_texture)
    if rng.random() < 0.15:
        _paint_glasses(p, rng, face)
    if rng.random() < 0.1:
        _paint_hat(p, rng, face, hair)
    return _finish(rng, p.image), p.annotation()


# --------------------------------------------------------------------------- files


def save_image_atomic(image: Image.Image, path: Path, image_format: str, **params) -> None:
    with files.atomic_path(path) as tmp:
        image.save(tmp, format=image_format, **params)


def _write_face(root: Path, seed: int, k: int) -> None:
    image, parts = render_face(np.random.default_rng([seed, k]))
    save_image_atomic(image, root / IMAGES_DIR / f"{k}.jpg", "JPEG", quality=90)
    folder = root / ANNO_DIR / str(k // FACES_PER_ANNO_FOLDER)
    for part in PARTS:
        path = folder / f"{k:05d}_{part}.png"
        if part in parts:
            save_image_atomic(Image.fromarray(parts[part].astype(np.uint8) * 255), path, "PNG", compress_level=1)
        else:  # a render with another seed may have left this part behind
            path.unlink(missing_ok=True)


def run_jobs(job: Callable, items: Sequence, workers: int, progress: bool, desc: str) -> None:
    """Call `job` on every item, in `workers` processes (0 = every core we may use)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = min(workers or cores, len(items))
    with tqdm(total=len(items), desc=desc, unit="file", disable=not progress) as bar:
        if processes <= 1:
            for item in items:
                job(item)
                bar.update()
            return
        with ProcessPoolExecutor(processes) as pool:
            chunk = max(1, min(16, len(items) // (4 * processes)))
            for _ in pool.map(job, items, chunksize=chunk):
                bar.update()


def check_count(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise UserError(f"{name} must be a whole number >= 0, got {value!r}; fix it in params.yaml")


def render_celebamask_hq(root: Path, count: int, seed: int, workers: int = 0, progress: bool = False) -> None:
    """Write `count` synthetic faces under `root` in the CelebAMask-HQ layout (see module doc)."""
    check_count("data.synthetic.count", count)
    check_count("data.workers", workers)
    root = Path(root)
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for folder in range((count + FACES_PER_ANNO_FOLDER - 1) // FACES_PER_ANNO_FOLDER):
        (root / ANNO_DIR / str(folder)).mkdir(parents=True, exist_ok=True)
    run_jobs(partial(_write_face, root, seed), range(count), workers, progress, "faces")
