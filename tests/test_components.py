"""The component test protocol: holes that take a whole eye region, nose or mouth (stage
`holes_semantic`), every method's outputs on them, and Table 6."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO
from fgi import files
from fgi.config import FOREGROUND_PARTS, SemanticHoles, load_params
from fgi.data.layout import read_csv
from fgi.data.semantic import build_semantic_holes, component_at_size, disk, margin_pixels
from fgi.data.sources import celebamask_part
from fgi.errors import UserError
from fgi.schema import build_section

SIZE = 32
COMPONENTS = {"eyes": ["l_eye", "r_eye", "l_brow", "r_brow"], "nose": ["nose"], "mouth": ["mouth", "u_lip", "l_lip"]}


def params_at(size: int = SIZE, margin: float = 0.1):
    params = load_params(REPO / "tests" / "micro_params.yaml")
    semantic = dataclasses.replace(params.holes.semantic, margin=margin, components=COMPONENTS)
    return dataclasses.replace(params, data=dataclasses.replace(params.data, size=size, workers=1),
                               holes=dataclasses.replace(params.holes, semantic=semantic))


def annotate(raw, image_id: int, parts: dict[str, tuple[int, int, int, int]], side: int = 128) -> None:
    """Part masks (top, left, bottom, right boxes on a side² canvas) in CelebAMask-HQ's layout."""
    for part, (top, left, bottom, right) in parts.items():
        mask = np.zeros((side, side), bool)
        mask[top:bottom, left:right] = True
        path = celebamask_part(raw, image_id, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.save_mask(path, mask)


@pytest.fixture
def faces(tmp_path):
    """Two test faces; the second has no nose annotation (hidden) and a one-pixel mouth."""
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    annotate(raw, 3, {"l_eye": (40, 30, 50, 50), "r_eye": (40, 78, 50, 98), "l_brow": (30, 30, 34, 50),
                      "nose": (50, 58, 75, 70), "mouth": (85, 50, 90, 78), "u_lip": (80, 48, 85, 80)})
    annotate(raw, 7, {"l_eye": (40, 30, 50, 50), "r_eye": (40, 78, 50, 98), "mouth": (90, 64, 91, 65)})
    prepared.mkdir()
    (prepared / "test.txt").write_text("00003\n00007\n")
    (prepared / "train.txt").write_text("00003\n00007\n")  # the same faces serve as training faces here
    return raw, prepared


def test_every_hole_covers_its_component_after_dilation(faces, tmp_path):
    raw, prepared = faces
    params = params_at()
    build_semantic_holes(params, raw, prepared, tmp_path / "out")
    margin = margin_pixels(0.1, SIZE)
    assert margin == 3
    for pair in read_csv(tmp_path / "out" / "test_pairs.csv"):
        hole = files.load_mask(tmp_path / "out" / pair["mask"])
        component = component_at_size(raw, int(pair["image_id"]), COMPONENTS[pair["bin"]], SIZE)
        assert component.any() and (hole | ~component).all(), f"{pair['mask']} leaves part of its component"
        # Dilated by the margin: every hole pixel lies within `margin` of the component, and the ring is there.
        near = np.argwhere(component)
        for y, x in np.argwhere(hole):
            assert ((near - (y, x)) ** 2).sum(1).min() <= margin ** 2
        assert hole.sum() > component.sum()
        assert float(pair["hole_ratio"]) == pytest.approx(hole.mean(), abs=1e-6)
    # The one-pixel mouth at 128² still touches a working pixel at 32² (box filter, > 0).
    mouth = files.load_mask(tmp_path / "out" / "mouth" / "00007.png")
    assert mouth.sum() == disk(margin).sum()


def test_a_face_without_a_component_is_skipped_and_counted(faces, tmp_path):
    raw, prepared = faces
    summary = build_semantic_holes(params_at(), raw, prepared, tmp_path / "out")
    pairs = read_csv(tmp_path / "out" / "test_pairs.csv")
    assert [(p["image_id"], p["bin"]) for p in pairs] == [("00003", "eyes"), ("00003", "nose"), ("00003", "mouth"),
                                                          ("00007", "eyes"), ("00007", "mouth")]
    assert summary["pairs"] == {"eyes": 2, "nose": 1, "mouth": 2}
    assert summary["skipped"] == {"eyes": 0, "nose": 1, "mouth": 0}
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    assert not (tmp_path / "out" / "nose" / "00007.png").exists()


def test_the_pairs_are_deterministic(faces, tmp_path):
    raw, prepared = faces
    build_semantic_holes(params_at(), raw, prepared, tmp_path / "a")
    build_semantic_holes(params_at(), raw, prepared, tmp_path / "b")
    written = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert written and all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in written)


def test_no_face_with_any_component_is_a_clear_error(faces, tmp_path):
    raw, prepared = faces
    params = params_at()
    params = dataclasses.replace(params, holes=dataclasses.replace(params.holes, semantic=dataclasses.replace(
        params.holes.semantic, components={"ears": ["l_ear", "r_ear"]})))
    with pytest.raises(UserError, match="no test face has any of their parts annotated"):
        build_semantic_holes(params, raw, prepared, tmp_path / "out")


def test_a_component_of_unknown_parts_is_a_params_error():
    problems: list[str] = []
    build_section({"margin": 0.05, "components": {"eyes": ["l_eye", "left_eye"]}}, SemanticHoles,
                  "holes.semantic", problems)
    assert problems == ["holes.semantic.components.eyes[1]: 'left_eye' is not allowed; choose from: "
                        + ", ".join(FOREGROUND_PARTS)]


# ------------------------------------------------------------------ the micro pipeline


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2)[region].mean()
    return 100.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


@pytest.mark.e2e
def test_every_method_fills_every_component_pair(micro_pipeline):
    pairs = read_csv(micro_pipeline / "data" / "holes_semantic" / "test_pairs.csv")
    assert {pair["bin"] for pair in pairs} == {"eyes", "nose", "mouth"}
    params = load_params(micro_pipeline / "params.yaml")
    for method in params.methods:
        for pair in pairs:
            output = files.load_image_rgb(micro_pipeline / "data/predictions" / method / "components" / pair["mask"])
            truth = files.load_image_rgb(micro_pipeline / "data/prepared/images" / f"{pair['image_id']}.png")
            hole = files.load_mask(micro_pipeline / "data/holes_semantic" / pair["mask"])
            assert np.array_equal(output[~hole], truth[~hole]), f"{method} changed known pixels"


@pytest.mark.e2e
def test_table6_matches_an_independent_computation(micro_pipeline):
    root = micro_pipeline
    per_image = pd.read_csv(root / "reports" / "per_image_components.csv", dtype={"image_id": str})
    pairs = read_csv(root / "data" / "holes_semantic" / "test_pairs.csv")
    # Two pairs, recomputed from the PNGs: hole and foreground PSNR of Ours.
    for pair in pairs[:2]:
        output = files.load_image_rgb(root / "data/predictions/ours/components" / pair["mask"])
        truth = files.load_image_rgb(root / "data/prepared/images" / f"{pair['image_id']}.png")
        hole = files.load_mask(root / "data/holes_semantic" / pair["mask"])
        foreground = files.load_mask(root / "data/foreground" / f"{pair['image_id']}.png")
        row = per_image[(per_image["method"] == "ours") & (per_image["image_id"] == pair["image_id"])
                        & (per_image["bin"] == pair["bin"])]
        assert len(row) == 1
        assert row["hole/psnr"].item() == pytest.approx(psnr(output, truth, hole), abs=1e-9)
        assert row["foreground/psnr"].item() == pytest.approx(psnr(output, truth, foreground), abs=1e-9)
    table6 = pd.read_csv(root / "reports" / "tables" / "table6_components.csv")
    assert list(table6["Component"].unique()) == ["eyes", "nose", "mouth"]
    for method, display in (("ours", "Ours"), ("gc", "GC")):
        for component in ("eyes", "mouth"):
            rows = per_image[(per_image["method"] == method) & (per_image["bin"] == component)]
            cell = table6[(table6["Method"] == display) & (table6["Component"] == component)]
            assert cell["Pairs"].item() == len(rows)
            assert cell["Hole PSNR ↑"].item() == pytest.approx(rows["hole/psnr"].clip(upper=100).mean())
            assert cell["Foreground SSIM ↑"].item() == pytest.approx(rows["foreground/ssim"].mean())
            assert cell["Hole PSNR ↑ ci_low"].item() <= cell["Hole PSNR ↑"].item() <= cell["Hole PSNR ↑ ci_high"].item()
            assert math.isnan(cell["Hole LPIPS ↓"].item()), "offline: LPIPS is n/a"
    paired = pd.read_csv(root / "reports" / "tables" / "table6_paired.csv")
    assert set(paired["Component"]) == {"eyes", "nose", "mouth"} and set(paired["Region"]) == {"hole", "foreground"}
    ours, gc = (per_image[(per_image["method"] == m) & (per_image["bin"] == "nose")].set_index("image_id")
                for m in ("ours", "gc"))
    difference = (ours["hole/psnr"].clip(upper=100) - gc["hole/psnr"].clip(upper=100)).mean()
    row = paired[(paired["Ours vs"] == "GC") & (paired["Component"] == "nose") & (paired["Region"] == "hole")
                 & (paired["Metric"] == "PSNR ↑")]
    assert row["Ours − other"].item() == pytest.approx(difference)
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert metrics["table6_components"]["ours"]["nose"]["hole/psnr"] == pytest.approx(
        per_image[(per_image["method"] == "ours") & (per_image["bin"] == "nose")]["hole/psnr"].clip(upper=100).mean())
    report = (root / "reports" / "report.md").read_text()
    assert "### Table 6: whole facial components hidden" in report and "figures/fig6_components.png" in report
    assert (root / "reports" / "figures" / "fig6_components.png").is_file()
    image = Image.open(root / "reports" / "figures" / "fig6_components.png")
    assert image.width > image.height  # one row per component, a column per method


def trainset_folder(tmp_path, faces):
    """The two faces as training faces: prepared images, foregrounds, a one-mask hole pool (a band
    along the top that no component touches) and their component holes."""
    raw, prepared = faces
    (prepared / "images").mkdir()
    foreground, holes = tmp_path / "foreground", tmp_path / "holes"
    (holes / "train").mkdir(parents=True)
    foreground.mkdir()
    for name in ("00003", "00007"):
        files.save_png(prepared / "images" / f"{name}.png", np.full((SIZE, SIZE, 3), 128, np.uint8))
        files.save_mask(foreground / f"{name}.png", np.ones((SIZE, SIZE), bool))
    band = np.zeros((SIZE, SIZE), bool)
    band[:2, :] = True
    files.save_mask(holes / "train" / "band.png", band)
    (holes / "masks.csv").write_text('split,mask,hole_ratio,bin\ntrain,train/band.png,0.0625,"(0.01,0.1]"\n')
    build_semantic_holes(params_at(), raw, prepared, tmp_path / "semantic")
    return prepared, foreground, holes, tmp_path / "semantic"


def test_train_mix_draws_the_faces_own_components(faces, tmp_path):
    import torch

    from fgi.data.dataset import TrainSet

    prepared, foreground, holes, semantic = trainset_folder(tmp_path, faces)
    rows = read_csv(semantic / "train_masks.csv")
    assert [(row["image_id"], row["bin"]) for row in rows] == [
        ("00003", "eyes"), ("00003", "nose"), ("00003", "mouth"), ("00007", "eyes"), ("00007", "mouth")]
    own = {name: [files.load_mask(semantic / row["mask"]) for row in rows if row["image_id"] == name]
           for name in ("00003", "00007")}

    torch.manual_seed(0)
    always = TrainSet(prepared, foreground, holes, components=semantic, mix=1.0)
    for index, name in enumerate(always.ids):
        drawn = [always[index][1][0].numpy() > 0.5 for _ in range(12)]
        assert all(any(np.array_equal(hole, mask) for mask in own[name]) for hole in drawn), name
        assert len({hole.tobytes() for hole in drawn}) == len(own[name]), "every component is drawn"

    torch.manual_seed(0)
    mixed = TrainSet(prepared, foreground, holes, augment=False, components=semantic, mix=0.5)
    kinds = [bool((mixed[0][1][0].numpy() > 0.5)[2:].any()) for _ in range(200)]  # a component lies below the band
    assert 0.4 < np.mean(kinds) < 0.6

    # mix 0 takes no extra draw: the same holes as a TrainSet without components, seed for seed.
    torch.manual_seed(1)
    off = [TrainSet(prepared, foreground, holes, components=semantic, mix=0.0)[1][1] for _ in range(8)]
    torch.manual_seed(1)
    plain = [TrainSet(prepared, foreground, holes)[1][1] for _ in range(8)]
    assert all(torch.equal(a, b) for a, b in zip(off, plain))


def test_train_mix_without_the_component_holes_is_a_clear_error(faces, tmp_path):
    from fgi.data.dataset import TrainSet

    prepared, foreground, holes, _ = trainset_folder(tmp_path, faces)
    with pytest.raises(UserError, match=r"holes.train_mix is 0.5, but .*train_masks.csv is missing"):
        TrainSet(prepared, foreground, holes, components=tmp_path / "nowhere", mix=0.5)
