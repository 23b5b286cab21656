"""Biharmonic reference inpainter: compositing, exactness on ramps, agreement with scikit-image."""

import numpy as np
import pytest
import torch
from skimage.restoration import inpaint_biharmonic

from fgi.errors import UserError
from fgi.methods.biharmonic.inpainter import BiharmonicInpainter


def noisy_image(seed: int, size: int = 16) -> np.ndarray:
    """A smooth gradient plus noise, uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([40 + 8 * x, 200 - 6 * y, 100 + 3 * (x + y)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def irregular_hole(seed: int, size: int = 16) -> np.ndarray:
    """Three random discs (two separate regions at most sizes), bool (size, size)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    hole = np.zeros((size, size), bool)
    for cy, cx, r in zip(rng.integers(2, size - 2, 3), rng.integers(2, size - 2, 3), rng.uniform(1.5, 3.5, 3)):
        hole |= (y - cy) ** 2 + (x - cx) ** 2 <= r**2
    return hole


def test_known_pixels_are_bit_identical_and_hole_is_filled():
    image = noisy_image(0)
    hole = irregular_hole(1)
    masked = image.copy()
    masked[hole] = 0  # a black hole, as a masked input would be

    out = BiharmonicInpainter().inpaint(masked, hole)

    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~hole], image[~hole])
    # The fill lies within each channel's known range (40.., never the black 0s).
    assert (out[hole] != 0).all()
    assert (out[hole] >= image[~hole].min(axis=0)).all()
    assert (out[hole] <= image[~hole].max(axis=0)).all()
    # The solver reads only known pixels: what was in the hole does not matter.
    np.testing.assert_array_equal(BiharmonicInpainter().inpaint(image, hole), out)


@pytest.mark.parametrize("split_into_regions", [True, False])
def test_linear_ramp_is_reproduced(split_into_regions):
    # A biharmonic fill reproduces any linear function exactly.
    size = 24
    y, x = np.mgrid[0:size, 0:size]
    ramp = np.stack([20 + 5 * x + 3 * y, 230 - 4 * x - 2 * y, 60 + 2 * x + 6 * y], axis=-1).astype(np.uint8)
    hole = np.zeros((size, size), bool)
    hole[8:15, 9:16] = True
    hole[3:5, 18:21] = True
    masked = ramp.copy()
    masked[hole] = 255

    out = BiharmonicInpainter(split_into_regions=split_into_regions).inpaint(masked, hole)

    error = np.abs(out.astype(int) - ramp.astype(int))
    assert error.max() <= 2
    assert error[~hole].max() == 0


@pytest.mark.parametrize("split_into_regions", [True, False])
def test_matches_scikit_image_called_directly(split_into_regions):
    image = noisy_image(2)
    hole = irregular_hole(3)

    out = BiharmonicInpainter(split_into_regions=split_into_regions).inpaint(image, hole)

    # skimage converts the uint8 input to [0, 1] floats itself.
    reference = inpaint_biharmonic(image, hole, channel_axis=-1, split_into_regions=split_into_regions)
    expected = image.copy()
    expected[hole] = np.clip(np.round(reference[hole] * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_empty_hole_is_a_copy_and_full_hole_is_grey():
    image = noisy_image(4)
    inpainter = BiharmonicInpainter()

    empty = inpainter.inpaint(image, np.zeros((16, 16), bool))
    np.testing.assert_array_equal(empty, image)
    assert empty is not image

    full = inpainter.inpaint(image, np.ones((16, 16), bool))
    assert full.dtype == np.uint8
    assert (full == 128).all()


def test_batch_with_two_workers_equals_the_loop():
    images = np.stack([noisy_image(seed) for seed in range(3)])
    holes = np.stack([irregular_hole(seed + 10) for seed in range(3)])

    pooled = BiharmonicInpainter(workers=2).inpaint_batch(images, holes)
    looped = BiharmonicInpainter(workers=1).inpaint_batch(images, holes)

    assert pooled.shape == (3, 16, 16, 3) and pooled.dtype == np.uint8
    np.testing.assert_array_equal(pooled, looped)
    for i in range(3):  # input order is kept
        np.testing.assert_array_equal(pooled[i], BiharmonicInpainter().inpaint(images[i], holes[i]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_call_round_trips_through_uint8(dtype):
    images = np.stack([noisy_image(5), noisy_image(6)])  # (2, 16, 16, 3) uint8
    holes = np.stack([irregular_hole(7), irregular_hole(8)])  # (2, 16, 16)
    image = torch.from_numpy(images).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1  # (2, 3, 16, 16)
    hole = torch.from_numpy(holes).to(dtype)[:, None]  # (2, 1, 16, 16)

    out = BiharmonicInpainter()(image * (1 - hole), hole)

    assert out.shape == (2, 3, 16, 16) and out.dtype == dtype and out.device == image.device
    assert out.min() >= -1 and out.max() <= 1
    out_uint8 = ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(out_uint8[~holes], images[~holes])
    np.testing.assert_array_equal(out_uint8, BiharmonicInpainter().inpaint_batch(images, holes))


def test_mismatched_shapes_raise_user_error():
    inpainter = BiharmonicInpainter()
    with pytest.raises(UserError, match=r"\(12, 16\).*\(16, 16, 3\)"):
        inpainter.inpaint(noisy_image(0), np.zeros((12, 16), bool))
    with pytest.raises(UserError, match="holes"):
        inpainter.inpaint_batch(noisy_image(0)[None], np.zeros((2, 16, 16), bool))
    with pytest.raises(UserError, match="workers"):
        BiharmonicInpainter(workers=-1)
