"""Biharmonic: the classical reference row, with nothing to train.

Damelin & Hoang, "On Surface Completion and Image Inpainting by Biharmonic
Functions", 2018, as scikit-image's `inpaint_biharmonic` solves it
(`inpainter.py`). Its train stage only records its params and validates it;
its predictions are composited like every method's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fgi.config import spec
from fgi.methods import Method
from fgi.methods.biharmonic.inpainter import BiharmonicInpainter


@dataclass(frozen=True)
class BiharmonicParams:
    split_into_regions: bool = spec()  # scikit-image: solve each hole separately (faster)


METHOD = Method(
    name="biharmonic", display="Biharmonic", citation="scikit-image (reference)", role="reference",
    params=BiharmonicParams,
    generator=lambda cfg, size: BiharmonicInpainter(split_into_regions=cfg.split_into_regions),
)
