"""Make tests/golden/peer_metrics.npz with LaMa's evaluator code. Run by hand, with the clone:

    FGI_LAMA_RELEASE=/path/to/lama .venv/bin/python tests/golden/make_peer_metrics.py     # ~10 s

(FGI_LAMA_RELEASE: a clone of advimman/lama, imported as tests/test_peer_metrics.py imports it.) The fixture
lets tests/test_peer_metrics.py compare our metrics with LaMa's definitions in every run, without the clone:

* inputs: three 32² pairs, synthetic faces with doodle holes (the evaluate benchmark's `make_jobs`), each
  hole filled by scikit-image's biharmonic inpainting and composited, as a method's output is (stored
  inside the hole only, `prediction_in_hole`: outside it the prediction is the truth);
* LaMa's SSIMScore on them, as the release runs it (float32) and in float64 (`lama_ssim`): the values it
  reports, and its SSIM map averaged inside the 5-px border and over the hole inside it;
* LaMa's LPIPSScore with VGG16 seeded by name (`test_golden.golden_values`, "lpips-vgg16") and its own
  linear layers (models/lpips_models/vgg.pth; the meta keeps that file's sha256);
* LaMa's `calculate_frechet_distance` of two sets of 16 features (2 x 2 x 3 images, the pixels / 255);
* LaMa's InpaintingEvaluator area bin of every hole size of a 20 x 20 mask (the first k pixels), and
  the bins' names.

Regenerate when the inputs' layout changes or to move to another release commit, never to make a failing
comparison pass: a failure means our metric departs from LaMa's definition.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # tests/ (the test modules), the repository

import test_peer_metrics as peer  # noqa: E402

PAIRS, SIZE, SEED_FEATURES, FEATURE_SETS, BIN_SIDE = 3, 32, 2, 16, 20


def inputs() -> dict[str, np.ndarray]:
    """Tiny real-ish pairs: truth, prediction (uint8 (N, S, S, 3)), hole (uint8 (N, S, S), 1 = hole); feature
    sets for the Fréchet distance; the 20 x 20 holes of every size."""
    from benchmarks.evaluate import make_jobs
    from fgi import files

    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(Path(tmp), PAIRS, SIZE)
        truth = np.stack([files.load_image_rgb(job["truth"]) for job in jobs])
        hole = np.stack([files.load_mask(job["hole"]) for job in jobs])
    filled = np.stack([inpaint_biharmonic(t, h, channel_axis=-1) for t, h in zip(truth, hole)])  # [0, 1] floats
    prediction = np.where(hole[..., None], np.round(filled * 255).clip(0, 255), truth).astype(np.uint8)
    rng = np.random.default_rng(SEED_FEATURES)
    predicted, target = (rng.integers(0, 256, (FEATURE_SETS, 2, 2, 3), dtype=np.uint8) for _ in range(2))
    return {"truth": truth, "prediction": prediction, "hole": hole.astype(np.uint8),
            "fid/predicted": predicted, "fid/target": target, "bins/side": np.array(BIN_SIDE)}


def stored(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prediction kept inside the hole only (0 elsewhere: outside it is the truth), which compresses."""
    arrays = dict(arrays)
    arrays["prediction_in_hole"] = arrays.pop("prediction") * arrays["hole"][..., None]
    return arrays


def lama_values(lama, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What LaMa's code computes on the fixture's inputs (numbers only; the bins' names aside)."""
    truth, prediction, hole = arrays["truth"], arrays["prediction"], arrays["hole"].astype(bool)
    values = {}
    reported, maps = peer.lama_ssim(lama, prediction, truth)
    values["lama32/ssim"], values["lama32/ssim_interior"] = reported, peer.interior_means(maps)
    reported, maps = peer.lama_ssim(lama, prediction, truth, float64=True)
    values["lama64/ssim"] = reported
    values["lama64/ssim_interior"] = peer.interior_means(maps)
    values["lama64/ssim_hole_interior"] = peer.interior_means(maps, hole)
    with torch.no_grad():
        lpips = peer.lama_lpips(lama, peer.vgg16_features())(peer.lama_floats(prediction), peer.lama_floats(truth))
    values["lama32/lpips"] = lpips.double().numpy()
    features = [peer.lama_floats(arrays[key]).flatten(1).numpy() for key in ("fid/predicted", "fid/target")]
    values["lama/frechet"] = np.array(lama.scores.calculate_frechet_distance(*features))
    values["bins/lama"] = peer.lama_area_bins(lama, peer.every_hole_size(int(arrays["bins/side"])))[0].astype(np.int8)
    return values


def main() -> None:
    root = Path(peer.RELEASE)
    lama = peer.import_evaluator(root)
    arrays = inputs()
    arrays.update(lama_values(lama, arrays))
    side = int(arrays["bins/side"])
    arrays["bins/names"] = np.array(peer.lama_area_bins(lama, np.zeros((1, side, side), bool))[1])
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    meta = {"made_by": "tests/golden/make_peer_metrics.py", "commits": {"advimman/lama": commit},
            "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                         "machine": platform.machine()},
            "pairs": PAIRS, "size": SIZE, "seeded_networks": [peer.LPIPS_VGG16],
            "lpips_linear_sha256": peer.sha256(root / "models" / "lpips_models" / "vgg.pth")}
    path = HERE / "peer_metrics.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta, indent=1)), **stored(arrays))
    print(f"{path}: {path.stat().st_size / 1024:.1f} KB, {len(arrays)} arrays")


if __name__ == "__main__":
    main()
