"""Every term of every objective at the points that define it, on tensors the test makes.

`tests/test_losses.py` pins each loss function by hand; these tests pin how each method's
`Objective.step` wires them: what it compares the prediction with, and which way round its
adversary scores. The generator is replaced by one whose prediction the test sets, and the
discriminator by a judge that scores the real batch and everything else with values the test
sets; each then runs the method's real `step`.

* Reconstruction and perceptual terms are zero when the prediction is the ground truth, and
  positive when it is the masked input.
* A foreground term does not move when only background pixels move, and is zero without a
  foreground.
* The discriminator's loss is lower when it scores real above fake than the other way round
  (WGAN critic, BCE and hinge alike); the generator's adversarial term is lower when its fills
  are scored real.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

import pytest
import torch
from torch import nn

from fgi import methods
from fgi.config import load_params, method_config
from fgi.methods.base import make_objective
from fgi.methods.vgg import VGG16Features

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
SIZE = 32
# Each method's reconstruction and perceptual terms, by the names its step logs them under.
RECONSTRUCTION = {
    "ours": ("g/cF_eq1", "g/F_eq2", "g/pF_eq3", "g/base_swgan"),
    "ce": ("g/rec",),
    "pconv": ("g/valid", "g/hole", "g/perceptual", "g/style"),
    "gc": ("g/l1",),
    "lama": ("g/l1", "g/resnet_pl"),
}
# PConv's L_valid and LaMa's L1 (weight_missing 0): the known pixels only.
KNOWN_ONLY = {"pconv": ("g/valid",), "lama": ("g/l1",)}
ADVERSARIAL = {"ours": ("g/adv_eq4", "d/wgan"), "ce": ("g/adv", "d/bce"), "gc": ("g/adv", "d/hinge"),
               "lama": ("g/adv", "d/total")}
# Discriminators that see images in [0, 1] and return (patch logits, features) (LaMa's, as released).
PATCH_DISCRIMINATORS = {"lama"}


class Fixed(nn.Module):
    """A generator that predicts `output` (gradients reach its one weight, so the step runs)."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.output = output

    def forward(self, masked, hole, stages: bool = False):
        out = self.output + 0 * self.weight
        return (out, out) if stages else out  # GC: coarse and refined alike


class Judge(nn.Module):
    """A discriminator scoring the real batch `real_score` and any other image `fake_score`."""

    def __init__(self, real: torch.Tensor, real_score: float, fake_score: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.real, self.real_score, self.fake_score = real, real_score, fake_score

    def forward(self, images, hole=None):
        is_real = (images - self.real).flatten(1).abs().amax(dim=1) < 1e-6  # (N,)
        score = torch.where(is_real, torch.tensor(self.real_score), torch.tensor(self.fake_score))
        return (score + 0 * self.weight).view(-1, 1)  # (N, 1): every loss here averages its scores


class PatchJudge(Judge):
    """A Judge for a discriminator of patches with features: every patch of an image gets its
    score, and the image itself is its one feature map. The scores depend on the images (by 0 x
    their sum) so that an R1 penalty can differentiate them: its gradient is zero."""

    def forward(self, images):
        score = super().forward(images).view(-1, 1, 1, 1) + 0 * images.sum()
        return score.expand(-1, 1, *images.shape[-2:]), [images]


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two images in [-1, 1], a square hole, and a foreground disc that overlaps it."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, SIZE, SIZE, generator=generator) * 2 - 1
    hole = torch.zeros(2, 1, SIZE, SIZE)
    hole[..., 8:20, 10:24] = 1
    rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    fg_mask = (((rows - 14) ** 2 + (cols - 16) ** 2) < 100).float().expand(2, 1, SIZE, SIZE).clone()
    return image, hole, fg_mask


# Released weights of terms the demo profile turns off, so that every term is computed here.
RELEASED = {"lama": {"w_resnet_pl": 30.0}}


def terms(name: str, prediction: torch.Tensor, image, hole, fg_mask, real_score: float = 1.0,
          fake_score: float = -1.0) -> dict[str, float]:
    """The terms of one real step of method `name` with the prediction and the scores set."""
    cfg = dataclasses.replace(method_config(PARAMS, name), **RELEASED.get(name, {}))
    torch.manual_seed(0)
    objective = make_objective(name, cfg, SIZE, vgg=lambda: VGG16Features(
        getattr(cfg, "vgg_layers", ("pool1",)), weights=None, seed=0))
    objective.generator = Fixed(prediction)
    if name in PATCH_DISCRIMINATORS:
        objective.discriminator = PatchJudge((image + 1) / 2, real_score, fake_score)
    elif objective.discriminator is not None:
        objective.discriminator = Judge(image, real_score, fake_score)
    return {key: float(value.detach()) for key, value in objective.step(image, hole, fg_mask).items()}


@pytest.mark.parametrize("name", RECONSTRUCTION)
def test_reconstruction_terms_vanish_at_the_ground_truth_and_not_at_the_input(name):
    image, hole, fg_mask = batch()
    exact = terms(name, image.clone(), image, hole, fg_mask)
    masked = terms(name, image * (1 - hole), image, hole, fg_mask)
    for key in RECONSTRUCTION[name]:
        assert exact[key] == pytest.approx(0.0, abs=1e-6), f"{name} {key} at the ground truth"
        if key not in KNOWN_ONLY.get(name, ()):  # the masked input is exact outside the hole
            assert masked[key] > 1e-4, f"{name} {key} at the masked input"


def test_pconv_splits_its_pixel_loss_between_the_hole_and_the_known_pixels():
    image, hole, fg_mask = batch()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(3))
    known_moved = terms("pconv", image + noise * (1 - hole), image, hole, fg_mask)
    hole_moved = terms("pconv", image + noise * hole, image, hole, fg_mask)
    assert known_moved["g/valid"] > 1e-3 and known_moved["g/hole"] == 0.0
    assert hole_moved["g/hole"] > 1e-3 and hole_moved["g/valid"] == 0.0


def test_lama_l1_reads_the_known_pixels_only_and_feature_matching_the_discriminators_features():
    """weight_missing 0: a prediction wrong only in the hole has no L1; feature matching is the
    MSE between the discriminator's features of the prediction and of the image, here the
    images themselves in [0, 1] (PatchJudge)."""
    image, hole, fg_mask = batch()
    cfg = method_config(PARAMS, "lama")
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(4))
    hole_moved = terms("lama", image + noise * hole, image, hole, fg_mask)
    known_moved = terms("lama", image + noise * (1 - hole), image, hole, fg_mask)
    assert hole_moved["g/l1"] == 0.0 and known_moved["g/l1"] > 1e-3
    expected_l1 = cfg.w_l1_known * ((noise * (1 - hole)).abs() / 2).mean()
    assert known_moved["g/l1"] == pytest.approx(float(expected_l1), rel=1e-5)
    expected_fm = cfg.w_fm * ((noise * hole / 2) ** 2).mean()
    assert hole_moved["g/fm"] == pytest.approx(float(expected_fm), rel=1e-5)


def test_lama_r1_is_the_squared_gradient_norm_at_the_real_images():
    from fgi.methods.lama import losses as lama_losses
    real = torch.rand(2, 3, 8, 8, requires_grad=True)
    slope = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    logits = (real * slope).sum(dim=(1, 2, 3)).view(2, 1, 1, 1) ** 2 / 2   # d/dx = (x . slope) slope
    gradient = (real * slope).sum(dim=(1, 2, 3)).view(2, 1, 1, 1) * slope
    expected = gradient.flatten(1).pow(2).sum(1).mean()
    assert float(lama_losses.r1_penalty(logits, real).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_lama_fakes_count_as_fake_in_the_hole_and_as_real_outside_it():
    """mask_as_fake_target: outside the hole a prediction is the image's own pixels."""
    from fgi.methods.lama import losses as lama_losses
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1
    zero = torch.zeros(1, 1, 4, 4)
    called_fake = torch.full((1, 1, 4, 4), -3.0)
    loss = lama_losses.discriminator_loss(zero, called_fake, hole, torch.tensor(0.0), 0.001)
    softplus = torch.nn.functional.softplus
    expected = softplus(torch.tensor(0.0)) + (softplus(torch.tensor(-3.0)) + softplus(torch.tensor(3.0))) / 2
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_the_learned_methods_are_the_ones_pinned_here():
    learned = {name for name in PARAMS.methods if methods.get(name).learned}
    assert learned == set(RECONSTRUCTION), "a learned method whose terms no test pins"
    assert {name for name in learned if methods.get(name).discriminator} == set(ADVERSARIAL)


def test_ours_foreground_terms_see_only_the_foreground():
    image, hole, fg_mask = batch()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    exact = terms("ours", image.clone(), image, hole, fg_mask)
    background_moved = terms("ours", image + noise * (1 - fg_mask), image, hole, fg_mask)
    foreground_moved = terms("ours", image + noise * fg_mask, image, hole, fg_mask)
    for key in ("g/cF_eq1", "g/F_eq2"):  # pixel terms: exactly blind to the background
        assert background_moved[key] == exact[key] == 0.0, key
        assert foreground_moved[key] > 1e-3, key
    # The perceptual term reads VGG features, whose receptive field crosses the mask's edge, so its
    # defining property is the empty foreground: no foreground, nothing to compare.
    nowhere = terms("ours", image + noise, image, hole, torch.zeros_like(fg_mask))
    for key in ("g/cF_eq1", "g/F_eq2", "g/pF_eq3"):
        assert nowhere[key] == 0.0, key
    assert nowhere["g/base_swgan"] > 1e-4, "S-WGAN's full-image term is the one that sees the background"


def test_pconv_total_variation_reads_the_composite_only():
    image, hole, fg_mask = batch()
    flat = torch.zeros_like(image)
    assert terms("pconv", flat, flat, hole, fg_mask)["g/tv"] == 0.0, "a constant image has no variation"
    outside = torch.randn(image.shape, generator=torch.Generator().manual_seed(2)) * (1 - hole)
    assert terms("pconv", image + outside, image, hole, fg_mask)["g/tv"] == pytest.approx(
        terms("pconv", image.clone(), image, hole, fg_mask)["g/tv"]), "known pixels come from the image"


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_the_discriminator_loss_is_lower_when_real_scores_above_fake(name):
    image, hole, fg_mask = batch()
    prediction = image * (1 - hole)  # its composite differs from the real batch
    _, discriminator_term = ADVERSARIAL[name]
    right = terms(name, prediction, image, hole, fg_mask, real_score=1.0, fake_score=-1.0)
    upside_down = terms(name, prediction, image, hole, fg_mask, real_score=-1.0, fake_score=1.0)
    assert right[discriminator_term] < upside_down[discriminator_term]


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_the_generator_adversarial_term_is_lower_when_its_fills_pass_as_real(name):
    image, hole, fg_mask = batch()
    prediction = image * (1 - hole)
    generator_term, _ = ADVERSARIAL[name]
    fooled = terms(name, prediction, image, hole, fg_mask, fake_score=1.0)
    caught = terms(name, prediction, image, hole, fg_mask, fake_score=-1.0)
    assert fooled[generator_term] < caught[generator_term]
