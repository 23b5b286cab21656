"""LPIPS: our wiring of the weights stage's VGG16 into the `lpips` package, against the package
itself loaded by hand with the same weights (which the test provides: a seeded random VGG16)."""

from __future__ import annotations

import warnings

import lpips
import numpy as np
import pytest
import torch
from torchvision.models import vgg

from fgi.errors import UserError
from fgi.evaluation.lpips_score import LPIPS


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """torchvision's VGG16 `features` at a seeded random init, saved under torchvision's keys."""
    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs["D"])  # the conv trunk of vgg16(), without its classifier
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, path)
    return path, features


def reference_model(features: torch.nn.Module) -> lpips.LPIPS:
    """The package's LPIPS-VGG with its backbone slices given `features`' modules one by one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()
    for block in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for name, module in block.named_children():
            module.load_state_dict(features[int(name)].state_dict())
    return model


def images(seed: int, count: int = 3, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_full_and_region_values_are_the_packages(vgg16_file):
    path, features = vgg16_file
    prediction, truth = images(1), images(2)
    hole = np.zeros((3, 32, 32), bool)
    hole[:, 8:20, 4:30] = True
    ours = LPIPS.from_weights(path, batch_size=2).distances(prediction, truth, {"hole": hole})

    reference = reference_model(features)
    x = torch.from_numpy(prediction).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(truth).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        full = reference(x, y).flatten().numpy()
        reference.spatial = True
        spatial = reference(x, y)[:, 0].numpy()  # (3, 32, 32)
    assert ours["full"] == pytest.approx(full, rel=1e-5)
    assert ours["hole"] == pytest.approx([spatial[i][hole[i]].mean() for i in range(3)], rel=1e-5)
    assert (ours["full"] > 0).all()


def test_identical_images_are_at_distance_zero_and_an_empty_region_is_nan(vgg16_file):
    path, _ = vgg16_file
    same = images(3, count=2)
    empty = np.zeros((2, 32, 32), bool)
    distances = LPIPS.from_weights(path).distances(same, same, {"foreground": empty})
    assert distances["full"] == pytest.approx([0.0, 0.0], abs=1e-7)
    assert np.isnan(distances["foreground"]).all()


def test_without_pretrained_weights_lpips_is_not_computed():
    assert LPIPS.from_weights(None) is None


def test_a_file_that_is_not_vgg16_names_itself(tmp_path):
    bad = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(UserError, match=f"{bad}: not torchvision's VGG16 weights"):
        LPIPS.from_weights(bad)
