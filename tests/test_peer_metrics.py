"""Our metrics against LaMa's evaluator: where the two define a metric the same way, the numbers agree to 1e-6.

LaMa (advimman/lama) scores inpainted outputs with `saicinpainting/evaluation`: `bin/evaluate_predicts.py`
runs an `InpaintingEvaluator` with `SSIMScore`, `LPIPSScore` and `FIDScore` (losses/base_loss.py), overall
and per mask-area bin. Read against `fgi.evaluation` (docs/metrics.md, "Against LaMa's evaluator"):

* SSIM: the same 11-tap Gaussian window of σ 1.5 (scikit-image's radius, truncate 3.5 × 1.5), the same
  constants once LaMa's [0, 1] floats count as data range 1 (0.01², 0.03²), population covariances, the
  RGB channels averaged: the same SSIM map wherever the window stays inside the image. At the border
  LaMa zero-pads (F.conv2d's padding) and averages the whole map; ours drops the 5-px border (scikit-
  image's reflected padding there), as scikit-image's mean SSIM does. The interior of the map agrees; the
  reported mean does not. LaMa also runs in float32 (its inputs, a window whose weights sum to
  1 − 6.9e-8, E[x²] − μ² in float32), which moved a pixel's SSIM by up to 4e-4 and an image's
  interior mean by up to 1.6e-5 on the demo's outputs: the same definition, so it is compared here with
  LaMa's code run in float64 (its SSIM module on float64 inputs, its window made in float64).
* LPIPS: the same network (VGG16; lpips v0.1 linear layers, LaMa's models/lpips_models/vgg.pth is the
  lpips package's file byte for byte) on the same [-1, 1] input: the same number.
* FID: LaMa's Inception is pytorch-fid's FID Inception (the same blocks, resizing to 299² and scaling to
  [-1, 1]) and its Fréchet distance pytorch-fid's formula: the same number (LaMa keeps the feature mean
  in float32).
* Area bins: LaMa's offline evaluator groups images into ten left-closed deciles of the hole's area,
  [0 %, 10 %) to [90 %, 100 %]; `benchmarks.peer_metrics.area_bins` groups ours by that rule. LaMa
  computes the area in float32, so a hole of exactly 70 % or 90 % lands one bin lower there (no square
  power-of-two image can have such a hole).

What runs where:

* Every run, no clone: tests/golden/peer_metrics.npz holds tiny image pairs and what LaMa's code
  computed on them (tests/golden/make_peer_metrics.py): its SSIM map in float64 (interior and hole
  means), LPIPS on a seeded VGG16, the Fréchet distance of small feature sets, and the area bin of every
  hole size of a 20 x 20 mask. Ours must match: SSIM and LPIPS within 1e-6, the distance within
  1e-6 · max(1, |FID|), the bins exactly (but for the two float32 cases above).
* With the clone (FGI_LAMA_RELEASE, as tests/test_lama_release.py finds it; skipped without): the same
  comparisons live on other images, LaMa's FID Inception features against pytorch-fid's (bit for bit),
  and the fixture against what the clone computes now.

Seeded weights: no pretrained network is available offline, so both sides get the same VGG16 and
Inception built from `test_golden.golden_values` (a function of each parameter's name). Values from
random weights check that two computations agree; they are never an LPIPS or an FID (docs/metrics.md).
`python -m benchmarks peer_metrics` runs both evaluators on the demo's predictions and times them.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from fgi.evaluation.lpips_score import LPIPS
from fgi.evaluation.metrics import FID, SSIM_BORDER, image_metrics
from test_golden import fill
from test_lama_release import is_release_module, release_root

EVALUATOR_FILES = ("saicinpainting/evaluation/evaluator.py", "saicinpainting/evaluation/data.py",
                   "saicinpainting/evaluation/losses/base_loss.py", "saicinpainting/evaluation/losses/ssim.py",
                   "saicinpainting/evaluation/losses/lpips.py", "saicinpainting/evaluation/losses/fid/inception.py",
                   "models/lpips_models/vgg.pth")
GOLDEN = Path(__file__).resolve().parent / "golden" / "peer_metrics.npz"
TOLERANCE = 1e-6
# golden_values names of the seeded networks both sides share.
LPIPS_VGG16, FID_INCEPTION = "lpips-vgg16", "fid-inception"


# --- shared with benchmarks/peer_metrics.py and tests/golden/make_peer_metrics.py ---------------------------------


def evaluator_root() -> Path:
    """The LaMa clone (FGI_LAMA_RELEASE) with its evaluator, or a skip naming what is missing."""
    return release_root(EVALUATOR_FILES)


def import_evaluator(root: Path) -> types.SimpleNamespace:
    """LaMa's evaluation modules, imported unchanged from the clone; sys.path and sys.modules restored after.

    Two packages the imports reach are not dependencies of this project and nothing compared here calls
    them; empty modules stand in for them during the import: `pytorch_lightning` (saicinpainting/utils.py
    imports seed_everything) and `easydict` (evaluation/utils.py, for its yaml loader)."""
    stubs = {name: types.ModuleType(name) for name in ("pytorch_lightning", "easydict")}
    stubs["pytorch_lightning"].seed_everything = None
    stubs["easydict"].EasyDict = dict
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        for name in [name for name in sys.modules if is_release_module(name)]:
            patch.delitem(sys.modules, name)  # e.g. another package called `models`: restored afterwards
        for name, stub in stubs.items():
            patch.setitem(sys.modules, name, stub)
        imported = set(sys.modules)
        modules = {"evaluator": "evaluator", "data": "data", "scores": "losses.base_loss", "ssim": "losses.ssim",
                   "lpips": "losses.lpips", "inception": "losses.fid.inception"}
        try:
            return types.SimpleNamespace(root=root, **{
                name: importlib.import_module(f"saicinpainting.evaluation.{path}") for name, path in modules.items()})
        finally:
            for name in [name for name in sys.modules if is_release_module(name) and name not in imported]:
                del sys.modules[name]


def lama_floats(images: np.ndarray, dtype=np.float32) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) in [0, 1], as LaMa's `load_image` scales a PNG (float32 / 255)."""
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(dtype) / 255)


class FirstMean(TorchFunctionMode):
    """Keeps the tensor of the first `Tensor.mean` called inside it, and changes nothing.

    LaMa's SSIM returns only each image's mean: `_ssim` ends `ssim_map.mean(1).mean(1).mean(1)`. Its first
    `mean` is taken of the SSIM map itself, which is what a definition is compared on."""

    def __init__(self):
        super().__init__()
        self.tensor = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.mean and self.tensor is None:
            self.tensor = args[0]
        return func(*args, **(kwargs or {}))


def float64_window(module) -> torch.Tensor:
    """LaMa's SSIM window without its float32 cast: its own `_gaussian`, called with the size and σ its
    `_create_window` passes, under torch's float64 default (its `torch.Tensor([...])` then holds float64),
    and the outer product `_create_window` forms, one per channel."""
    with mock.patch.object(module, "_gaussian", wraps=module._gaussian) as gaussian:
        module._create_window(module.window_size, 1)
    size, sigma = gaussian.call_args.args
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        profile = module._gaussian(size, sigma)[:, None]  # (size, 1)
    finally:
        torch.set_default_dtype(default)
    return (profile @ profile.t()).expand(3, 1, size, size).contiguous()


def lama_ssim(lama, predictions: np.ndarray, truths: np.ndarray, float64: bool = False):
    """LaMa's SSIMScore on uint8 (N, H, W, 3) pairs: (its per-image values (N,), its SSIM map (N, H, W),
    averaged over the channels), float64 numpy.

    float64=False runs it as the release does: float32 inputs scaled as its loader scales them, its
    float32 window. float64=True runs the same code in float64: inputs x / 255 in float64 and
    `float64_window`. The map is the one its mean is taken of (`FirstMean`)."""
    score = lama.scores.SSIMScore()
    dtype = np.float64 if float64 else np.float32
    if float64:
        score.score.window, score.score.channel = float64_window(score.score), 3
    prediction, truth = lama_floats(predictions, dtype), lama_floats(truths, dtype)
    with torch.no_grad(), FirstMean() as first:
        values = score(prediction, truth)  # SSIMScore.forward(pred_batch, target_batch)
    assert first.tensor is not None and first.tensor.shape == prediction.shape, \
        "LaMa's SSIM no longer takes the mean of its (N, C, H, W) map first: FirstMean needs another look"
    return values.double().numpy(), first.tensor.double().mean(1).numpy()


def interior_means(maps: np.ndarray, regions: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) maps -> (N,): each map's mean over the pixels at least SSIM_BORDER from the border (and in
    `regions`, (N, H, W) bool, where given): where our SSIM counts the map."""
    inside = np.zeros(maps.shape, dtype=bool)
    inside[:, SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER] = True
    if regions is not None:
        inside &= regions
    return np.array([map_[keep].mean() if keep.any() else np.nan for map_, keep in zip(maps, inside)])


def vgg16_features(state: dict | None = None) -> nn.Sequential:
    """VGG16's convolutional part (torchvision's `features`, all LPIPS uses): from `state` (torchvision's keys,
    the weights stage's vgg16.pth) or seeded by name (`golden_values`)."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    if state is None:
        fill(features, LPIPS_VGG16)
    else:
        features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()
                                  if key.startswith("features.")})
    return features.eval()


def torchvision_state(features: nn.Sequential) -> dict[str, torch.Tensor]:
    """`features`' parameters under torchvision's VGG16 keys, as `fgi.evaluation.lpips_score.LPIPS` reads them."""
    return {f"features.{key}": value for key, value in features.state_dict().items()}


def lama_lpips(lama, features: nn.Sequential):
    """LaMa's LPIPSScore (net-lin, vgg, its own models/lpips_models/vgg.pth) with `features` as its backbone:
    the `tv.vgg16(pretrained=True)` whose `.features` it slices is answered with a copy of them."""
    def vgg16(*args, **kwargs):
        return types.SimpleNamespace(features=copy.deepcopy(features))

    with mock.patch.object(lama.lpips.tv, "vgg16", vgg16):
        return lama.scores.LPIPSScore().eval()


def fid_inception_state() -> dict[str, torch.Tensor]:
    """A state dict of pytorch-fid's FID Inception, seeded by name: the architecture built with its download
    answered by nothing (its strict load skipped), then every tensor from `golden_values`."""
    from pytorch_fid import inception

    with mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda self, *args, **kwargs: None), \
            mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: {}):
        network = inception.fid_inception_v3()
    fill(network, FID_INCEPTION)
    return network.state_dict()


def lama_fid(lama, state: dict[str, torch.Tensor]):
    """LaMa's FIDScore with `state` as the FID weights its Inception downloads (`load_state_dict_from_url`)."""
    with mock.patch.object(lama.inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        lama.scores.FIDScore._MODEL = None  # its class-wide cache: built anew, with these weights
        return lama.scores.FIDScore()


def ours_fid(state: dict[str, torch.Tensor], folder: Path) -> FID:
    """`FID.from_weights` on `state` written to a file: the loading path the evaluate stage takes."""
    path = folder / "fid_inception.pth"
    torch.save(state, path)
    return FID.from_weights(path)


def lama_area_bins(lama, holes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """LaMa's InpaintingEvaluator's grouping of (N, H, W) bool holes: (bin index per hole, bin names)."""
    dataset = [{"mask": hole[None].astype(np.float32)} for hole in holes]  # a 0/255 PNG through load_image
    groups, names = lama.evaluator.InpaintingEvaluator(dataset, scores={}, device="cpu")._get_bin_edges()
    return np.asarray(groups), list(names)


def every_hole_size(side: int) -> np.ndarray:
    """(side² + 1, side, side) bool: a hole of k pixels (the first k, row by row) for every k from 0 to side²."""
    return (np.arange(side * side)[None, :] < np.arange(side * side + 1)[:, None]).reshape(-1, side, side)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def package_lpips_weights() -> Path:
    """The linear layers our LPIPS reads: the lpips package's v0.1 vgg.pth."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"


# --- the comparisons -------------------------------------------------------------------------------------------


def ours_ssim(predictions: np.ndarray, truths: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our full and hole SSIM per pair (`image_metrics`, as the evaluate stage computes them)."""
    rows = [image_metrics(prediction, truth, {"full": np.ones(hole.shape, bool), "hole": hole})
            for prediction, truth, hole in zip(predictions, truths, holes)]
    return np.array([row["full/ssim"] for row in rows]), np.array([row["hole/ssim"] for row in rows])


def ours_lpips(predictions: np.ndarray, truths: np.ndarray, features: nn.Sequential) -> np.ndarray:
    return LPIPS(torchvision_state(features)).distances(predictions, truths, {})["full"]


def ours_frechet(predicted: np.ndarray, target: np.ndarray) -> float:
    """Our FID of two uint8 image sets with the pixels themselves (/ 255) as the features: `FID.statistics`
    and `FID.distance` without an Inception."""
    fid = FID(nn.Flatten())
    return fid.distance(fid.statistics(predicted), fid.statistics(target))


def assert_close(name: str, ours: np.ndarray, theirs: np.ndarray, tolerance: float = TOLERANCE) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    difference = float(np.nanmax(np.abs(ours - theirs)))
    print(f"{name}: max |ours − LaMa's| {difference:.2e}")  # the figures of docs/metrics.md (pytest -s)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{name}: NaN in different places"
    assert difference <= tolerance, f"{name}: ours and LaMa's differ by {difference:.2e} (> {tolerance:g})"
    return difference


def golden() -> tuple[dict[str, np.ndarray], dict]:
    """The fixture's arrays (the prediction rebuilt: its hole over the truth) and its meta."""
    with np.load(GOLDEN, allow_pickle=False) as arrays:
        arrays = dict(arrays)
    hole = arrays["hole"].astype(bool)[..., None]
    arrays["prediction"] = np.where(hole, arrays.pop("prediction_in_hole"), arrays["truth"])
    return arrays, json.loads(str(arrays.pop("meta")))


def test_golden_names_the_release_it_came_from():
    _, meta = golden()
    assert len(meta["commits"]["advimman/lama"]) == 40
    assert meta["made_by"] == "tests/golden/make_peer_metrics.py" and meta["versions"]["torch"]


def test_ssim_is_lamas_map_inside_the_border():
    """Our full and hole SSIM are LaMa's SSIM map (its code in float64) averaged over the pixels at least 5 px
    from the border, within 1e-6. Guards the window (Gaussian, σ 1.5, 11 taps), the data range, the
    covariances and the channel average; the border's exclusion guards what the map is averaged over."""
    arrays, _ = golden()
    full, hole = ours_ssim(arrays["prediction"], arrays["truth"], arrays["hole"].astype(bool))
    assert_close("SSIM inside the border", full, arrays["lama64/ssim_interior"])
    assert_close("SSIM over the hole", hole, arrays["lama64/ssim_hole_interior"])
    # LaMa's own number counts the zero-padded border too: not our definition, and visibly so.
    assert np.abs(full - arrays["lama32/ssim"]).max() > 100 * TOLERANCE


def test_lpips_is_lamas():
    """Our LPIPS equals LaMa's LPIPSScore on the same seeded VGG16 within 1e-6, and reads the same linear
    layers (the lpips package's v0.1 vgg.pth is LaMa's models/lpips_models/vgg.pth). Guards the input scaling,
    the layers' normalisation and averaging, and the package's weights."""
    arrays, meta = golden()
    assert sha256(package_lpips_weights()) == meta["lpips_linear_sha256"]
    distances = ours_lpips(arrays["prediction"], arrays["truth"], vgg16_features())
    assert_close("LPIPS (seeded VGG16)", distances, arrays["lama32/lpips"])


def test_frechet_distance_is_lamas():
    """FID.statistics and FID.distance give LaMa's calculate_frechet_distance on the same features."""
    arrays, _ = golden()
    distance = ours_frechet(arrays["fid/predicted"], arrays["fid/target"])
    assert_close("Fréchet distance", distance, arrays["lama/frechet"],
                 TOLERANCE * max(1.0, abs(float(arrays["lama/frechet"]))))


def test_area_bins_are_lamas():
    """benchmarks.peer_metrics.area_bins puts every hole size of a 20 x 20 mask in LaMa's bin, but for a
    hole of exactly 70 % or 90 %: LaMa's float32 area (0.69999999 and 0.89999998) falls one bin lower."""
    from benchmarks.peer_metrics import area_bins, bin_names

    arrays, _ = golden()
    side = int(arrays["bins/side"])
    ours, theirs = area_bins(every_hole_size(side)), arrays["bins/lama"]
    assert bin_names() == [str(name) for name in arrays["bins/names"]]
    differ = np.flatnonzero(ours != theirs) / side**2
    assert differ.tolist() == [0.7, 0.9] and (ours - theirs)[ours != theirs].tolist() == [1, 1]


# --- with the clone ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lama():
    return import_evaluator(evaluator_root())


def test_golden_is_what_the_release_computes(lama):
    """The fixture is current: the clone's code computes it again (same machine kind: to float rounding)."""
    from golden.make_peer_metrics import lama_values

    arrays, _ = golden()
    again = lama_values(lama, arrays)
    for key, value in again.items():
        assert_close(f"fixture {key}", value, arrays[key], 1e-9 if key.startswith(("lama64", "bins")) else 1e-6)


def test_same_definitions_agree_live(lama, tmp_path):
    """On other pairs than the fixture's (48², the evaluate benchmark's synthetic faces and noise-filled holes):
    SSIM inside the border and over the hole, LPIPS, and the Fréchet distance, ours against LaMa's."""
    from benchmarks.evaluate import make_jobs
    from fgi import files

    jobs = make_jobs(tmp_path, 3, 48)
    truths, predictions = (np.stack([files.load_image_rgb(job[key]) for job in jobs])
                           for key in ("truth", "prediction"))
    holes = np.stack([files.load_mask(job["hole"]) for job in jobs])
    full, hole = ours_ssim(predictions, truths, holes)
    _, maps = lama_ssim(lama, predictions, truths, float64=True)
    assert_close("SSIM inside the border (live)", full, interior_means(maps))
    assert_close("SSIM over the hole (live)", hole, interior_means(maps, holes))
    features = vgg16_features()
    with torch.no_grad():
        theirs = lama_lpips(lama, features)(lama_floats(predictions), lama_floats(truths))
    assert_close("LPIPS (live)", ours_lpips(predictions, truths, features), theirs.numpy())
    rng = np.random.default_rng(3)
    predicted, target = (rng.integers(0, 256, (20, 2, 2, 3), dtype=np.uint8) for _ in range(2))
    features = (lama_floats(images).flatten(1).numpy() for images in (predicted, target))
    assert_close("Fréchet distance (live)", ours_frechet(predicted, target),
                 lama.scores.calculate_frechet_distance(*features))


def test_fid_inception_features_are_lamas(lama, tmp_path):
    """LaMa's FID Inception and pytorch-fid's (ours) give the same pool3 features, bit for bit, with the same
    seeded weights: the same blocks, the resizing to 299² and the scaling to [-1, 1]."""
    state = fid_inception_state()
    images = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        theirs = lama_fid(lama, state)._get_activations(lama_floats(images)).numpy()
    ours = ours_fid(state, tmp_path)._features(images)
    assert_close("FID Inception features", ours, theirs, 0.0)


def test_peer_metrics_section_skips_without_the_clone(monkeypatch):
    """Without the clone the benchmark section is still written, with this file's skip reason, and times nothing."""
    import test_lama_release
    from benchmarks import peer_metrics

    monkeypatch.setattr(test_lama_release, "RELEASE", "")  # where evaluator_root looks
    section = peer_metrics.run(quick=True)
    assert section.name == "peer_metrics" and section.checks == []
    assert "skipped" in section.body and "FGI_LAMA_RELEASE" in section.body
