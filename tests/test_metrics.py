"""fgi.evaluation.metrics against independent numpy / scikit-image computations on small random images."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_fid import inception as fid_inception
from skimage.metrics import structural_similarity

from fgi.errors import UserError
from fgi.files import save_mask, save_png
from fgi.evaluation.metrics import FID, METRIC_COLUMNS, image_metrics, per_image_table

SIZE = 24
BORDER = 5  # the SSIM window radius: int(3.5 * 1.5 + 0.5)
SSIM_SETTINGS = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _pair(seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A truth, a prediction that differs from it in places, and full/foreground/hole regions."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, (size, size, 3))
    prediction = np.clip(truth + noise * (rng.random((size, size, 1)) < 0.5), 0, 255).astype(np.uint8)
    regions = {
        "full": np.ones((size, size), dtype=bool),
        "foreground": rng.random((size, size)) < 0.6,
        "hole": rng.random((size, size)) < 0.3,
    }
    return prediction, truth, regions


def _channelwise_ssim_map(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """The SSIM map computed channel by channel on 2-D images, averaged over channels: (H, W)."""
    maps = [structural_similarity(truth[..., c], prediction[..., c], full=True, **SSIM_SETTINGS)[1]
            for c in range(3)]
    return np.mean(maps, axis=0)


@pytest.mark.parametrize("seed", range(4))
def test_mse_mae_psnr_per_region_match_numpy(seed):
    prediction, truth, regions = _pair(seed)
    values = image_metrics(prediction, truth, regions)
    for name, region in regions.items():
        diff = prediction[region].astype(np.float64) - truth[region].astype(np.float64)  # (K, 3)
        mse = np.mean(diff**2)
        assert values[f"{name}/mse"] == pytest.approx(mse, rel=1e-12)
        assert values[f"{name}/mae"] == pytest.approx(np.mean(np.abs(diff)), rel=1e-12)
        assert values[f"{name}/psnr"] == pytest.approx(10 * np.log10(255.0**2 / mse), rel=1e-12)


def test_psnr_by_hand():
    truth = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    prediction = truth.copy()
    prediction[0, 0] = 255  # one pixel off by 255 in all channels
    values = image_metrics(prediction, truth, {"full": np.ones((SIZE, SIZE), dtype=bool)})
    assert values["full/mse"] == 255.0**2 / SIZE**2
    assert values["full/mae"] == 255.0 / SIZE**2
    assert values["full/psnr"] == pytest.approx(10 * np.log10(SIZE**2))


@pytest.mark.parametrize("seed", range(4))
def test_ssim_full_is_skimage_mean_ssim_and_regions_average_the_map(seed):
    prediction, truth, regions = _pair(seed)
    values = image_metrics(prediction, truth, regions)
    mean_ssim = structural_similarity(truth, prediction, channel_axis=-1, full=False, **SSIM_SETTINGS)
    assert values["full/ssim"] == pytest.approx(mean_ssim, rel=1e-12)

    ssim_map = _channelwise_ssim_map(truth, prediction)  # (H, W)
    interior = np.zeros((SIZE, SIZE), dtype=bool)
    interior[BORDER:-BORDER, BORDER:-BORDER] = True
    for name in ("foreground", "hole"):
        expected = ssim_map[regions[name] & interior].mean()
        assert values[f"{name}/ssim"] == pytest.approx(expected, rel=1e-12)


def test_identical_images_score_perfectly_without_warnings():
    _, truth, regions = _pair(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = image_metrics(truth.copy(), truth, regions)
    for name in regions:
        assert values[f"{name}/mse"] == 0.0
        assert values[f"{name}/mae"] == 0.0
        assert values[f"{name}/psnr"] == np.inf
        assert values[f"{name}/ssim"] == pytest.approx(1.0, abs=1e-12)


def test_empty_region_gives_nan_and_leaves_other_regions_valid():
    prediction, truth, regions = _pair(3)
    regions["foreground"] = np.zeros((SIZE, SIZE), dtype=bool)
    border_only = np.zeros((SIZE, SIZE), dtype=bool)
    border_only[:2] = True  # a region the SSIM border crop leaves empty
    regions["edge"] = border_only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = image_metrics(prediction, truth, regions)
    assert all(np.isnan(values[f"foreground/{m}"]) for m in ("mse", "mae", "psnr", "ssim"))
    assert all(np.isfinite(values[f"{name}/{m}"]) for name in ("full", "hole") for m in ("mse", "mae", "psnr", "ssim"))
    assert np.isfinite(values["edge/mse"]) and np.isnan(values["edge/ssim"])


# ---------------------------------------------------------------- per-image table from PNGs


def _write_jobs(root: Path, n_images: int = 3) -> tuple[list[dict], dict[tuple[str, str], dict]]:
    jobs, expected = [], {}
    for index in range(n_images):
        image_id = f"{index:05d}"
        prediction_a, truth, regions = _pair(10 + index)
        prediction_b, _, _ = _pair(20 + index)
        save_png(root / "truth" / f"{image_id}.png", truth)
        save_mask(root / "fg" / f"{image_id}.png", regions["foreground"])
        save_mask(root / "hole" / f"{image_id}.png", regions["hole"])
        for method, prediction in (("ours", prediction_a), ("ce", prediction_b)):
            save_png(root / method / f"{image_id}.png", prediction)
            jobs.append({"method": method, "image_id": image_id, "bin": "(0.1,0.2]", "hole_ratio": 0.1 + index / 100,
                         "prediction": root / method / f"{image_id}.png", "truth": root / "truth" / f"{image_id}.png",
                         "foreground": root / "fg" / f"{image_id}.png", "hole": root / "hole" / f"{image_id}.png"})
            expected[method, image_id] = image_metrics(prediction, truth, regions)
    return jobs, expected


def test_per_image_table_rows_from_pngs_and_same_with_two_workers(tmp_path):
    jobs, expected = _write_jobs(tmp_path)
    table = per_image_table(jobs, workers=1)
    assert list(table.columns) == ["method", "image_id", "bin", "hole_ratio", *METRIC_COLUMNS]
    assert len(METRIC_COLUMNS) == 12 and METRIC_COLUMNS[:4] == ["full/mse", "full/mae", "full/psnr", "full/ssim"]
    assert list(zip(table["method"], table["image_id"])) == [(j["method"], j["image_id"]) for j in jobs]
    for _, row in table.iterrows():
        want = expected[row["method"], row["image_id"]]
        assert [row[c] for c in METRIC_COLUMNS] == pytest.approx([want[c] for c in METRIC_COLUMNS], rel=1e-12)
    pd.testing.assert_frame_equal(per_image_table(jobs, workers=2), table)


@pytest.mark.parametrize("workers", [1, 2])
def test_mis_sized_prediction_is_a_user_error_naming_it(tmp_path, workers):
    jobs, _ = _write_jobs(tmp_path, n_images=2)
    bad = tmp_path / "ce" / "00001.png"
    save_png(bad, np.zeros((SIZE + 8, SIZE, 3), dtype=np.uint8))
    with pytest.raises(UserError, match=rf"{bad}: {SIZE}x{SIZE + 8} but .* is {SIZE}x{SIZE}"):
        per_image_table(jobs, workers=workers)


# ---------------------------------------------------------------- FID


class TinyExtractor(torch.nn.Module):
    """A seeded conv net with global average pooling: (N, 3, H, W) -> (N, 8, 1, 1); counts its calls.

    Tanh rather than ReLU: a channel that is dead on every image would make the
    feature covariance singular.
    """

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.Tanh(),
                                       torch.nn.AdaptiveAvgPool2d(1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def _image_set(n: int = 48, size: int = 16, seed: int = 0) -> np.ndarray:
    """Images with a per-image colour and contrast, so features vary between images."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, (n, 1, 1, 3))
    texture = rng.normal(0, 1, (n, size, size, 3)) * rng.uniform(5, 40, (n, 1, 1, 1))
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def test_fid_statistics_match_direct_features_and_batching():
    images = _image_set()
    extractor = TinyExtractor()
    with torch.no_grad():
        features = extractor(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).flatten(1).double().numpy()
    mu, sigma = FID(extractor, batch_size=7).statistics(images)
    assert mu.dtype == np.float64 and mu.shape == (8,) and sigma.shape == (8, 8)
    np.testing.assert_allclose(mu, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-10)


def test_fid_is_zero_on_itself_and_grows_with_noise():
    images = _image_set()
    fid = FID(TinyExtractor())
    reference = fid.statistics(images)
    scale = np.trace(reference[1])
    assert abs(fid.distance(reference, reference)) < 1e-6 * scale
    noise = np.random.default_rng(1).normal(0, 1, images.shape)
    distances = [fid.distance(reference, fid.statistics(np.clip(images + strength * noise, 0, 255).astype(np.uint8)))
                 for strength in (5, 15, 40, 80)]
    assert distances[0] > 1e-6 * scale
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_region_images_zero_outside_the_region():
    images = _image_set(n=2, size=4)
    regions = np.zeros((2, 4, 4), dtype=bool)
    regions[0, 1:3, 1:3] = True
    regions[1, 0, :] = True
    masked = FID.region_images(images, regions)
    assert masked.dtype == np.uint8
    np.testing.assert_array_equal(masked[regions], images[regions])
    assert not masked[~regions].any()


def test_cached_statistics_reuses_matching_key_and_recomputes_otherwise(tmp_path):
    images = _image_set()
    extractor = TinyExtractor()
    fid = FID(extractor, batch_size=16)  # 48 images: 3 calls per computation
    cache = tmp_path / "stats" / "truth.npz"
    first = fid.cached_statistics(images, cache, key="ids=a|region=full|sha=1")
    assert extractor.calls == 3 and cache.is_file()
    again = fid.cached_statistics(images, cache, key="ids=a|region=full|sha=1")
    assert extractor.calls == 3
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    other = fid.cached_statistics(images[:32], cache, key="ids=b|region=full|sha=1")
    assert extractor.calls == 5
    assert not np.array_equal(other[0], first[0])
    cache.write_bytes(b"not an npz")
    fid.cached_statistics(images, cache, key="ids=b|region=full|sha=1")
    assert extractor.calls == 8
    assert [p.name for p in cache.parent.iterdir()] == ["truth.npz"]  # no temp files left


def _random_fid_inception_state_dict() -> dict:
    """A randomly initialised network with the FID Inception's architecture (pytorch-fid's blocks)."""
    torch.manual_seed(0)
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    return net.state_dict()


def test_from_weights_none_means_no_fid():
    assert FID.from_weights(None) is None


def test_from_weights_loads_the_file_offline_and_gives_2048_features(tmp_path, monkeypatch):
    # The slowest test here (~5 s on 2 CPU cores): two 64x64 images, resized to 299x299 by pytorch-fid.
    def no_network(*args, **kwargs):
        raise AssertionError("FID.from_weights tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    state_dict = _random_fid_inception_state_dict()
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state_dict, path)
    fid = FID.from_weights(path)
    first_conv = fid.extractor.blocks[0][0].conv.weight
    torch.testing.assert_close(first_conv, state_dict["Conv2d_1a_3x3.conv.weight"], rtol=0, atol=0)
    mu, sigma = fid.statistics(_image_set(n=2, size=64))
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048) and np.isfinite(mu).all()


def test_from_weights_rejects_a_file_that_is_not_the_fid_inception(tmp_path):
    path = tmp_path / "inception.pth"
    torch.save(TinyExtractor().state_dict(), path)
    with pytest.raises(UserError, match="not the FID Inception weights"):
        FID.from_weights(path)
    with pytest.raises(UserError, match="not found"):
        FID.from_weights(tmp_path / "missing.pth")
