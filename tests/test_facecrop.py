"""Face-aware crops on real photos: scikit-image's astronaut (a face) and a gradient (none)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from fgi.errors import UserError
from fgi.apps.facecrop import FACE_SCALE, choose_crop, find_face, inpaint_cropped


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()  # uint8 (512, 512, 3), Eileen Collins's face near the top left


def gradient(height: int = 300, width: int = 400) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x / 2, y / 2, (x + y) / 4], -1).astype(np.uint8)  # (H, W, 3), no face


def hole_at(shape, rows: slice, cols: slice) -> np.ndarray:
    hole = np.zeros(shape[:2], dtype=bool)
    hole[rows, cols] = True
    return hole


def test_the_astronauts_face_is_found_and_framed(astronaut):
    x, y, w, h = find_face(astronaut)
    assert 160 < x < 200 and 50 < y < 90 and 80 < w < 110 and h == w  # her face, not the flag or the suit
    crop = choose_crop(astronaut, hole_at(astronaut.shape, slice(120, 130), slice(200, 260)))
    assert crop.strategy == "face"
    assert crop.side == round(FACE_SCALE * w)
    left, top, right, bottom = crop.box
    assert left <= x and top <= y and right >= x + w and bottom >= y + h  # the whole face is in the square


def test_the_face_square_grows_to_hold_the_hole(astronaut):
    hole = hole_at(astronaut.shape, slice(100, 110), slice(200, 420))  # reaches far right of the face
    crop = choose_crop(astronaut, hole)
    left, top, right, bottom = crop.box
    assert crop.strategy == "face" and right - left == bottom - top
    assert left <= 200 and right >= 420 and top <= 100 and bottom >= 110


def test_no_face_crops_around_the_hole_and_says_so():
    photo = gradient()
    assert find_face(photo) is None
    crop = choose_crop(photo, hole_at(photo.shape, slice(100, 120), slice(150, 200)))
    assert (crop.strategy, crop.box) == ("hole", (125, 60, 225, 160))  # the 50 px hole, twice its side
    assert crop.describe().startswith("no face found")


def test_a_hole_wider_than_any_square_inpaints_the_whole_image():
    photo = gradient()
    crop = choose_crop(photo, hole_at(photo.shape, slice(0, 300), slice(10, 390)))
    assert crop.strategy == "whole image" and crop.box == (0, 0, 400, 300)
    assert "too large" in crop.describe()


def test_only_the_holes_pixels_change_and_only_inside_the_square(astronaut):
    hole = hole_at(astronaut.shape, slice(120, 130), slice(200, 260))
    seen = []

    def inpaint(crop: Image.Image, crop_hole: np.ndarray) -> Image.Image:
        seen.append((crop.size, crop_hole.copy()))
        pixels = np.asarray(crop).copy()
        pixels[crop_hole] = 7
        return Image.fromarray(pixels)

    result, crop = inpaint_cropped(inpaint, Image.fromarray(astronaut), hole)
    result = np.asarray(result)
    assert seen[0][0] == (crop.side, crop.side) and seen[0][1].sum() == hole.sum()
    assert (result[~hole] == astronaut[~hole]).all()  # the photo's own bytes
    assert (result[hole] == 7).all()


def test_face_crop_off_inpaints_the_whole_image_and_a_wrong_mask_is_refused(astronaut):
    hole = hole_at(astronaut.shape, slice(120, 130), slice(200, 260))
    sizes = []
    _, crop = inpaint_cropped(lambda image, _: sizes.append(image.size) or image, Image.fromarray(astronaut),
                              hole, face_crop=False)
    assert sizes == [(512, 512)] and crop.strategy == "whole image"
    with pytest.raises(UserError, match="the mask is 10x10 but the image is 512x512"):
        inpaint_cropped(lambda image, _: image, Image.fromarray(astronaut), np.ones((10, 10), bool))


def test_fgi_inpaint_face_crop_writes_the_photo_and_says_which_strategy_ran(astronaut, tmp_path, capsys):
    from fgi.apps.inpaint import inpaint_paths

    hole = hole_at(astronaut.shape, slice(95, 105), slice(190, 260))
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "hole.png")
    seen = []

    def generator(masked_image, hole_tensor):  # a stand-in model: grey everywhere, records its input
        seen.append(masked_image.shape)
        return masked_image * 0

    written = inpaint_paths(generator, 32, tmp_path / "astronaut.png", tmp_path / "hole.png",
                            tmp_path / "filled.png", face_scale=FACE_SCALE)
    result = np.asarray(Image.open(written[0]).convert("RGB"))
    assert seen == [(1, 3, 32, 32)]
    assert (result[~hole] == astronaut[~hole]).all() and (result[hole] == 128).all()
    assert "astronaut.png: face found at (" in capsys.readouterr().out
