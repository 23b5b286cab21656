"""Loss terms against hand-computed values, and the frozen VGG16 loss network."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from fgi.methods import losses
from fgi.errors import UserError
from fgi.methods.vgg import RANDOM_INIT_PROVENANCE, VGG16Features


def grid(values, channels: int = 1) -> torch.Tensor:
    """A (1, channels, H, W) tensor from a nested list, repeated over channels."""
    return torch.tensor(values, dtype=torch.float32)[None, None].repeat(1, channels, 1, 1)


PRED = [[0.0, 1.0], [2.0, 3.0]]
REFERENCE = [[1.0, 1.0], [0.0, 0.0]]
FG = [[1.0, 1.0], [0.0, 1.0]]  # masked |reference - pred| = 1, 0, 0, 3


# --------------------------------------------------------------------------- ours, Eq. 1-3


def test_foreground_l1_hand_value():
    loss = losses.foreground_l1(grid(PRED), grid(REFERENCE), grid(FG))
    assert loss.item() == pytest.approx((1 + 0 + 0 + 3) / 4)


def test_foreground_l2_hand_value():
    loss = losses.foreground_l2(grid(PRED), grid(REFERENCE), grid(FG))
    assert loss.item() == pytest.approx((1 + 0 + 0 + 9) / 4)


def test_foreground_losses_normalise_by_height_width_channels():
    # The same difference in only one of three channels: N = H·W·C = 12.
    pred = grid(PRED, channels=3)
    pred[:, 1:] = grid(REFERENCE, channels=2)
    reference = grid(REFERENCE, channels=3)
    fg_mask = grid(FG)
    assert losses.foreground_l1(pred, reference, fg_mask).item() == pytest.approx(4 / 12)
    assert losses.foreground_l2(pred, reference, fg_mask).item() == pytest.approx(10 / 12)
    # Three channels that all differ give the single-channel value.
    same = losses.foreground_l1(grid(PRED, 3), grid(REFERENCE, 3), fg_mask)
    assert same.item() == pytest.approx(1.0)


@pytest.mark.parametrize("loss_fn", [losses.foreground_l1, losses.foreground_l2])
def test_foreground_pixel_losses_zero_cases_and_outside_ignored(loss_fn):
    pred, reference, fg_mask = grid(PRED), grid(REFERENCE), grid(FG)
    assert loss_fn(pred, reference, torch.zeros_like(fg_mask)).item() == 0
    assert loss_fn(reference, reference, fg_mask).item() == 0
    base = loss_fn(pred, reference, fg_mask).item()
    changed_outside = pred.clone()
    changed_outside[0, 0, 1, 0] = 100.0  # the one background pixel
    assert loss_fn(changed_outside, reference, fg_mask).item() == base
    changed_inside = pred.clone()
    changed_inside[0, 0, 0, 0] = 100.0
    assert loss_fn(changed_inside, reference, fg_mask).item() > base


def test_foreground_perceptual_hand_value_with_area_resized_mask():
    pred_feats = [torch.zeros(1, 1, 2, 2)]
    ref_feats = [torch.full((1, 1, 2, 2), 2.0)]
    fg_mask = torch.zeros(1, 1, 4, 4)
    fg_mask[..., :2, :2] = 1  # covers the top-left feature cell exactly
    loss = losses.foreground_perceptual(pred_feats, ref_feats, fg_mask)
    assert loss.item() == pytest.approx((1 * 2) ** 2 / 4)
    # One foreground pixel of that cell's four: mask 0.25 inside the norm.
    fg_mask.zero_()
    fg_mask[..., 0, 0] = 1
    loss = losses.foreground_perceptual(pred_feats, ref_feats, fg_mask)
    assert loss.item() == pytest.approx((0.25 * 2) ** 2 / 4)


def test_foreground_perceptual_sums_layers():
    pred_feats = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    ref_feats = [torch.ones(1, 2, 4, 4), torch.full((1, 3, 2, 2), 3.0)]
    loss = losses.foreground_perceptual(pred_feats, ref_feats, torch.ones(1, 1, 8, 8))
    assert loss.item() == pytest.approx(1.0 + 9.0)


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    return VGG16Features(("pool1", "pool2", "pool3"), seed=0)


def test_foreground_perceptual_with_vgg(vgg):
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    pred = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    fg_mask = torch.zeros(2, 1, 32, 32)
    fg_mask[..., 8:24, 8:24] = 1
    pred_feats, gt_feats = vgg(pred), vgg(gt)
    assert losses.foreground_perceptual(vgg(gt), gt_feats, fg_mask).item() == 0
    assert losses.foreground_perceptual(pred_feats, gt_feats, torch.zeros_like(fg_mask)).item() == 0
    loss = losses.foreground_perceptual(pred_feats, gt_feats, fg_mask)
    assert loss.item() > 0
    pred.requires_grad_(True)
    losses.foreground_perceptual(vgg(pred), gt_feats, fg_mask).backward()
    assert pred.grad.abs().sum() > 0


# --------------------------------------------------------------------------- ours, Eq. 4 + GP


def test_wgan_losses_hand_values():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])
    assert losses.wgan_critic_loss(real, fake).item() == pytest.approx(1.5 - 2.0)
    assert losses.wgan_generator_loss(fake).item() == pytest.approx(-1.5)


def linear_critic(direction: torch.Tensor):
    """critic(x) = Σ x·w per image: its input gradient is w everywhere."""
    return lambda images: (images * direction).flatten(1).sum(1)


def test_gradient_penalty_of_linear_critic():
    real, fake = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    unit = torch.randn(1, 3, 4, 4)
    unit = unit / unit.norm()
    zero = losses.gradient_penalty(linear_critic(unit), real, fake)
    assert zero.item() == pytest.approx(0.0, abs=1e-10)
    doubled = (2 * unit).requires_grad_(True)
    penalty = losses.gradient_penalty(linear_critic(doubled), real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(10.0 * (2 - 1) ** 2, rel=1e-5)
    # The penalty trains the critic: d/dw 10 (|w| - 1)^2 = 20 (|w| - 1) w / |w| = 10 w at |w| = 2.
    penalty.backward()
    torch.testing.assert_close(doubled.grad, 10 * doubled.detach(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- PConv


def test_pconv_pixel_losses_hand_values():
    pred, gt = grid([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(1, 1, 2, 2)
    hole = grid([[1.0, 0.0], [0.0, 0.0]])
    assert losses.pconv_hole_loss(pred, gt, hole).item() == pytest.approx(1 / 4)
    assert losses.pconv_valid_loss(pred, gt, hole).item() == pytest.approx((2 + 3 + 4) / 4)


def test_perceptual_loss_hand_value():
    feats_gt = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 2, 2)]
    feats_pred = [torch.ones(1, 2, 4, 4), torch.full((1, 4, 2, 2), -2.0)]
    feats_comp = [torch.zeros(1, 2, 4, 4), torch.full((1, 4, 2, 2), 0.5)]
    loss = losses.perceptual_loss(feats_pred, feats_comp, feats_gt)
    assert loss.item() == pytest.approx((1 + 0) + (2 + 0.5))


def test_gram_matrix_hand_value():
    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(losses.gram_matrix(feat), expected)


def test_style_loss_hand_value_and_identity():
    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    zeros = torch.zeros_like(feat)
    # |G(pred)| = [[1.25, 2.75], [2.75, 6.25]] against G(gt) = 0; comp == gt.
    assert losses.style_loss([feat], [zeros], [zeros]).item() == pytest.approx(13 / 4)
    feats = [torch.randn(2, 4, 3, 3), torch.randn(2, 8, 2, 2)]
    assert losses.style_loss(feats, feats, feats).item() == 0


def test_total_variation_counts_only_pairs_inside_dilated_hole():
    hole = grid([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])  # P = columns 2, 3, 4
    inside = grid([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])  # step between columns 2 and 3
    assert losses.total_variation_loss(inside, hole).item() == pytest.approx(1 / 6)
    # A pair with one pixel outside P does not count, on either side of P.
    straddling_left = grid([[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])  # columns 1 | 2
    assert losses.total_variation_loss(straddling_left, hole).item() == 0
    straddling_right = grid([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])  # columns 4 | 5
    assert losses.total_variation_loss(straddling_right, hole).item() == 0
    outside = grid([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # columns 0 | 1
    assert losses.total_variation_loss(outside, hole).item() == 0


def test_total_variation_both_directions():
    hole = grid([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # P = the whole 3x3
    vertical_edge = grid([[0.0, 2.0, 2.0]] * 3)  # three horizontal neighbour steps of 2
    assert losses.total_variation_loss(vertical_edge, hole).item() == pytest.approx(3 * 2 / 9)
    both = vertical_edge + vertical_edge.transpose(-1, -2)  # plus three vertical steps of 2
    assert losses.total_variation_loss(both, hole).item() == pytest.approx(6 * 2 / 9)


# --------------------------------------------------------------------------- GC, CE


def test_l1_loss_hand_value():
    assert losses.l1_loss(grid([[1.0, -2.0], [0.0, 3.0]]), torch.zeros(1, 1, 2, 2)).item() == 1.5


def test_hinge_losses_hand_values():
    d_real, d_fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert losses.hinge_discriminator_loss(d_real, d_fake).item() == pytest.approx(
        (0 + 0.5) / 2 + (0 + 1) / 2
    )
    assert losses.hinge_generator_loss(d_fake).item() == pytest.approx(1.0)


def test_masked_l2_loss_hand_values():
    pred, gt = grid([[1.0, 2.0], [3.0, 4.0]], channels=3), torch.zeros(1, 3, 2, 2)
    hole = grid([[1.0, 1.0], [0.0, 0.0]])
    assert losses.masked_l2_loss(pred, gt, hole).item() == pytest.approx(3 * (1 + 4) / (2 * 3))
    assert losses.masked_l2_loss(pred, gt, torch.zeros_like(hole)).item() == 0


def test_bce_losses_hand_values():
    zero = torch.zeros(4)
    assert losses.bce_discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.bce_generator_loss(zero).item() == pytest.approx(math.log(2))
    confident_real, confident_fake = torch.full((2,), 30.0), torch.full((2,), -30.0)
    assert losses.bce_discriminator_loss(confident_real, confident_fake).item() < 1e-12
    assert losses.bce_generator_loss(confident_fake).item() == pytest.approx(30.0, rel=1e-6)


# --------------------------------------------------------------------------- VGG16Features


def test_vgg_shapes_at_32(vgg):
    feats = vgg(torch.zeros(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]


def test_vgg_returns_layers_in_requested_order():
    net = VGG16Features(("pool2", "relu1_2"))
    feats = net(torch.zeros(1, 3, 16, 16))
    assert [tuple(f.shape) for f in feats] == [(1, 128, 4, 4), (1, 64, 16, 16)]
    assert len(net.features) == 10  # truncated after pool2 (index 9)


def test_vgg_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = VGG16Features(("relu2_2",), seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert first.provenance == RANDOM_INIT_PROVENANCE
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    again = VGG16Features(("relu2_2",), seed=0)
    other = VGG16Features(("relu2_2",), seed=1)
    assert torch.equal(first(images)[0], again(images)[0])
    assert not torch.equal(first(images)[0], other(images)[0])


def test_vgg_is_frozen_but_passes_gradients(vgg):
    assert all(not p.requires_grad for p in vgg.parameters())
    wrapper = torch.nn.Sequential(vgg)
    wrapper.train()
    assert not vgg.training
    images = torch.zeros(1, 3, 16, 16, requires_grad=True)
    sum(f.sum() for f in vgg(images)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_vgg_maps_minus_one_one_to_imagenet_normalised_input():
    net = VGG16Features(("relu1_1",))
    conv = net.features[0]
    with torch.no_grad():  # make conv1_1 pass channels 0..2 through unchanged
        conv.weight.zero_()
        conv.bias.zero_()
        for channel in range(3):
            conv.weight[channel, channel, 1, 1] = 1.0
    images = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 3, 3)
    centre = net(images)[0][0, :3, 1, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = torch.relu((torch.tensor([0.0, 0.5, 1.0]) - mean) / std)
    torch.testing.assert_close(centre, expected)


def test_vgg_loads_torchvision_state_dict(tmp_path):
    torch.manual_seed(7)
    features = make_layers(cfgs["D"])  # torchvision's vgg16 `features`, random weights
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the real file has a classifier too
    path = tmp_path / "vgg16-test.pth"
    torch.save(state, path)

    net = VGG16Features(("pool1", "pool3"), weights=path)
    assert net.provenance == "pretrained:" + hashlib.sha256(path.read_bytes()).hexdigest()
    torch.testing.assert_close(net.features[14].weight, state["features.14.weight"])
    assert len(net.features) == 17
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    random = VGG16Features(("pool1", "pool3"))
    assert not torch.equal(net(images)[1], random(images)[1])


def test_vgg_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        VGG16Features(weights=tmp_path / "missing.pth")
    with pytest.raises(UserError, match="unknown"):
        VGG16Features(("pool9",))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="does not match"):
        VGG16Features(weights=wrong)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="could not be read"):
        VGG16Features(weights=corrupt)
