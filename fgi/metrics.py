"""Per-image metrics over regions, on uint8 images as saved (DESIGN §7).

MSE and MAE are on the 0-255 scale over the region's pixels × channels, in
float64; PSNR = 10·log10(255² / MSE) per image (infinite when MSE is 0).
"""

from __future__ import annotations

import numpy as np


def region_mse(prediction: np.ndarray, truth: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 ×2 and (N, H, W) bool -> (N,) MSE over the region (NaN where it is empty)."""
    diff = prediction.astype(np.float64) - truth.astype(np.float64)  # (N, H, W, 3)
    weight = region[..., None].astype(np.float64)  # (N, H, W, 1)
    count = weight.sum(axis=(1, 2, 3)) * diff.shape[-1]  # pixels × channels
    with np.errstate(invalid="ignore", divide="ignore"):
        return (diff**2 * weight).sum(axis=(1, 2, 3)) / count


def psnr(mse: np.ndarray) -> np.ndarray:
    """10·log10(255² / MSE); +inf for a perfect prediction, NaN for an empty region."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(255.0**2 / np.asarray(mse, dtype=np.float64))
