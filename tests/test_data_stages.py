"""The data stages on real (tiny) inputs: prepare, foreground, holes, weights, datasets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgi import files
from fgi.data import weights
from fgi.config import load_params
from fgi.data import holes as holes_stage
from fgi.data import doodles, synthetic
from fgi.data.dataset import PairSet, TrainSet
from fgi.data.foreground import build_foreground, foreground_mask
from fgi.data.layout import read_csv, read_ids
from fgi.data.prepare import prepare, split_ids
from fgi.data.sources import celebamask_image, celebamask_part, check_celebamask_layout, fetch_celebamask_hq
from fgi.errors import UserError

MICRO = Path(__file__).parent / "micro_params.yaml"


def with_changes(params, **sections):
    """`params` with some fields of some sections replaced: with_changes(p, data={'size': 32})."""
    changed = {name: dataclasses.replace(getattr(params, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(params, **changed)


@pytest.fixture(scope="module")
def params():
    return with_changes(load_params(MICRO), data={"workers": 1})


@pytest.fixture(scope="module")
def raw_faces(tmp_path_factory, params) -> Path:
    root = tmp_path_factory.mktemp("raw") / "celebamask_hq"
    synthetic.render_celebamask_hq(root, params.data.synthetic.count, params.seed, workers=1)
    return root


@pytest.fixture(scope="module")
def raw_masks(tmp_path_factory, params) -> Path:
    root = tmp_path_factory.mktemp("rawmasks")
    doodles.render_qd_imd(root, params.holes.synthetic.train, params.holes.synthetic.test, params.seed,
                            ratio_min=params.holes.ratio_min, ratio_max=params.holes.ratio_max, workers=1)
    return root / "qd_imd"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, params, raw_faces) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare(params, raw_faces, out)
    return out


@pytest.fixture(scope="module")
def foreground(tmp_path_factory, params, raw_faces, prepared) -> Path:
    out = tmp_path_factory.mktemp("foreground")
    build_foreground(params, raw_faces, prepared, out)
    return out


@pytest.fixture(scope="module")
def hole_pool(tmp_path_factory, params, raw_masks, prepared) -> Path:
    out = tmp_path_factory.mktemp("holes")
    holes_stage.build_holes(params, raw_masks, prepared, out)
    return out


# ------------------------------------------------------------------ prepare ----

def test_prepare_resizes_and_splits_disjointly(params, prepared):
    train, test = read_ids(prepared / "train.txt"), read_ids(prepared / "test.txt")
    assert (len(train), len(test)) == (params.split.train, params.split.test)
    assert not set(train) & set(test)
    for image_id in train + test:
        with Image.open(prepared / "images" / f"{image_id}.png") as image:
            assert image.size == (params.data.size,) * 2 and image.mode == "RGB"
    summary = json.loads((prepared / "summary.json").read_text())
    assert summary["skipped_corrupt"] == 0


def test_prepare_matches_an_independent_resize(params, raw_faces, prepared):
    image_id = read_ids(prepared / "test.txt")[0]
    with Image.open(celebamask_image(raw_faces, int(image_id))) as full:
        reference = np.asarray(full.convert("RGB").resize((params.data.size,) * 2, Image.Resampling.LANCZOS),
                               dtype=np.float64)
    ours = files.load_image_rgb(prepared / "images" / f"{image_id}.png").astype(np.float64)
    # Reduced-scale JPEG decoding differs from a full decode by a little, never by much.
    assert np.abs(ours - reference).mean() < 3.0


def test_split_is_seeded_and_checks_its_size():
    ids = list(range(20))
    assert split_ids(ids, 12, 5, seed=3) == split_ids(ids, 12, 5, seed=3)
    assert split_ids(ids, 12, 5, seed=3) != split_ids(ids, 12, 5, seed=4)
    with pytest.raises(UserError, match="split: train \\+ test = 25 but only 20 images"):
        split_ids(ids, 20, 5, seed=0)


def truncated_copy(raw_faces: Path, dest: Path, victim: int = 3) -> Path:
    shutil.copytree(raw_faces, dest)
    path = celebamask_image(dest, victim)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_prepare_stops_on_a_truncated_jpeg_naming_it(params, raw_faces, tmp_path):
    broken = truncated_copy(raw_faces, tmp_path / "raw")
    with pytest.raises(UserError, match=str(broken)):
        prepare(params, tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out" / "train.txt").exists()


def test_prepare_can_skip_and_count_a_truncated_jpeg(params, raw_faces, tmp_path):
    broken = truncated_copy(raw_faces, tmp_path / "raw")
    skipping = with_changes(params, data={"on_corrupt": "skip"}, split={"train": 9, "test": 6})
    summary = prepare(skipping, tmp_path / "raw", tmp_path / "out")
    assert summary["skipped_corrupt"] == 1 and summary["skipped_files"] == [str(broken)]
    assert not (tmp_path / "out" / "images" / "00003.png").exists()
    assert "00003" not in read_ids(tmp_path / "out" / "train.txt") + read_ids(tmp_path / "out" / "test.txt")


# --------------------------------------------------------------- foreground ----

def test_foreground_is_the_union_of_skin_and_hair_with_holes_filled(params, raw_faces, foreground, prepared):
    image_id = read_ids(prepared / "train.txt")[0]
    skin = files.load_mask(celebamask_part(raw_faces, int(image_id), "skin"))
    hair_path = celebamask_part(raw_faces, int(image_id), "hair")
    hair = files.load_mask(hair_path) if hair_path.exists() else np.zeros_like(skin)
    eye = files.load_mask(celebamask_part(raw_faces, int(image_id), "l_eye"))
    assert not (skin & eye).any(), "the skin annotation has a hole where the eye is"
    full = foreground_mask(raw_faces, int(image_id), ["skin", "hair"], True, skin.shape[0])
    assert (full >= (skin | hair)).all()
    assert full[eye].all(), "with fill_holes the eye inside the face is foreground"
    unfilled = foreground_mask(raw_faces, int(image_id), ["skin", "hair"], False, skin.shape[0])
    assert np.array_equal(unfilled, skin | hair)
    stored = files.load_mask(foreground / f"{image_id}.png")
    assert stored.shape == (params.data.size,) * 2
    # nearest-neighbour resize of the full-size mask, exactly
    expected = np.asarray(Image.fromarray(full).resize(stored.shape[::-1], Image.Resampling.NEAREST))
    assert np.array_equal(stored, expected)


def test_foreground_masks_cover_every_split_id(prepared, foreground):
    ids = read_ids(prepared / "train.txt") + read_ids(prepared / "test.txt")
    assert sorted(p.stem for p in foreground.glob("*.png")) == sorted(ids)


# -------------------------------------------------------------------- holes ----

def test_bins_are_the_papers_six_tenths():
    edges = holes_stage.bin_edges(0.01, 0.60)
    assert edges == [0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert holes_stage.bin_of(0.1, edges) == "(0.01,0.1]"
    assert holes_stage.bin_of(0.100001, edges) == "(0.1,0.2]"
    assert holes_stage.bin_of(0.6, edges) == "(0.5,0.6]"
    assert holes_stage.bin_of(0.61, edges) is None and holes_stage.bin_of(0.005, edges) is None


def test_holes_are_inverted_and_measured_at_the_working_size(params, raw_masks, hole_pool):
    kept = read_csv(hole_pool / "masks.csv")[0]
    black = ~files.load_mask(raw_masks / kept["mask"])  # QD-IMD: black = hole
    ours = files.load_mask(hole_pool / kept["mask"])
    assert ours.shape == (params.data.size,) * 2
    assert abs(ours.mean() - float(kept["hole_ratio"])) < 1e-6
    # area-averaged downsizing keeps the hole ratio of the full-size mask
    assert abs(ours.mean() - black.mean()) < 0.05


def test_test_pairs_fall_in_their_bins_and_are_balanced(params, prepared, hole_pool):
    pairs = read_csv(hole_pool / "test_pairs.csv")
    assert sorted(p["image_id"] for p in pairs) == sorted(read_ids(prepared / "test.txt"))
    edges = holes_stage.bin_edges(params.holes.ratio_min, params.holes.ratio_max)
    for pair in pairs:
        hole = files.load_mask(hole_pool / pair["mask"])
        assert abs(hole.mean() - float(pair["hole_ratio"])) < 1e-6
        assert holes_stage.bin_of(float(pair["hole_ratio"]), edges) == pair["bin"]
    counts = [sum(p["bin"] == label for p in pairs) for label in {p["bin"] for p in pairs}]
    assert len(counts) == min(len(pairs), len(edges) - 1) and max(counts) - min(counts) <= 1


def test_an_empty_bin_is_a_clear_error():
    masks = [{"mask": "test/1.png", "hole_ratio": "0.05", "bin": "(0.01,0.1]"}]
    with pytest.raises(UserError, match=r"no test mask with a hole ratio in \(0.1,0.2\]"):
        holes_stage.make_test_pairs(["00001", "00002"], masks, [0.01, 0.1, 0.2], seed=0)


def _white_is_hole_copy(raw_masks: Path, folder: Path) -> Path:
    """The pool in the other convention (white = hole, like NVIDIA's irregular masks)."""
    for path in raw_masks.glob("*/*.png"):
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(files.load_mask(path), 0, 255).astype(np.uint8)).save(target)
    return folder


def test_inverted_masks_stop_the_stage_naming_holes_invert(params, raw_masks, prepared, hole_pool, tmp_path):
    inverted = _white_is_hole_copy(raw_masks, tmp_path / "nvidia")
    with pytest.raises(UserError, match=r"the masks look inverted: read with black as the hole, their mean hole "
                                        r"ratio is 0\.\d\d .* They are white = hole, as in NVIDIA's irregular "
                                        r"masks: set holes.invert: true"):
        holes_stage.build_holes(params, inverted, prepared, tmp_path / "out")
    flipped = with_changes(params, holes={"invert": True})
    summary = holes_stage.build_holes(flipped, inverted, prepared, tmp_path / "out")
    assert summary["invert"] is True
    assert (tmp_path / "out" / "test_pairs.csv").read_text() == (hole_pool / "test_pairs.csv").read_text()
    # QD-IMD read with holes.invert: true is the same mistake the other way round.
    with pytest.raises(UserError, match=r"They are black = hole: set holes.invert: false"):
        holes_stage.build_holes(flipped, raw_masks, prepared, tmp_path / "out2")


def test_a_pool_outside_the_range_names_the_range(params, raw_masks, prepared, tmp_path):
    narrow = with_changes(params, holes={"ratio_min": 0.9, "ratio_max": 0.95})
    with pytest.raises(UserError, match=r"only 0.0% of the 48 masks have a hole ratio in \[0.9, 0.95\] "
                                        r"\(mean ratio 0\.\d+\); check holes.ratio_min/ratio_max, holes.invert"):
        holes_stage.build_holes(narrow, raw_masks, prepared, tmp_path / "out")


def test_summary_counts_distinct_masks_and_warns_on_heavy_reuse(params, raw_masks, prepared, tmp_path, capsys):
    full = holes_stage.build_holes(params, raw_masks, prepared, tmp_path / "full")
    assert "warning" not in capsys.readouterr().err
    assert full["distinct_masks_per_bin"] == full["pairs_per_bin"], "enough masks: no bin reuses one"
    # Keep one test mask per bin: 60 test images then share 6 masks, 10 pairs each.
    sparse = tmp_path / "sparse"
    shutil.copytree(raw_masks / "train", sparse / "train")
    kept = {}
    for row in read_csv(tmp_path / "full" / "masks.csv"):
        if row["split"] == "test":
            kept.setdefault(row["bin"], row["mask"])
    (sparse / "test").mkdir()
    for mask in kept.values():
        shutil.copy(raw_masks / mask, sparse / mask)
    many = tmp_path / "prepared"  # the stage reads only the test ids
    many.mkdir()
    (many / "test.txt").write_text("".join(f"{i:05d}\n" for i in range(1000, 1060)))
    summary = holes_stage.build_holes(params, sparse, many, tmp_path / "out")
    assert summary["distinct_masks_per_bin"] == {label: 1 for label in kept}
    assert summary["most_uses_per_bin"] == {label: 10 for label in kept}
    err = capsys.readouterr().err
    assert "warning: holes: bin (0.5,0.6] holds 1 test mask(s) for 10 pairs" in err
    assert err.count("warning: holes:") == len(kept)


# ----------------------------------------------------------------- datasets ----

def test_datasets_yield_tensors_in_the_conventions(params, prepared, foreground, hole_pool):
    torch.manual_seed(0)
    train = TrainSet(prepared, foreground, hole_pool)
    image, hole, fg_mask = train[0]
    size = params.data.size
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert -1.0 <= image.min() and image.max() <= 1.0
    assert hole.shape == fg_mask.shape == (1, size, size)
    assert set(torch.unique(hole).tolist()) <= {0.0, 1.0} and hole.sum() > 0
    torch.manual_seed(0)
    again = TrainSet(prepared, foreground, hole_pool)[0][1]
    assert torch.equal(hole, again), "the mask draw is seeded by torch's RNG"
    test = PairSet(prepared, foreground, hole_pool)
    image, hole, fg_mask, image_id = test[0]
    assert image_id == read_csv(hole_pool / "test_pairs.csv")[0]["image_id"]
    assert torch.equal(PairSet(prepared, foreground, hole_pool)[0][1], hole), "test pairs are fixed"


# ------------------------------------------------------------------ sources ----

def test_layout_check_names_missing_parts(raw_faces, tmp_path):
    copy = tmp_path / "faces"
    shutil.copytree(raw_faces, copy)
    celebamask_part(copy, 2, "skin").unlink()
    with pytest.raises(UserError, match="no skin annotation for id\\(s\\) 2"):
        check_celebamask_layout(copy)
    celebamask_image(copy, 2).unlink()
    celebamask_image(copy, 5).unlink()
    with pytest.raises(UserError, match="missing image\\(s\\) for annotated id\\(s\\) 5"):
        check_celebamask_layout(copy)
    shutil.rmtree(copy / "CelebAMask-HQ-mask-anno")
    with pytest.raises(UserError, match="missing folder CelebAMask-HQ-mask-anno/"):
        check_celebamask_layout(copy)


def test_real_source_from_a_local_archive(params, raw_faces, tmp_path, monkeypatch):
    # The official zip holds one top folder, CelebAMask-HQ/, around the layout.
    top = tmp_path / "src" / "CelebAMask-HQ"
    shutil.copytree(raw_faces, top)
    archive = Path(shutil.make_archive(str(tmp_path / "CelebAMask-HQ"), "zip", tmp_path / "src"))
    source = dataclasses.replace(params.data.celebamask_hq, path=str(archive),
                                 sha256=files.sha256_file(archive))
    real = with_changes(params, data={"source": "celebamask_hq", "celebamask_hq": source})
    monkeypatch.chdir(tmp_path)
    summary = fetch_celebamask_hq(real, tmp_path / "out")
    assert summary["images"] == params.data.synthetic.count
    assert check_celebamask_layout(tmp_path / "out") == list(range(params.data.synthetic.count))
    bad = with_changes(params, data={"source": "celebamask_hq",
                                     "celebamask_hq": dataclasses.replace(source, sha256="0" * 64)})
    with pytest.raises(UserError, match="expected sha256"):
        fetch_celebamask_hq(bad, tmp_path / "out")
    assert check_celebamask_layout(tmp_path / "out"), "a failed fetch keeps the earlier output"


PAPER = Path(__file__).parents[1] / "configs" / "paper.yaml"


def _celebamask_zip(raw_faces: Path, work: Path, zip_path: Path, bald: int) -> None:
    """CelebAMask-HQ.zip as published: one top folder around the images, the part masks
    (grey and RGB PNGs; parts only where visible) and the three annotation .txt files."""
    top = work / "CelebAMask-HQ"
    shutil.copytree(raw_faces, top)
    for part in sorted(top.glob("CelebAMask-HQ-mask-anno/*/*.png"))[::2]:
        Image.open(part).convert("RGB").save(part)
    celebamask_part(top, bald, "hair").unlink(missing_ok=True)
    ids = sorted(int(p.stem) for p in top.glob("CelebA-HQ-img/*.jpg"))
    (top / "CelebAMask-HQ-attribute-anno.txt").write_text(
        f"{len(ids)}\n5_o_Clock_Shadow Bald Smiling\n" + "".join(f"{i}.jpg -1 {1 if i == bald else -1} 1\n" for i in ids))
    (top / "CelebAMask-HQ-pose-anno.txt").write_text(
        f"{len(ids)}\nYaw Pitch Raw\n" + "".join(f"{i}.jpg 1.5 -2.0 0.3\n" for i in ids))
    (top / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n" + "".join(f"{i} {i + 119} {i + 120:06d}.jpg\n" for i in ids))
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.make_archive(str(zip_path.with_suffix("")), "zip", work)


def _qd_imd_tar(raw_masks: Path, work: Path, tar_path: Path) -> None:
    """qd_imd.tar.gz as published: qd_imd/{train,test}/<i:05d>_<split>.png, 1-bit, black = hole."""
    for split in ("train", "test"):
        (work / "qd_imd" / split).mkdir(parents=True)
        for i, path in enumerate(sorted((raw_masks / split).glob("*.png"))):
            Image.fromarray(files.load_mask(path)).save(work / "qd_imd" / split / f"{i:05d}_{split}.png")
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.make_archive(str(tar_path).removesuffix(".tar.gz"), "gztar", work)


def test_the_published_archives_at_the_paper_paths_go_through_the_data_stages(
        params, raw_faces, raw_masks, prepared, hole_pool, tmp_path, monkeypatch):
    from fgi.data.sources import fetch_qd_imd

    paper = load_params(PAPER)
    faces_zip, masks_tar = Path(paper.data.celebamask_hq.path), Path(paper.holes.qd_imd.path)
    assert (faces_zip.name, masks_tar.name) == ("CelebAMask-HQ.zip", "qd_imd.tar.gz")
    monkeypatch.chdir(tmp_path)
    bald = 3
    _celebamask_zip(raw_faces, tmp_path / "faces-src", faces_zip, bald)
    _qd_imd_tar(raw_masks, tmp_path / "masks-src", masks_tar)
    real = with_changes(params, data={"source": "celebamask_hq", "celebamask_hq": paper.data.celebamask_hq},
                        holes={"source": "qd_imd", "qd_imd": paper.holes.qd_imd})

    raw, masks = Path("data/raw/celebamask_hq"), Path("data/raw/qd_imd")
    assert fetch_celebamask_hq(real, raw)["images"] == params.data.synthetic.count
    assert fetch_qd_imd(real, masks) == {"source": "qd_imd", "masks_train": params.holes.synthetic.train,
                                         "masks_test": params.holes.synthetic.test}
    prepare(real, raw, Path("data/prepared"))
    assert (Path("data/prepared/test.txt").read_text() == (prepared / "test.txt").read_text()
            and Path("data/prepared/train.txt").read_text() == (prepared / "train.txt").read_text())
    build_foreground(real, raw, Path("data/prepared"), Path("data/foreground"))
    parts, size = params.foreground.parts, params.data.size
    for name in read_ids(Path("data/prepared/train.txt")) + read_ids(Path("data/prepared/test.txt")):
        fg = files.load_mask(Path("data/foreground") / f"{name}.png")
        expected = foreground_mask(raw_faces, int(name), ["skin"] if int(name) == bald else parts,
                                   params.foreground.fill_holes, size)
        assert np.array_equal(fg, expected), f"foreground of {name} (RGB and grey parts read alike)"
    summary = holes_stage.build_holes(real, masks, Path("data/prepared"), Path("data/holes"))
    expected = json.loads((hole_pool / "summary.json").read_text())
    assert (summary["kept_train"], summary["kept_test"]) == (expected["kept_train"], expected["kept_test"])
    ratios = sorted(row["hole_ratio"] for row in read_csv(Path("data/holes/masks.csv")))
    assert ratios == sorted(row["hole_ratio"] for row in read_csv(hole_pool / "masks.csv"))


# ------------------------------------------------------------------ weights ----

def test_offline_weights_are_random_init(params, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    provenance = weights.fetch_weights(params, tmp_path / "weights")
    assert {entry["status"] for entry in provenance.values()} == {weights.RANDOM_INIT}
    assert json.loads((tmp_path / "weights" / "provenance.json").read_text()) == provenance
    assert weights.weights_file(tmp_path / "weights", "vgg16") is None
    assert not list((tmp_path / "weights").glob("*.pth*"))


def test_cached_weights_are_pretrained_with_their_sha256(params, tmp_path, monkeypatch):
    content = b"pretend these are weights"
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / f"net-{digest[:8]}.pth").write_bytes(content)
    (cache / "broken-0badc0de.pth").write_bytes(content)
    monkeypatch.setattr(weights, "NETWORKS", {"vgg16": f"https://example.invalid/net-{digest[:8]}.pth"})
    provenance = weights.fetch_weights(params, tmp_path / "weights")
    assert provenance["vgg16"]["status"] == "pretrained" and provenance["vgg16"]["sha256"] == digest
    assert weights.weights_file(tmp_path / "weights", "vgg16").read_bytes() == content
    monkeypatch.setattr(weights, "NETWORKS", {"vgg16": "https://example.invalid/broken-0badc0de.pth"})
    with pytest.raises(UserError, match="does not match the 0badc0de"):
        weights.fetch_weights(params, tmp_path / "weights2")


def test_a_network_without_a_published_checksum_is_found_where_lama_puts_it(params, tmp_path, monkeypatch):
    """The ADE20k encoder sits at $TORCH_HOME/ade20k/... (LaMa's README); its sha256 is recorded, not checked."""
    content = b"pretend this is the ADE20k encoder"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights, "NETWORKS", {"ade20k_resnet50dilated": weights.NETWORKS["ade20k_resnet50dilated"]})
    assert weights.expected_prefix(weights.NETWORKS["ade20k_resnet50dilated"]) is None
    provenance = weights.fetch_weights(params, tmp_path / "offline")
    assert provenance["ade20k_resnet50dilated"]["status"] == weights.RANDOM_INIT
    assert weights.weights_file(tmp_path / "offline", "ade20k_resnet50dilated") is None
    cached = tmp_path / "torch" / weights.TORCH_HOME_FILES["ade20k_resnet50dilated"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    entry = weights.fetch_weights(params, tmp_path / "cached")["ade20k_resnet50dilated"]
    assert entry == {"status": "pretrained", "file": "ade20k_resnet50dilated.pth", "source": str(cached),
                     "sha256": hashlib.sha256(content).hexdigest(), "checksum": "none published"}


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server over a folder (at most a few requests per test)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_real_sources_download_from_a_url(params, raw_faces, raw_masks, file_server, tmp_path, monkeypatch):
    from fgi.data.sources import check_qd_imd_layout, fetch_qd_imd

    folder, base = file_server
    shutil.copytree(raw_faces, tmp_path / "src" / "CelebAMask-HQ")
    faces = Path(shutil.make_archive(str(folder / "CelebAMask-HQ"), "zip", tmp_path / "src"))
    masks = Path(shutil.make_archive(str(folder / "qd_imd"), "gztar", raw_masks.parent))
    faces_source = dataclasses.replace(params.data.celebamask_hq, url=f"{base}/{faces.name}",
                                       sha256=files.sha256_file(faces), size_bytes=faces.stat().st_size)
    masks_source = dataclasses.replace(params.holes.qd_imd, url=f"{base}/{masks.name}")
    real = with_changes(params, data={"source": "celebamask_hq", "celebamask_hq": faces_source},
                        holes={"source": "qd_imd", "qd_imd": masks_source})
    monkeypatch.chdir(tmp_path)
    assert fetch_celebamask_hq(real, tmp_path / "faces")["images"] == params.data.synthetic.count
    assert (tmp_path / "downloads" / faces.name).is_file(), "the download is kept for a rerun"
    summary = fetch_qd_imd(real, tmp_path / "masks")
    assert summary["masks_train"] == params.holes.synthetic.train
    assert check_qd_imd_layout(tmp_path / "masks") == {"train": params.holes.synthetic.train,
                                                        "test": params.holes.synthetic.test}


def test_a_stage_with_bad_params_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "params.yaml"
    bad.write_text(MICRO.read_text().replace("size: 32", "size: huge"))
    result = subprocess.run([sys.executable, "-m", "stages.prepare", "--params", str(bad)],
                            cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "data.size: expected an integer, got 'huge'" in result.stderr
    assert "Traceback" not in result.stderr
