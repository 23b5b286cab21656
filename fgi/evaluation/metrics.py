"""Per-image metrics over regions and FID, on uint8 images as saved (docs/design.md §7).

Per image, in float64, for each region (full, foreground M_F, hole):

* MSE and MAE on the 0-255 scale over the region's pixels × channels;
* PSNR = 10·log10(255² / MSE) (+inf when MSE is 0);
* SSIM: one scikit-image SSIM map per image (Wang et al. 2004 settings:
  Gaussian window, sigma 1.5, population covariances), averaged over the three
  channels, then over the region's pixels that lie at least 5 px (the window's
  radius) from the image border. scikit-image drops that border from its own
  mean SSIM because the filter sees reflected padding there; dropping it here
  too makes the `full` value exactly scikit-image's mean SSIM, the number
  papers report. MSE, MAE and PSNR use every pixel of the region.

An empty region gives NaN for its four metrics (SSIM also when the region lies
entirely inside the border); averages over images should skip NaN. So does the
foreground of a run without foreground masks (a job's `foreground` None): the
region is unknown, and measured as empty.

FID (Heusel et al. 2017) uses pytorch-fid's Inception pool3 features (2048-d).
Its region variant sets pixels outside the region to 0 in both sets first.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import unittest.mock
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity

from fgi import files, progress
from fgi.errors import UserError

REGIONS = ("full", "foreground", "hole")
METRICS = ("mse", "mae", "psnr", "ssim")
METRIC_COLUMNS = [f"{region}/{metric}" for region in REGIONS for metric in METRICS]
JOB_COLUMNS = ["method", "image_id", "bin", "hole_ratio"]

SSIM_SIGMA = 1.5
# scikit-image's window radius for Gaussian weights: truncate 3.5 × sigma 1.5, rounded (= 5).
SSIM_BORDER = int(3.5 * SSIM_SIGMA + 0.5)


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


def _region_mean(values: np.ndarray, region: np.ndarray) -> float:
    """Mean of (H, W) `values` over a bool (H, W) region; NaN (no warning) when it is empty."""
    return float(values[region].mean()) if region.any() else float("nan")


def image_metrics(prediction: np.ndarray, truth: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
    """uint8 (H, W, 3) ×2 and {name: bool (H, W)} -> {"<name>/mse|mae|psnr|ssim": value}."""
    if prediction.shape != truth.shape or prediction.ndim != 3 or prediction.shape[-1] != 3:
        raise ValueError(f"image_metrics wants two (H, W, 3) images, got {prediction.shape} and {truth.shape}")
    diff = prediction.astype(np.float64) - truth.astype(np.float64)  # (H, W, 3)
    # Every pixel has 3 channels, so the mean over pixels × channels is the mean over
    # pixels of the per-pixel channel mean.
    squared = (diff**2).mean(axis=-1)  # (H, W)
    absolute = np.abs(diff).mean(axis=-1)  # (H, W)
    _, ssim_map = structural_similarity(
        truth, prediction, data_range=255, channel_axis=-1, gaussian_weights=True,
        sigma=SSIM_SIGMA, use_sample_covariance=False, full=True,
    )  # (H, W, 3)
    ssim_map = ssim_map.mean(axis=-1)  # (H, W)
    inside = np.zeros(ssim_map.shape, dtype=bool)
    inside[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER] = True

    values = {}
    for name, region in regions.items():
        mse = _region_mean(squared, region)
        values[f"{name}/mse"] = mse
        values[f"{name}/mae"] = _region_mean(absolute, region)
        values[f"{name}/psnr"] = float(psnr(mse))
        values[f"{name}/ssim"] = _region_mean(ssim_map, region & inside)
    return values


def _check_size(path: Path, array: np.ndarray, truth_path: Path, truth: np.ndarray) -> None:
    if array.shape[:2] != truth.shape[:2]:
        (h, w), (th, tw) = array.shape[:2], truth.shape[:2]
        raise UserError(
            f"{path}: {w}x{h} but its ground truth {truth_path} is {tw}x{th}; "
            "rerun the stage that wrote it with the same data.size as the ground truth"
        )


def _job_row(job: dict) -> dict:
    """Load one job's PNGs and compute its row of the per-image table."""
    truth = files.load_image_rgb(job["truth"])  # (H, W, 3)
    prediction = files.load_image_rgb(job["prediction"])  # (H, W, 3)
    _check_size(Path(job["prediction"]), prediction, Path(job["truth"]), truth)
    regions = {"full": np.ones(truth.shape[:2], dtype=bool)}
    for name in ("foreground", "hole"):
        if job[name] is None:  # no foreground masks in this run: nothing of the region is known
            regions[name] = np.zeros(truth.shape[:2], dtype=bool)
            continue
        regions[name] = files.load_mask(job[name])  # (H, W) bool
        _check_size(Path(job[name]), regions[name], Path(job["truth"]), truth)
    row = {column: job[column] for column in JOB_COLUMNS}
    row.update(image_metrics(prediction, truth, regions))
    return row


def per_image_table(jobs: list[dict], workers: int = 0) -> pd.DataFrame:
    """One row per job (method, image_id, bin, hole_ratio, then METRIC_COLUMNS), in job order.

    Each job is {"method", "image_id", "bin", "hole_ratio", "prediction", "truth",
    "foreground", "hole"}, the last four PNG paths. `workers` 0 uses every core,
    1 computes in this process.
    """
    workers = workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(jobs)))
    bar = progress.bar(total=len(jobs), desc="metrics", unit="img")
    with bar:
        if workers == 1:
            rows = []
            for job in jobs:
                rows.append(_job_row(job))
                bar.update()
        else:
            # A few chunks per worker: enough to balance the load, few enough that
            # pickling jobs and rows costs little next to decoding and SSIM.
            chunksize = max(1, len(jobs) // (4 * workers))
            with multiprocessing.get_context().Pool(workers) as pool:
                rows = []
                for row in pool.imap(_job_row, jobs, chunksize=chunksize):
                    rows.append(row)
                    bar.update()
    return pd.DataFrame(rows, columns=JOB_COLUMNS + METRIC_COLUMNS)


class FID:
    """Fréchet Inception Distance between two image sets (Heusel et al. 2017), via pytorch-fid."""

    def __init__(self, feature_extractor: torch.nn.Module, device: torch.device | str = "cpu", batch_size: int = 50):
        self.device = torch.device(device)
        self.extractor = feature_extractor.to(self.device).eval()
        self.batch_size = batch_size

    @classmethod
    def from_weights(cls, weights_path: Path | None, device: torch.device | str = "cpu",
                     batch_size: int = 50) -> FID | None:
        """pytorch-fid's Inception pool3 (2048-d) with the FID weights read from `weights_path`.

        None when `weights_path` is None: without the real weights FID is "n/a",
        never a number from random weights. pytorch-fid has no way to take a local
        file: `InceptionV3` builds its network through `fid_inception_v3()`, which
        fetches `FID_WEIGHTS_URL` with `load_state_dict_from_url`. That one call is
        answered with the state dict read here (weights_only), so the architecture
        and the strict `load_state_dict` are pytorch-fid's own and nothing touches
        the network.
        """
        if weights_path is None:
            return None
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise UserError(f"{weights_path}: FID Inception weights not found; rerun the weights stage")
        # Imported here: pytorch-fid pulls in torchvision, ~2 s that every training process would pay.
        from pytorch_fid import inception as fid_inception
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)

        def local_weights(url: str, *args, **kwargs) -> dict:
            if url != fid_inception.FID_WEIGHTS_URL:
                raise RuntimeError(f"pytorch-fid asked for {url}, expected only the FID Inception weights")
            return state_dict

        try:
            with unittest.mock.patch.object(fid_inception, "load_state_dict_from_url", local_weights):
                model = fid_inception.InceptionV3(
                    [fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
                    resize_input=True, normalize_input=True, use_fid_inception=True,
                )
        except RuntimeError as err:  # load_state_dict's missing/unexpected keys or shape mismatches
            raise UserError(f"{weights_path}: not the FID Inception weights ({str(err)[:200]}); "
                            "delete it and rerun the weights stage") from err
        return cls(model, device=device, batch_size=batch_size)

    @torch.no_grad()
    def _features(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float64 (N, D)."""
        features = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size]))
            batch = batch.to(self.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
            out = self.extractor(batch)
            if isinstance(out, (list, tuple)):  # pytorch-fid's InceptionV3 returns one map per block
                out = out[0]
            features.append(out.reshape(out.shape[0], -1).double().cpu().numpy())  # (B, D)
        return np.concatenate(features)  # (N, D)

    def statistics(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, 3) -> (mu (D,), sigma (D, D)) of the features, float64."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"FID.statistics wants uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(images) < 2:
            raise UserError(f"FID needs at least 2 images per set, got {len(images)}; use a larger test split")
        features = self._features(images)  # (N, D)
        return features.mean(axis=0), np.cov(features, rowvar=False)

    @staticmethod
    def distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
        """Fréchet distance between two (mu, sigma) pairs."""
        from pytorch_fid.fid_score import calculate_frechet_distance  # noqa: PLC0415 - torchvision, as above

        return float(calculate_frechet_distance(stats_a[0], stats_a[1], stats_b[0], stats_b[1]))

    @staticmethod
    def region_images(images: np.ndarray, regions: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) and bool (N, H, W) -> the images with pixels outside the region set to 0."""
        return np.where(regions[..., None], images, 0).astype(np.uint8)

    def cached_statistics(self, images: np.ndarray, cache_file: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
        """`statistics(images)`, read from `cache_file` when it was written under the same `key`.

        The key must name everything the statistics depend on (image ids, region,
        weights' sha256); any other key, or an unreadable file, recomputes and rewrites.
        """
        cache_file = Path(cache_file)
        try:
            with np.load(cache_file, allow_pickle=False) as cached:
                if str(cached["key"]) == key:
                    return cached["mu"], cached["sigma"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError):
            pass  # missing, stale or corrupt: recompute
        mu, sigma = self.statistics(images)
        with files.atomic_path(cache_file) as tmp, open(tmp, "wb") as out:
            np.savez(out, mu=mu, sigma=sigma, key=np.array(key))
        return mu, sigma
