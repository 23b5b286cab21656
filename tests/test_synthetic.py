"""The synthetic CelebAMask-HQ and QD-IMD stand-ins: layout, determinism, and
whether the masks label the pixels they claim to."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from fgi.data.doodles import render_doodle, render_qd_imd
from fgi.data.synthetic import ANNO_DIR, IMAGES_DIR, PARTS, render_celebamask_hq
from fgi.errors import UserError

FACES = 4
ALWAYS_VISIBLE = {"skin", "nose", "l_eye", "r_eye", "u_lip", "l_lip", "neck", "cloth"}
RATIO_BINS = [0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _parts(root: Path, k: int) -> dict[str, np.ndarray]:
    """{part: (512, 512) bool} for face k, as the preparation code reads them."""
    parts = {}
    for part in PARTS:
        path = root / ANNO_DIR / "0" / f"{k:05d}_{part}.png"
        if path.exists():
            parts[part] = np.asarray(Image.open(path)) == 255
    return parts


def _photo(root: Path, k: int) -> np.ndarray:
    """Face k at the annotation resolution, (512, 512, 3) float."""
    with Image.open(root / IMAGES_DIR / f"{k}.jpg") as image:
        return np.asarray(image.reduce(2), dtype=float)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celebamask_hq")
    render_celebamask_hq(root, FACES, seed=0, workers=1)
    return root


@pytest.fixture(scope="module")
def doodles(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qd")
    render_qd_imd(root, train=60, test=3, seed=0, workers=1)
    return root


# --------------------------------------------------------------------------- faces


def test_face_layout_names_sizes_and_modes(faces):
    names = set(_files(faces))
    photos = {n for n in names if n.startswith(IMAGES_DIR + "/")}
    assert photos == {f"{IMAGES_DIR}/{k}.jpg" for k in range(FACES)}  # no zero padding, like the real set
    for name in photos:
        with Image.open(faces / name) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (1024, 1024))
    pattern = re.compile(rf"{ANNO_DIR}/0/(\d{{5}})_({'|'.join(PARTS)})\.png")
    annotations = names - photos
    assert all(pattern.fullmatch(n) for n in annotations), sorted(annotations)  # also: no temp files left
    for k in range(FACES):
        assert ALWAYS_VISIBLE <= set(_parts(faces, k))
    for name in annotations:
        with Image.open(faces / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (512, 512))
            values = np.unique(np.asarray(image))
        assert set(values.tolist()) <= {0, 255}
        assert 255 in values, f"{name} exists but the part is not visible"


def test_faces_are_deterministic_and_stale_parts_are_removed(faces, tmp_path):
    render_celebamask_hq(tmp_path, FACES, seed=1, workers=2)
    other = _files(tmp_path)
    expected = _files(faces)
    for k in range(FACES):
        name = f"{IMAGES_DIR}/{k}.jpg"
        assert other[name] != expected[name]
    # The same seed over another seed's files, in two processes: the same bytes, and
    # no part left over from the other faces.
    render_celebamask_hq(tmp_path, FACES, seed=0, workers=2)
    assert _files(tmp_path) == expected


def test_skin_has_holes_at_eyes_brows_and_mouth(faces):
    for k in range(FACES):
        parts = _parts(faces, k)
        skin = parts["skin"]
        head = ndimage.binary_fill_holes(skin | parts.get("hair", False))
        for name in ("l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip"):
            if name in parts:
                assert not (parts[name] & skin).any(), (k, name)
                assert (parts[name] & head).mean() / parts[name].mean() > 0.95, (k, name)
        nose = parts["nose"]
        assert (nose & skin).sum() > 0.8 * nose.sum(), k  # the nose lies on the skin, as in the real masks


def test_masks_line_up_with_the_pixels_they_label(faces):
    for k in range(FACES):
        photo, parts = _photo(faces, k), _parts(faces, k)
        skin_core = ndimage.binary_erosion(parts["skin"], iterations=2)
        skin_colour = np.median(photo[skin_core], axis=0)
        # One skin tone: most of the skin lies close to its median colour.
        assert (np.linalg.norm(photo[skin_core] - skin_colour, axis=1) < 45).mean() > 0.8, k
        # An eye holds a dark pupil and lid line and a bright white; skin is even.
        luminance = photo.mean(axis=2)
        eye = np.percentile(luminance[parts["l_eye"]], [5, 95])
        skin = np.percentile(luminance[skin_core], [5, 95])
        assert eye[0] < 50 and eye[1] > 150 and eye[1] - eye[0] > 2 * (skin[1] - skin[0]), (k, eye, skin)
        if "hair" not in parts:
            continue
        hair_colour = np.median(photo[ndimage.binary_erosion(parts["hair"], iterations=2)], axis=0)
        assert np.linalg.norm(hair_colour - skin_colour) > 30, k

        def looks_like_hair(hair: np.ndarray, skin: np.ndarray) -> float:
            """Of the hair pixels within 3 px of the skin, the share closer to the hair colour."""
            ring = photo[hair & ndimage.binary_dilation(skin, iterations=3)]
            to_hair = np.linalg.norm(ring - hair_colour, axis=1)
            return (to_hair < np.linalg.norm(ring - skin_colour, axis=1)).mean()

        # At the hair/skin border the labels follow the pixels to within a few pixels:
        # the same masks moved 4 px down put skin pixels under the hair label.
        aligned = looks_like_hair(parts["hair"], parts["skin"])
        shifted = looks_like_hair(np.roll(parts["hair"], 4, axis=0), np.roll(parts["skin"], 4, axis=0))
        assert aligned > 0.6 and aligned > shifted + 0.1, (k, aligned, shifted)


def test_bad_counts_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data.synthetic.count"):
        render_celebamask_hq(tmp_path, -1, seed=0)
    with pytest.raises(UserError, match="data.workers"):
        render_celebamask_hq(tmp_path, 1, seed=0, workers=-2)


# --------------------------------------------------------------------------- hole masks


def test_doodle_layout_and_black_is_hole(doodles):
    names = set(_files(doodles))
    assert names == ({f"qd_imd/train/{i:05d}_train.png" for i in range(1, 61)}
                     | {f"qd_imd/test/{i:05d}_test.png" for i in range(1, 4)})
    for name in names:
        with Image.open(doodles / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (512, 512))
            assert set(np.unique(np.asarray(image)).tolist()) == {0, 255}
    # A range that only a minority of black pixels can satisfy: black must be the hole.
    for i in range(5):
        mask = np.asarray(render_doodle(np.random.default_rng(i), 0.02, 0.05))
        assert 0.02 <= (mask == 0).mean() <= 0.05


def test_doodle_ratios_cover_every_bin(doodles):
    ratios = np.array([(np.asarray(Image.open(p)) == 0).mean()
                       for p in sorted((doodles / "qd_imd" / "train").iterdir())])
    assert ratios.min() >= 0.01 and ratios.max() <= 0.60
    counts, _ = np.histogram(ratios, RATIO_BINS)
    assert (counts > 0).all(), counts


def test_doodles_are_strokes_not_blobs(doodles):
    """Strokes 5-15 px wide vanish under an 8-px erosion except where they cross."""
    for path in sorted((doodles / "qd_imd" / "train").iterdir()):
        hole = np.asarray(Image.open(path)) == 0
        if hole.mean() <= 0.2:
            assert ndimage.binary_erosion(hole, iterations=8).sum() < 0.15 * hole.sum(), path.name


def test_doodles_are_deterministic(doodles, tmp_path):
    render_qd_imd(tmp_path, train=60, test=3, seed=0, workers=2)
    assert _files(tmp_path) == _files(doodles)
    other = tmp_path / "other"
    render_qd_imd(other, train=3, test=0, seed=1, workers=1)
    first = "qd_imd/train/00001_train.png"
    assert _files(other)[first] != _files(doodles)[first]


@pytest.mark.parametrize("ratio_min, ratio_max", [(0.0, 0.6), (0.5, 0.4), (0.1, 1.0)])
def test_bad_ratio_range_is_a_user_error(tmp_path, ratio_min, ratio_max):
    with pytest.raises(UserError, match="ratio_min"):
        render_qd_imd(tmp_path, train=1, test=1, seed=0, ratio_min=ratio_min, ratio_max=ratio_max)
