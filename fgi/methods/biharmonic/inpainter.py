"""Biharmonic inpainting: the non-learned reference row of the comparison.

Damelin & Hoang, "On Surface Completion and Image Inpainting by Biharmonic
Functions", International Journal of Mathematics and Mathematical Sciences,
2018. The hole is filled with the solution of the biharmonic equation
Δ²u = 0 whose values match the known pixels around it; scikit-image's
`inpaint_biharmonic` discretises it and solves one sparse linear system per
channel (per hole with `split_into_regions`).

There is nothing to train. Outputs are composited like every model's: known
pixels are the input's bytes, only hole pixels come from the solver.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from fgi.errors import UserError

# A hole covering the whole image leaves no boundary values to solve from.
FULL_HOLE_FILL = 128


class BiharmonicInpainter:
    """scikit-image biharmonic inpainting on uint8 RGB images, composited."""

    def __init__(self, split_into_regions: bool = True, workers: int = 1):
        if workers < 0:
            raise UserError(f"workers={workers}: must be >= 0 (0 = every core, 1 = no pool)")
        self.split_into_regions = split_into_regions
        self.workers = workers

    def inpaint(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """image uint8 (H, W, 3), hole bool (H, W) with True = hole -> uint8 (H, W, 3).

        An empty hole returns a copy; a hole covering every pixel has nothing
        to solve from and is filled with mid-grey (`FULL_HOLE_FILL`).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UserError(f"image has shape {image.shape} and dtype {image.dtype}: "
                            "pass uint8 RGB of shape (H, W, 3)")
        if hole.shape != image.shape[:2]:
            raise UserError(f"hole has shape {hole.shape} but image has shape {image.shape}: "
                            "pass a hole mask of shape (H, W) matching the image")
        hole = hole.astype(bool, copy=False)
        composite = image.copy()
        if not hole.any():
            return composite
        if hole.all():
            composite[:] = FULL_HOLE_FILL
            return composite
        filled = inpaint_biharmonic(image / 255.0, hole, channel_axis=-1,
                                    split_into_regions=self.split_into_regions)  # (H, W, 3) in [0, 1]
        filled_uint8 = np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
        composite[hole] = filled_uint8[hole]
        return composite

    def inpaint_batch(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """images uint8 (N, H, W, 3), holes bool (N, H, W) -> uint8 (N, H, W, 3), input order."""
        if images.ndim != 4 or holes.shape != images.shape[:3]:
            raise UserError(f"holes have shape {holes.shape} but images have shape {images.shape}: "
                            "pass images (N, H, W, 3) and holes (N, H, W)")
        workers = self.workers or _available_cores()
        workers = min(workers, len(images))
        if workers <= 1:
            outputs = [self.inpaint(image, hole) for image, hole in zip(images, holes)]
        else:
            # Each image is an independent sparse solve; processes sidestep the GIL.
            with multiprocessing.get_context().Pool(workers) as pool:
                outputs = pool.starmap(self.inpaint, zip(images, holes))
        return np.stack(outputs) if outputs else images.copy()

    def __call__(self, masked_image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """masked_image (N, 3, H, W) in [-1, 1], hole (N, 1, H, W) 1 = hole -> (N, 3, H, W) in [-1, 1].

        Works through uint8 exactly as a saved PNG would, so predictions match
        what `inpaint` writes; the result follows the input's device and dtype.
        """
        if (masked_image.ndim != 4 or masked_image.shape[1] != 3
                or hole.shape != (masked_image.shape[0], 1, *masked_image.shape[2:])):
            raise UserError(f"masked_image has shape {tuple(masked_image.shape)} and hole "
                            f"{tuple(hole.shape)}: pass (N, 3, H, W) and (N, 1, H, W)")
        pixels = ((masked_image.detach() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        images = pixels.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        holes = (hole.detach()[:, 0] > 0.5).cpu().numpy()  # (N, H, W)
        composite = torch.from_numpy(self.inpaint_batch(images, holes))  # (N, H, W, 3) uint8
        composite = composite.permute(0, 3, 1, 2).to(device=masked_image.device, dtype=masked_image.dtype)
        return composite / 127.5 - 1  # (N, 3, H, W)


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
