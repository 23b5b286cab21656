"""A user's photo and mask as pixels: the conventions `fgi inpaint`, `fgi serve` and the face crop share.

* image: any mode Pillow reads, EXIF orientation applied, made 8-bit RGB —
  alpha dropped, grey and palette expanded, 16-bit grey scaled by 255/65535.
* mask: white = hole (luminance >= 128); an alpha mask (constant colour,
  varying alpha) uses alpha >= 128 instead.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from fgi.errors import UserError


def _grey16_to_8(image: Image.Image) -> np.ndarray:
    wide = np.asarray(image).astype(np.int64).clip(0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)  # round(v * 255 / 65535)


def rgb8(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3): the image upright (EXIF) in 8-bit RGB, as described in the module docstring."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "I" or image.mode.startswith("I;16"):
        return np.repeat(_grey16_to_8(image)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def hole_mask(mask: Image.Image | np.ndarray) -> np.ndarray:
    """bool (H, W), True = hole: an array is a hole where >= 0.5 (bool, 0/1, 0/255 all work)."""
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2:
            raise UserError(f"mask array: expected shape (H, W), got {mask.shape}; pass one channel")
        return mask >= 0.5
    mask = ImageOps.exif_transpose(mask)
    if mask.mode == "I" or mask.mode.startswith("I;16"):
        return _grey16_to_8(mask) >= 128
    if "A" in mask.getbands() or "transparency" in mask.info:
        rgba = np.asarray(mask.convert("RGBA"))
        colour, alpha = rgba[..., :3], rgba[..., 3]
        if (colour == colour[0, 0]).all() and alpha.min() != alpha.max():
            return alpha >= 128
    return np.asarray(mask.convert("L")) >= 128
