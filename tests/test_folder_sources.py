"""Folder sources on miniature folders made here: a user's faces, foreground masks and hole masks
(README: "Your own data"), and every bad input a clear one-line error with nothing half-written."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from fgi import files
from fgi.config import load_params
from fgi.data import folder_source
from fgi.data.foreground import build_foreground
from fgi.data.holes import build_holes, held_out
from fgi.data.layout import read_csv, read_ids
from fgi.data.manifest import build_manifests
from fgi.data.prepare import prepare
from fgi.errors import UserError

MICRO = Path(__file__).parent / "micro_params.yaml"
SIZE = 32  # the micro profile's data.size
SKIN, L_EYE, CLOTH, HAIR, HAT = 1, 4, 16, 17, 18  # CelebAMask-HQ's (and BiSeNet's) label ids


def face(width: int, height: int, seed: int) -> Image.Image:
    """A face-like picture: noise, a skin-coloured ellipse, a hair band."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.9), fill=(225, 180, 150))
    draw.rectangle((width * 0.2, 0, width * 0.8, height * 0.2), fill=(60, 40, 20))
    return image


def binary_mask(width: int, height: int) -> Image.Image:
    """White = foreground: the face's ellipse and hair band."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.9), fill=255)
    draw.rectangle((width * 0.2, 0, width * 0.8, height * 0.2), fill=255)
    return mask


def parser_labels(width: int, height: int) -> Image.Image:
    """What a face parser writes for `face`: skin in the ellipse, hair in the band, background 0 (greyscale ids)."""
    labels = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(labels)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.9), fill=SKIN)
    draw.rectangle((width * 0.2, 0, width * 0.8, height * 0.2), fill=HAIR)
    draw.rectangle((0, height * 0.92, width, height), fill=CLOTH)
    return labels


def faces_folder(root: Path, sizes: list[tuple[int, int]], masks: Path | None = None) -> list[str]:
    """FFHQ-like PNGs of the given sizes, in sub-folders of ten, each with its binary mask in `masks`."""
    stems = []
    for index, (width, height) in enumerate(sizes):
        stem = f"{index:05d}"
        folder = root / f"{index // 10 * 10:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        face(width, height, index).save(folder / f"{stem}.png")
        if masks is not None:
            masks.mkdir(parents=True, exist_ok=True)
            binary_mask(width, height).save(masks / f"{stem}.png")
        stems.append(stem)
    return stems


def hole_folder(root: Path, per_bin: int, white_is_hole: bool = True, side: int = 64) -> Path:
    """Square masks, `per_bin` in each hole-ratio bin (0.01,0.1] ... (0.5,0.6], as NVIDIA's are: white = hole."""
    root.mkdir(parents=True, exist_ok=True)
    ratios = [low + (high - low) * (k + 0.5) / per_bin for low, high in zip([0.02, 0.1, 0.2, 0.3, 0.4, 0.5],
                                                                           [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
              for k in range(per_bin)]
    for index, ratio in enumerate(ratios):
        hole = np.zeros((side, side), bool)
        hole[:2 * round(ratio * side / 2)] = True  # pairs of whole rows: the same ratio at half the size
        hole = np.roll(hole, 2 * index, axis=0)
        files.save_mask(root / f"mask{index:03d}.png", hole if white_is_hole else ~hole)
    return root


def with_folders(params, images="", foreground="", holes_train="", holes_test="", **changes):
    """`params` with the folder sources set; `changes` replace other keys as {'data.square': ...} would."""
    data = dataclasses.replace(params.data, source="folder" if images else params.data.source, workers=1,
                               folder=dataclasses.replace(params.data.folder, images=str(images),
                                                          foreground=str(foreground)))
    holes = dataclasses.replace(params.holes, source="folder" if holes_train else params.holes.source,
                                folder=dataclasses.replace(params.holes.folder, train=str(holes_train),
                                                           test=str(holes_test)))
    params = dataclasses.replace(params, data=data, holes=holes)
    for path, value in changes.items():
        *sections, key = path.split("__")
        nodes = [params]
        for name in sections:
            nodes.append(getattr(nodes[-1], name))
        value_node = dataclasses.replace(nodes[-1], **{key: value})
        for node, name in zip(reversed(nodes[:-1]), reversed(sections)):
            value_node = dataclasses.replace(node, **{name: value_node})
        params = value_node
    return params


@pytest.fixture(scope="module")
def micro():
    return load_params(MICRO)


def data_stages(params, tmp: Path, holes: bool = False) -> Path:
    """manifest, prepare and foreground (and holes) of `params` under `tmp`, as their stages run them."""
    build_manifests(params, tmp / "manifest", cache=tmp / "manifest_cache")
    prepare(params, tmp / "raw", tmp / "prepared", manifest=tmp / "manifest")
    build_foreground(params, tmp / "raw", tmp / "prepared", tmp / "foreground", manifest=tmp / "manifest")
    if holes:
        build_holes(params, tmp / "raw_masks", tmp / "prepared", tmp / "holes", manifest=tmp / "manifest")
    return tmp


# ------------------------------------------------------------------ faces and their masks ----

def test_ffhq_like_faces_of_mixed_sizes_are_squared_resized_and_split(micro, tmp_path):
    sizes = [(48, 48), (64, 40), (40, 72), (33, 33)] * 4
    stems = faces_folder(tmp_path / "ffhq", sizes, masks=tmp_path / "parser")
    params = with_folders(micro, tmp_path / "ffhq", tmp_path / "parser", split__train=0.75, split__test=0.25)
    data_stages(params, tmp_path)
    train, test = read_ids(tmp_path / "prepared" / "train.txt"), read_ids(tmp_path / "prepared" / "test.txt")
    assert (len(train), len(test)) == (12, 4) and sorted(train + test) == stems
    summary = json.loads((tmp_path / "prepared" / "summary.json").read_text())
    assert summary["split"] == {"train": 0.75, "test": 0.25} and summary["seed"] == micro.seed
    # A wide face keeps its centred square, Lanczos-resized, exactly as an independent crop gives it.
    wide = face(64, 40, 1).crop((12, 0, 52, 40)).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    assert np.array_equal(files.load_image_rgb(tmp_path / "prepared" / "images" / "00001.png"), np.asarray(wide))
    mask = binary_mask(40, 72).crop((0, 16, 40, 56)).resize((SIZE, SIZE), Image.Resampling.NEAREST)
    assert np.array_equal(files.load_mask(tmp_path / "foreground" / "00002.png"), np.asarray(mask) >= 128)
    # The same folder prepared again gives the same split: it is seeded.
    again = data_stages(params, tmp_path / "again")
    assert read_ids(again / "prepared" / "test.txt") == test


def test_pad_puts_the_face_on_a_black_square(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(64, 32)] * 4)
    params = with_folders(micro, tmp_path / "faces", data__folder__square="pad", split__train=3, split__test=1)
    data_stages(params, tmp_path)
    image = files.load_image_rgb(tmp_path / "prepared" / "images" / "00000.png")
    assert image[:4].max() == 0 and image[-4:].max() == 0, "black above and below a landscape face"
    assert image[12:20].mean() > 40
    assert folder_source.square_box(5, 2, "pad") == (0, -1, 5, 4)
    assert folder_source.square_box(5, 2, "crop") == (1, 0, 3, 2)


def test_jpeg_with_exif_rotation_is_read_upright(micro, tmp_path):
    upright = Image.new("RGB", (120, 160), (0, 0, 255))
    ImageDraw.Draw(upright).rectangle((0, 0, 39, 159), fill=(255, 0, 0))  # the left third red
    stored, exif = upright.transpose(Image.Transpose.ROTATE_90), Image.Exif()
    exif[folder_source.EXIF_ORIENTATION] = 6  # "turn 90 degrees clockwise to show it"
    (tmp_path / "photos").mkdir()
    stored.save(tmp_path / "photos" / "phone.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "photos" / "phone.jpg") as stored_file:
        assert stored_file.size == (160, 120)
    image, size = folder_source.load_face(tmp_path / "photos" / "phone.jpg", SIZE, "crop")
    assert size == (120, 160)
    assert image[:, :8, 0].mean() > 200 and image[:, :8, 2].mean() < 60, "red on the left, as shown upright"
    assert image[:, -8:, 2].mean() > 200
    binary_mask(120, 160).save(tmp_path / "upright_mask.png")
    folder_source.check_mask(tmp_path / "upright_mask.png", tmp_path / "photos" / "phone.jpg", size)
    binary_mask(160, 120).save(tmp_path / "stored_mask.png")
    with pytest.raises(UserError, match=r"stored_mask.png: 160x120, but its image .*phone.jpg is 120x160 \(the "
                                        r"image's EXIF orientation turns it upright"):
        folder_source.check_mask(tmp_path / "stored_mask.png", tmp_path / "photos" / "phone.jpg", size)


def label_map(mode: str = "P") -> Image.Image:
    """A parser's raw labels at the working size: skin with an eye inside it, hair, a hat, clothes."""
    ids = np.zeros((SIZE, SIZE), np.uint8)
    ids[8:28, 8:24] = SKIN
    ids[14:17, 12:15] = L_EYE  # a hole in the skin, as a parser leaves it
    ids[2:8, 8:24] = HAIR
    ids[0:2, 8:24] = HAT
    ids[28:, :] = CLOTH
    image = Image.fromarray(ids)
    if mode == "P":  # a palette PNG, as CelebAMask-HQ-style parsers save them: ids are indices, shown in colour
        image = image.convert("P")
        image.putpalette([channel for i in range(256) for channel in ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)])
    return image


@pytest.mark.parametrize("mode", ["P", "L"])
def test_label_maps_give_the_foreground_of_their_label_ids(micro, tmp_path, mode):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 4)
    (tmp_path / "labels").mkdir()
    for stem in ("00000", "00001", "00002", "00003"):
        label_map(mode).save(tmp_path / "labels" / f"{stem}.png")
    params = with_folders(micro, tmp_path / "faces", tmp_path / "labels", data__folder__label_ids=[SKIN, HAIR],
                          data__folder__label_count=19, split__train=3, split__test=1)
    data_stages(params, tmp_path)
    ids = np.asarray(label_map("L"))
    expected = ndimage.binary_fill_holes(np.isin(ids, [SKIN, HAIR]))
    assert expected[15, 13] and not np.isin(ids, [SKIN, HAIR])[15, 13], "the eye inside the skin is filled"
    assert np.array_equal(files.load_mask(tmp_path / "foreground" / "00000.png"), expected)
    unfilled = with_folders(params, tmp_path / "faces", tmp_path / "labels", foreground__fill_holes=False)
    build_foreground(unfilled, tmp_path / "raw", tmp_path / "prepared", tmp_path / "plain", tmp_path / "manifest")
    assert np.array_equal(files.load_mask(tmp_path / "plain" / "00000.png"), np.isin(ids, [SKIN, HAIR]))


def test_zero_one_binary_masks_read_one_as_foreground(tmp_path):
    Image.fromarray(np.asarray(binary_mask(SIZE, SIZE)) // 255).save(tmp_path / "01.png")
    expected = np.asarray(binary_mask(SIZE, SIZE)) > 0
    assert np.array_equal(folder_source.mask_pixels(tmp_path / "01.png", [], 0), expected)


# ------------------------------------------------------------------ hole masks ----

def test_nvidia_style_white_hole_masks_with_holes_invert(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 12)
    hole_folder(tmp_path / "irregular" / "train", 3)
    hole_folder(tmp_path / "irregular" / "test", 2)
    read_wrong = with_folders(micro, tmp_path / "faces", holes_train=tmp_path / "irregular" / "train",
                              holes_test=tmp_path / "irregular" / "test", split__train=6, split__test=6)
    with pytest.raises(UserError, match="the masks look inverted.*set holes.invert: true"):
        data_stages(read_wrong, tmp_path / "wrong", holes=True)
    params = with_folders(read_wrong, tmp_path / "faces", holes_train=tmp_path / "irregular" / "train",
                          holes_test=tmp_path / "irregular" / "test", holes__invert=True)
    data_stages(params, tmp_path, holes=True)
    masks = read_csv(tmp_path / "holes" / "masks.csv")
    assert sum(row["split"] == "train" for row in masks) == 18 and sum(row["split"] == "test" for row in masks) == 12
    pairs = read_csv(tmp_path / "holes" / "test_pairs.csv")
    assert sorted(pair["image_id"] for pair in pairs) == read_ids(tmp_path / "prepared" / "test.txt")
    assert len({pair["bin"] for pair in pairs}) == 6
    white = files.load_mask(tmp_path / "irregular" / "test" / "mask000.png")
    assert files.load_mask(tmp_path / "holes" / "test" / "mask000.png").mean() == white.mean()


def test_one_hole_folder_is_split_by_the_seed(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 12)
    hole_folder(tmp_path / "masks", 10)
    params = with_folders(micro, tmp_path / "faces", holes_train=tmp_path / "masks", holes__invert=True,
                          holes__folder__test_share=0.5, split__train=6, split__test=6)
    data_stages(params, tmp_path, holes=True)
    masks = read_csv(tmp_path / "holes" / "masks.csv")
    test = {row["mask"].split("/")[1] for row in masks if row["split"] == "test"}
    train = {row["mask"].split("/")[1] for row in masks if row["split"] == "train"}
    assert len(test) == len(train) == 30 and not test & train
    assert held_out(60, 0.5, micro.seed) == held_out(60, 0.5, micro.seed) != held_out(60, 0.5, micro.seed + 1)
    assert json.loads((tmp_path / "holes" / "summary.json").read_text())["held_out_test"] is True
    with pytest.raises(UserError, match=r"holes.folder.test_share: 0.2 of the 2 mask\(s\) in holes.folder.train is 0"):
        held_out(2, 0.2, 0)


# ------------------------------------------------------------------ the manifest ----

def test_manifest_lists_sizes_and_sha256_and_reuses_its_hashes(micro, tmp_path):
    stems = faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 3)
    (tmp_path / "faces" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "faces" / "notes.txt").write_text("shot on a phone")
    params = with_folders(micro, tmp_path / "faces")
    summary = build_manifests(params, tmp_path / "manifest", cache=tmp_path / "cache")
    assert summary["images"] == 3 and summary["folders"]["images"]["left_out"] == 2
    assert json.loads((tmp_path / "manifest" / "summary.json").read_text()) == summary["folders"]
    rows = read_csv(tmp_path / "manifest" / "images.csv")
    assert [row["stem"] for row in rows] == stems and rows[0]["path"] == "00000/00000.png"
    for row in rows:
        content = (tmp_path / "faces" / row["path"]).read_bytes()
        assert int(row["bytes"]) == len(content) and row["sha256"] == hashlib.sha256(content).hexdigest()
    assert read_csv(tmp_path / "manifest" / "holes.csv") == []  # holes.source is not a folder
    first = (tmp_path / "manifest" / "images.csv").read_bytes()
    build_manifests(params, tmp_path / "manifest", cache=tmp_path / "cache")
    assert (tmp_path / "manifest" / "images.csv").read_bytes() == first, "an unchanged folder, the same manifest"
    # An unchanged file's hash comes from the cache: plant a wrong one and it is believed ...
    cache = json.loads((tmp_path / "cache" / "images.json").read_text())
    key = str((tmp_path / "faces" / rows[0]["path"]).resolve())
    cache[key][2] = "0" * 64
    (tmp_path / "cache" / "images.json").write_text(json.dumps(cache))
    build_manifests(params, tmp_path / "manifest", cache=tmp_path / "cache")
    assert read_csv(tmp_path / "manifest" / "images.csv")[0]["sha256"] == "0" * 64
    # ... until the file changes: a new modification time (or size) means a new hash.
    os.utime(tmp_path / "faces" / rows[0]["path"], ns=(1, 1))
    build_manifests(params, tmp_path / "manifest", cache=tmp_path / "cache")
    assert read_csv(tmp_path / "manifest" / "images.csv")[0]["sha256"] == rows[0]["sha256"]


# ------------------------------------------------------------------ bad input ----

def manifest_refuses(params, tmp_path: Path, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        build_manifests(params, tmp_path / "manifest", cache=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "manifest").exists() and not (tmp_path / "cache").exists(), "nothing written"


def test_images_without_masks_and_masks_without_images_are_counted_and_named(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 9, masks=tmp_path / "masks")
    for stem in ("00000", "00001", "00002", "00003", "00004", "00005", "00006"):
        (tmp_path / "masks" / f"{stem}.png").unlink()
    binary_mask(SIZE, SIZE).save(tmp_path / "masks" / "stranger.png")
    params = with_folders(micro, tmp_path / "faces", tmp_path / "masks")
    manifest_refuses(params, tmp_path, r"data.folder.foreground: 7 image\(s\) have no mask \(00000, 00001, 00002, "
                                       r"00003, 00004 and 2 more\) and 1 mask\(s\) have no image \(stranger\) in .*"
                                       r"matched by file stem")


def test_a_mask_of_another_size_stops_prepare(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 4, masks=tmp_path / "masks")
    binary_mask(SIZE, SIZE + 8).save(tmp_path / "masks" / "00002.png")
    for on_corrupt in ("error", "skip"):  # a wrong mask is no corrupt one: skip does not hide it
        params = with_folders(micro, tmp_path / "faces", tmp_path / "masks", data__on_corrupt=on_corrupt,
                              split__train=3, split__test=1)
        with pytest.raises(UserError, match=r"masks/00002.png: 32x40, but its image .*00002.png is 32x32; a "
                                            "foreground mask must have its image's size"):
            data_stages(params, tmp_path / on_corrupt)
        assert not (tmp_path / on_corrupt / "prepared" / "train.txt").exists()


def test_label_ids_beyond_the_label_count_or_a_coloured_map_stop_foreground(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 4)
    (tmp_path / "labels").mkdir()
    for stem in ("00000", "00001", "00002"):
        label_map().save(tmp_path / "labels" / f"{stem}.png")
    Image.fromarray(np.asarray(label_map("L")) * 12).save(tmp_path / "labels" / "00003.png")  # a scaled view
    params = with_folders(micro, tmp_path / "faces", tmp_path / "labels", data__folder__label_ids=[SKIN, HAIR],
                          data__folder__label_count=19, split__train=3, split__test=1)
    with pytest.raises(UserError, match=r"labels/00003.png: label id\(s\) 48, 192, 204, 216 but "
                                        r"data.folder.label_count is 19 \(ids 0-18\)"):
        data_stages(params, tmp_path)
    assert not (tmp_path / "foreground" / "summary.json").exists()
    label_map().convert("RGB").save(tmp_path / "labels" / "00003.png")
    with pytest.raises(UserError, match=r"00003.png: a RGB image, not a label map"):
        data_stages(params, tmp_path / "rgb")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_undecodable_images_and_masks_follow_data_on_corrupt(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 6, masks=tmp_path / "masks")
    truncate(tmp_path / "faces" / "00000" / "00001.png")
    truncate(tmp_path / "masks" / "00004.png")
    params = with_folders(micro, tmp_path / "faces", tmp_path / "masks", split__train=3, split__test=1)
    with pytest.raises(UserError, match=r"00001.png: cannot decode image .* or set data.on_corrupt: skip"):
        data_stages(params, tmp_path / "stop")
    assert not (tmp_path / "stop" / "prepared" / "train.txt").exists()
    skipping = with_folders(params, tmp_path / "faces", tmp_path / "masks", data__on_corrupt="skip")
    data_stages(skipping, tmp_path / "skip")
    summary = json.loads((tmp_path / "skip" / "prepared" / "summary.json").read_text())
    assert summary["skipped_corrupt"] == 2 and summary["skipped_files"] == [
        str(tmp_path / "faces" / "00000" / "00001.png"), str(tmp_path / "masks" / "00004.png")]
    prepared = tmp_path / "skip" / "prepared"
    kept = read_ids(prepared / "train.txt") + read_ids(prepared / "test.txt")
    assert sorted(kept) == ["00000", "00002", "00003", "00005"]


def test_an_undecodable_hole_mask_follows_data_on_corrupt(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 12)
    hole_folder(tmp_path / "train", 3)
    hole_folder(tmp_path / "test", 2)
    truncate(tmp_path / "train" / "mask005.png")
    params = with_folders(micro, tmp_path / "faces", holes_train=tmp_path / "train", holes_test=tmp_path / "test",
                          holes__invert=True, split__train=6, split__test=6)
    with pytest.raises(UserError, match=r"train/mask005.png: cannot decode image .* or set data.on_corrupt: skip"):
        data_stages(params, tmp_path / "stop", holes=True)
    assert not (tmp_path / "stop" / "holes" / "masks.csv").exists()
    data_stages(with_folders(params, tmp_path / "faces", holes_train=tmp_path / "train",
                             holes_test=tmp_path / "test", data__on_corrupt="skip"), tmp_path / "skip", holes=True)
    summary = json.loads((tmp_path / "skip" / "holes" / "summary.json").read_text())
    assert summary["skipped_corrupt"] == 1 and summary["skipped_files"] == [str(tmp_path / "train" / "mask005.png")]


def test_fewer_images_than_the_split_asks(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 12)
    params = with_folders(micro, tmp_path / "faces")  # micro: split 10 + 6
    with pytest.raises(UserError, match=r"split: train \+ test = 16 but only 12 images are usable; lower"):
        data_stages(params, tmp_path)
    assert not (tmp_path / "prepared" / "train.txt").exists()


def test_stems_that_clash_are_refused(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 3)
    face(SIZE, SIZE, 9).save(tmp_path / "faces" / "00000" / "00001.jpg")
    manifest_refuses(with_folders(micro, tmp_path / "faces"), tmp_path,
                     r"data.folder.images: 1 stem\(s\) name more than one file \(00000/00001.jpg and "
                     r"00000/00001.png\); .* may not differ only by extension or case")


def test_a_folder_that_does_not_exist(micro, tmp_path):
    manifest_refuses(with_folders(micro, tmp_path / "ffhq"), tmp_path,
                     r"data.folder.images: .*ffhq does not exist; give the folder")
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 3)
    manifest_refuses(with_folders(micro, tmp_path / "faces", tmp_path / "parser"), tmp_path,
                     r"data.folder.foreground: .*parser does not exist")


def test_symlinks_that_leave_the_folder_are_refused(micro, tmp_path):
    faces_folder(tmp_path / "faces", [(SIZE, SIZE)] * 3)
    face(SIZE, SIZE, 7).save(tmp_path / "elsewhere.png")
    (tmp_path / "faces" / "inside.png").symlink_to(tmp_path / "faces" / "00000" / "00002.png")
    (tmp_path / "faces" / "loop").symlink_to(tmp_path / "faces", target_is_directory=True)
    build_manifests(with_folders(micro, tmp_path / "faces"), tmp_path / "ok", cache=tmp_path / "ok_cache")
    assert [row["stem"] for row in read_csv(tmp_path / "ok" / "images.csv")] == ["00000", "00001", "00002", "inside"]
    (tmp_path / "faces" / "outside.png").symlink_to(tmp_path / "elsewhere.png")
    manifest_refuses(with_folders(micro, tmp_path / "faces"), tmp_path,
                     r"faces/outside.png: a symlink to .*elsewhere.png, outside data.folder.images")


def test_hole_folders_that_overlap_are_refused(micro, tmp_path):
    hole_folder(tmp_path / "masks" / "test", 1)
    params = with_folders(micro, holes_train=tmp_path / "masks", holes_test=tmp_path / "masks" / "test")
    manifest_refuses(params, tmp_path, r"holes.folder.test: .* and holes.folder.train .* overlap, so test masks")


def test_manifest_csv_is_what_dvc_hashes(micro, tmp_path):
    """The manifest is plain CSV with a header: a moved folder with the same files gives the same bytes."""
    faces_folder(tmp_path / "a", [(SIZE, SIZE)] * 2)
    build_manifests(with_folders(micro, tmp_path / "a"), tmp_path / "m1", cache=tmp_path / "c1")
    (tmp_path / "a").rename(tmp_path / "b")
    build_manifests(with_folders(micro, tmp_path / "b"), tmp_path / "m2", cache=tmp_path / "c2")
    assert (tmp_path / "m1" / "images.csv").read_bytes() == (tmp_path / "m2" / "images.csv").read_bytes()
    with open(tmp_path / "m1" / "images.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["stem", "path", "bytes", "sha256"]
