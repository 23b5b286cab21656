"""Gated convolutions, contextual attention, DeepFill v2 generator and SN-PatchGAN."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from fgi.errors import UserError
from fgi.methods.gc.contextual_attention import (VARIANTS, ContextualAttention, align_corners_indices, diagonal_sum,
                                            resize_nearest_align_corners, same_padding)
from fgi.methods.gc.networks import GatedConv2d, GatedELU, GatedDeconv2d, GatedGenerator, SameConv2d, SNPatchGAN, dilation_rates


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def one_by_one_gated(activation) -> GatedConv2d:
    """1x1 gated conv with feature = 2x - 1 and gate = -1.5x + 0.5."""
    layer = GatedConv2d(1, 1, 1, activation=activation)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.tensor([2.0, -1.5]).view(2, 1, 1, 1))
        layer.conv.bias.copy_(torch.tensor([-1.0, 0.5]))
    return layer


X_VALUES = [-2.0, -0.5, 0.0, 0.75, 3.0]


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_gated_conv_matches_hand_computation():
    x = torch.tensor(X_VALUES).view(1, 1, 1, 5)
    out = one_by_one_gated("elu")(x).flatten().tolist()

    # ELU(z) = z for z > 0, exp(z) - 1 otherwise; the first three features are negative.
    elu = lambda z: z if z > 0 else math.exp(z) - 1  # noqa: E731
    expected = [elu(2 * v - 1) * sigmoid(-1.5 * v + 0.5) for v in X_VALUES]
    assert out == pytest.approx(expected, abs=1e-6)
    assert out[0] == pytest.approx((math.exp(-5) - 1) * sigmoid(3.5), abs=1e-6)


def test_gated_conv_without_activation_is_feature_times_gate():
    x = torch.tensor(X_VALUES).view(1, 1, 1, 5)
    out = one_by_one_gated("none")(x).flatten().tolist()
    assert out == pytest.approx([(2 * v - 1) * sigmoid(-1.5 * v + 0.5) for v in X_VALUES], abs=1e-6)


def test_gated_elu_gradients_and_inputs():
    """GatedELU's hand-written backward against autograd of the plain formula (float64), its
    inputs left untouched (they are views of the conv's output), and its float32 arithmetic
    under bfloat16 inputs."""
    torch.manual_seed(0)
    conv_out = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    conv_out[0, 0, 0, :2] = 0.0  # ELU's kink: TensorFlow's EluGrad gives 1 there
    before = conv_out.clone()
    feature, gate = (t.clone().requires_grad_() for t in conv_out.split(3, dim=1))
    assert torch.autograd.gradcheck(GatedELU.apply, (feature, gate))

    reference_feature, reference_gate = (t.clone().requires_grad_() for t in conv_out.split(3, dim=1))
    reference = torch.where(reference_feature > 0, reference_feature, reference_feature.exp() - 1)
    (reference * torch.sigmoid(reference_gate)).sum().backward()
    GatedELU.apply(feature, gate).sum().backward()
    assert torch.allclose(feature.grad, reference_feature.grad)
    assert torch.allclose(gate.grad, reference_gate.grad)

    with torch.no_grad():
        GatedELU.apply(*conv_out.split(3, dim=1))
    assert torch.equal(conv_out, before)

    small = torch.full((1, 1, 1, 1), -0.01)
    exact = (math.exp(-0.01) - 1) * sigmoid(0.0)
    bfloat16 = GatedELU.apply(small.bfloat16(), torch.zeros(1, 1, 1, 1, dtype=torch.bfloat16))
    assert bfloat16.dtype == torch.bfloat16
    assert bfloat16.item() == pytest.approx(exact, rel=2 ** -8)  # one rounding, not three


def test_gated_conv_same_padding_and_deconv_shapes():
    x = torch.randn(2, 3, 8, 12)
    assert GatedConv2d(3, 5, 3, dilation=4)(x).shape == (2, 5, 8, 12)
    assert GatedConv2d(3, 5, 5)(x).shape == (2, 5, 8, 12)
    assert GatedConv2d(3, 5, 3, stride=2)(x).shape == (2, 5, 4, 6)
    assert GatedDeconv2d(3, 4)(x).shape == (2, 4, 16, 24)


def test_same_padding_matches_tensorflow():
    # total = max((ceil(n/s) - 1)·s + (k - 1)·d + 1 - n, 0); TensorFlow puts the odd pixel after.
    assert same_padding(256, 3, 2) == (0, 1)
    assert same_padding(256, 5, 2) == (1, 2)
    assert same_padding(255, 3, 2) == (1, 1)
    assert same_padding(64, 3, 1) == (1, 1)
    assert same_padding(64, 3, 1, dilation=4) == (4, 4)


def test_strided_conv_pads_like_tensorflow_same_by_hand():
    # 3x3 all-ones kernel, stride 2, on x[r, c] = 4r + c (4x4). TF 'SAME' pads
    # 0 before and 1 after, so output (i, j) sums rows 2i..2i+2 and columns
    # 2j..2j+2 of the input, row and column 4 being zeros:
    #   (0, 0): rows 0-2, cols 0-2 → 4·3·(0+1+2) + 3·(0+1+2) = 45
    #   (0, 1): rows 0-2, cols 2-3 → 4·2·(0+1+2) + 3·(2+3)   = 39
    #   (1, 0): rows 2-3, cols 0-2 → 4·3·(2+3)   + 2·(0+1+2) = 66
    #   (1, 1): rows 2-3, cols 2-3 → 4·2·(2+3)   + 2·(2+3)   = 50
    # Symmetric padding would start at row/column -1: (0, 0) = 0+1+4+5 = 10.
    conv = SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    out = conv(x)
    assert out.flatten().tolist() == [45.0, 39.0, 66.0, 50.0]
    assert F.conv2d(x, conv.weight, stride=2, padding=1).flatten()[0].item() == 10.0


def test_gated_and_discriminator_strided_convs_pad_asymmetrically():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)

    gated = GatedConv2d(4, 3, 3, stride=2, activation="none")
    feature, gate = F.conv2d(F.pad(x, (0, 1, 0, 1)), gated.conv.weight, gated.conv.bias, stride=2).split(3, dim=1)
    torch.testing.assert_close(gated(x), feature * torch.sigmoid(gate))
    symmetric = F.conv2d(x, gated.conv.weight, gated.conv.bias, stride=2, padding=1)
    assert not torch.allclose(gated.conv(x), symmetric)

    critic = SNPatchGAN(32, width=0.25).eval()
    first = critic.features[0]  # 5x5 stride 2 with spectral norm
    with torch.no_grad():
        weight = first.weight  # the normalised weight (eval mode: fixed power-iteration vectors)
        reference = F.conv2d(F.pad(x, (1, 2, 1, 2)), weight, first.bias, stride=2)
        torch.testing.assert_close(first(x), reference)
        assert not torch.allclose(first(x), F.conv2d(x, weight, first.bias, stride=2, padding=2))

    # Every strided conv in both networks pads this way; stride-1 ones keep their symmetric padding.
    for model in (GatedGenerator(32, width=0.25), critic):
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        strided = [m for m in convs if m.stride[0] > 1]
        assert strided and all(isinstance(m, SameConv2d) and m.padding == (0, 0) for m in strided)
        for m in convs:
            if m.stride[0] == 1:
                assert m.padding[0] == m.dilation[0] * (m.kernel_size[0] - 1) // 2


def test_align_corners_nearest_indices_by_hand():
    # Source index round(i · (in - 1)/(out - 1)), halves rounded away from zero.
    assert align_corners_indices(8, 4).tolist() == [0, 2, 5, 7]  # 0, 2.33, 4.67, 7
    assert align_corners_indices(4, 3).tolist() == [0, 2, 3]  # 0, 1.5, 3 (TensorFlow's own test case)
    assert align_corners_indices(6, 3).tolist() == [0, 3, 5]  # 0, 2.5, 5: torch.round would give 2
    assert align_corners_indices(5, 1).tolist() == [0]
    # PyTorch's nearest reads floor(i · in/out) instead: 8 → 4 reads 0, 2, 4, 6.
    assert F.interpolate(torch.arange(8.0).view(1, 1, 8), size=4, mode="nearest").flatten().tolist() == [0, 2, 4, 6]


def test_align_corners_nearest_resize_2d():
    x = torch.arange(48, dtype=torch.float32).view(1, 1, 8, 6)  # x[r, c] = 6r + c
    out = resize_nearest_align_corners(x.expand(2, 3, 8, 6), (4, 3))
    # rows 0, 2, 5, 7 (8 → 4); columns 0, 3, 5 (6 → 3)
    expected = torch.tensor([[0, 3, 5], [12, 15, 17], [30, 33, 35], [42, 45, 47]], dtype=torch.float32)
    assert out.shape == (2, 3, 4, 3)
    assert torch.equal(out, expected.expand(2, 3, 4, 3))


def test_align_corners_nearest_doubling_equals_plain_nearest():
    # The released gen_deconv upsamples ×2 with align_corners=True; GatedDeconv2d
    # relies on that reading the same pixels as PyTorch's nearest mode.
    x = torch.randn(1, 2, 5, 8)
    torch.testing.assert_close(resize_nearest_align_corners(x, (10, 16)),
                               F.interpolate(x, scale_factor=2, mode="nearest"), rtol=0, atol=0)


# Contextual attention on a 32x32 feature map (16x16 for matching, rate 2).
# The hole covers feature rows/cols 4..9 (low-res cells 2..4). The hole pixels
# are pasted from foreground positions p = 1..5 (low-res), whose 3x3 windows
# span feature 0..13. Matching reads the pixels the release's align-corners
# nearest resize reads: low-res cell i reads round(i · 31/15), i.e. 2i for
# i < 8 but 2i + 1 for i >= 8, while the raw patch of cell i still starts at
# 2i - 1. So a copy of the source region 17 pixels further down-right is what
# matching sees 8 cells away, and the paste then copies from 16 pixels further.
HOLE = (slice(4, 10), slice(4, 10))
SOURCE = (slice(0, 14), slice(0, 14))
SHIFTED = (slice(17, 31), slice(17, 31))
PASTED = (slice(20, 26), slice(20, 26))  # HOLE + 16: the raw patches of the matched cells


def feature_map(seed: int, channels: int = 8, side: int = 32) -> torch.Tensor:
    return torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(seed))


def hole_map(side: int = 32) -> torch.Tensor:
    hole = torch.zeros(1, 1, side, side)
    hole[..., HOLE[0], HOLE[1]] = 1
    return hole


@pytest.mark.parametrize("fuse", [True, False])
def test_contextual_attention_copies_the_matching_known_patch(fuse):
    background = feature_map(0)
    # Foreground around the hole = the known background region shifted by 16:
    # the only background patches parallel to it lie in that known region.
    foreground = background.clone()
    foreground[..., SOURCE[0], SOURCE[1]] = background[..., SHIFTED[0], SHIFTED[1]]

    out = ContextualAttention(fuse=fuse)(foreground, background, hole_map())

    # Matching sees only every other pixel (nearest downsampling); the paste
    # must reproduce the full-resolution background, the skipped pixels included.
    expected = background[..., PASTED[0], PASTED[1]]
    torch.testing.assert_close(out[..., HOLE[0], HOLE[1]], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_contextual_attention_never_copies_patches_that_overlap_the_hole(variant):
    background = feature_map(1)
    noise = feature_map(2)[..., :14, :14]
    # The known region down-right holds a noisy copy of the region around the
    # hole; the background inside the hole matches the foreground exactly.
    background[..., SHIFTED[0], SHIFTED[1]] = background[..., SOURCE[0], SOURCE[1]] + 0.5 * noise
    foreground = background.clone()
    attention = ContextualAttention(variant=variant)

    unmasked = attention(foreground, background, torch.zeros(1, 1, 32, 32))
    masked = attention(foreground, background, hole_map())

    # Without a hole each position copies itself, the exact match, so the map
    # comes back whole (the released division by 4 halves the one-pixel border) ...
    inside = (slice(1, 31), slice(1, 31)) if variant == "released" else (slice(None), slice(None))
    torch.testing.assert_close(unmasked[..., inside[0], inside[1]], background[..., inside[0], inside[1]],
                               atol=1e-3, rtol=0)
    exact_copy = background[..., HOLE[0], HOLE[1]]
    noisy_copy = background[..., PASTED[0], PASTED[1]]
    # ... with the hole, the best match that lies wholly outside it.
    torch.testing.assert_close(masked[..., HOLE[0], HOLE[1]], noisy_copy, atol=1e-4, rtol=0)
    assert (masked[..., HOLE[0], HOLE[1]] - exact_copy).abs().mean() > 0.2


def test_contextual_attention_ignores_background_inside_a_thin_hole():
    # A one-pixel stroke at column 16 falls between the pixels that nearest
    # downsampling reads (14 and 17, see above); the layer must still treat
    # patches over it as holes.
    # Without fusing, the hole's background can change neither the weights nor
    # the copied patches. (Fusing adds the scores of neighbouring patches, hole
    # ones included, to a candidate's score before the mask, as released.)
    hole = hole_map()
    hole[..., :, 16] = 1
    background = feature_map(3)
    foreground = feature_map(4)
    scrambled = torch.where(hole.bool(), 100 * feature_map(5), background)

    corrected = ContextualAttention(fuse=False, variant="corrected")
    torch.testing.assert_close(corrected(foreground, scrambled, hole), corrected(foreground, background, hole),
                               atol=1e-5, rtol=0)
    # As released, the stroke is read with the features' nearest resize, which steps over it: the
    # patches across it stay candidates, and what lies under the stroke is copied.
    released = ContextualAttention(fuse=False, variant="released")
    assert (released(foreground, scrambled, hole) - released(foreground, background, hole)).abs().max() > 1.0


def test_released_attention_gives_every_non_candidate_exp_0_in_the_softmax():
    """Released: a non-candidate's score is zeroed, not removed, before the softmax. With a zero
    foreground every score is 0, so each of the L patches weighs 1/L and only the candidates' weights
    survive: the paste is the corrected one (weights 1/candidates) times candidates / L."""
    background = feature_map(9)
    hole = torch.ones(1, 1, 32, 32)
    hole[..., 20:, 20:] = 0  # a known corner: 5 x 5 of the 16 x 16 matching patches are candidates
    foreground = torch.zeros_like(background)
    released = ContextualAttention(fuse=False, variant="released")(foreground, background, hole)
    corrected = ContextualAttention(fuse=False, variant="corrected")(foreground, background, hole)
    inside = (slice(2, 30), slice(2, 30))  # away from the border, where the two pastes divide alike
    torch.testing.assert_close(released[..., inside[0], inside[1]],
                               corrected[..., inside[0], inside[1]] * 25 / 256, atol=1e-6, rtol=1e-5)


def test_released_attention_divides_the_paste_by_4_so_the_border_is_halved():
    features = feature_map(10)
    released = ContextualAttention(variant="released")(features, features, torch.zeros(1, 1, 32, 32))
    torch.testing.assert_close(released[..., 1:31, 1:31], features[..., 1:31, 1:31], atol=1e-4, rtol=0)
    torch.testing.assert_close(released[..., 0, 1:31], features[..., 0, 1:31] / 2, atol=1e-4, rtol=0)
    torch.testing.assert_close(released[..., 0, 0], features[..., 0, 0] / 4, atol=1e-4, rtol=0)


def test_contextual_attention_batch_matches_per_sample_and_image_resolution_hole():
    features = torch.cat([feature_map(6), feature_map(7)])  # (2, 8, 32, 32)
    feature_holes = torch.zeros(2, 1, 32, 32)
    feature_holes[0, :, 4:12, 6:14] = 1
    feature_holes[1, :, 18:30, 2:10] = 1
    image_holes = F.interpolate(feature_holes, scale_factor=4, mode="nearest")  # (2, 1, 128, 128)
    attention = ContextualAttention()

    batched = attention(features, features, image_holes)

    for i in range(2):
        single = attention(features[i:i + 1], features[i:i + 1], feature_holes[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=0)
    assert not torch.allclose(batched[0], batched[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_contextual_attention_with_no_known_patch_returns_zeros(variant):
    features = feature_map(8)
    out = ContextualAttention(variant=variant)(features, features, torch.ones(1, 1, 32, 32))
    assert torch.equal(out, torch.zeros_like(out))


def masked_batch(size: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(size)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    hole = torch.zeros(batch, 1, size, size)
    hole[0, :, size // 4: size // 2, size // 8: size // 2] = 1
    hole[1, :, size // 2:, size // 2: size - 4] = 1
    return image, image * (1 - hole), hole


@pytest.mark.parametrize("size, dilations", [(32, (2, 2, 2, 2)), (64, (2, 4, 4, 4))])
def test_generator_shapes_range_and_dilations(size, dilations):
    torch.manual_seed(0)
    generator = GatedGenerator(size, width=0.25)
    image, masked, hole = masked_batch(size)

    coarse, refined = generator.forward_stages(masked, hole)

    assert coarse.shape == refined.shape == (2, 3, size, size)
    for out in (coarse, refined):
        assert out.abs().max() <= 1
    torch.testing.assert_close(generator(masked, hole), refined)
    used = [m.conv.dilation[0] for m in generator.coarse if isinstance(m, GatedConv2d) and m.conv.dilation[0] > 1]
    assert tuple(used) == dilations == generator.dilations


def test_paper_dilations_kept_at_256():
    assert dilation_rates(256) == (2, 4, 8, 16)
    assert dilation_rates(128) == (2, 4, 8, 8)


def test_generator_gradients_reach_every_parameter():
    torch.manual_seed(0)
    generator = GatedGenerator(32, width=0.25)
    image, masked, hole = masked_batch(32)

    coarse, refined = generator.forward_stages(masked, hole)
    loss = (coarse - image).abs().mean() + (refined - image).abs().mean()
    loss.backward()

    silent = [name for name, p in generator.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_generator_matches_the_released_parameter_count_at_256():
    # (kernel, input channels, conv output channels) of every conv in the
    # released build_inpaint_net with cnum = 48; gated layers split the conv
    # output in half, so the next layer's input is half of it.
    dilated_4c = [(3, 96, 192)] * 4
    coarse = [(5, 5, 48), (3, 24, 96), (3, 48, 96), (3, 48, 192), (3, 96, 192), (3, 96, 192), *dilated_4c,
              (3, 96, 192), (3, 96, 192), (3, 96, 96), (3, 48, 96), (3, 48, 48), (3, 24, 24), (3, 12, 3)]
    conv_branch = [(5, 3, 48), (3, 24, 48), (3, 24, 96), (3, 48, 96), (3, 48, 192), (3, 96, 192), *dilated_4c]
    attention_branch = [(5, 3, 48), (3, 24, 48), (3, 24, 96), (3, 48, 192), (3, 96, 192), (3, 96, 192),
                        (3, 96, 192), (3, 96, 192)]
    merged = [(3, 192, 192), (3, 96, 192), (3, 96, 96), (3, 48, 96), (3, 48, 48), (3, 24, 24), (3, 12, 3)]
    released = sum(k * k * cin * cout + cout for k, cin, cout in coarse + conv_branch + attention_branch + merged)

    assert param_count(GatedGenerator(256)) == released == 4_052_478  # the paper: "4.1M"


@pytest.mark.parametrize("size, strides", [(32, [2, 2, 2, 1, 1, 1]), (64, [2, 2, 2, 2, 1, 1])])
def test_discriminator_shape_and_strides(size, strides):
    torch.manual_seed(0)
    critic = SNPatchGAN(size, width=0.25)
    image, _, hole = masked_batch(size)

    scores = critic(image, hole)

    assert critic.out_side == 4
    assert scores.shape == (2, 64 * 4 * 4)  # 256 · 0.25 channels on a 4x4 map
    convs = [m for m in critic.features if isinstance(m, torch.nn.Conv2d)]
    assert [conv.stride[0] for conv in convs] == strides
    assert all(parametrize.is_parametrized(conv, "weight") for conv in convs)

    scores.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_discriminator_is_invariant_to_weight_scale():
    # Spectral normalisation divides each weight by its largest singular value,
    # so scaling the raw weights leaves the output unchanged (eval mode freezes
    # the power-iteration vectors; the estimate scales with the weight).
    torch.manual_seed(0)
    critic = SNPatchGAN(32, width=0.25).eval()
    image, _, hole = masked_batch(32)
    before = critic(image, hole)
    with torch.no_grad():
        for conv in critic.features:
            if isinstance(conv, torch.nn.Conv2d):
                conv.parametrizations.weight.original.mul_(10)
    torch.testing.assert_close(critic(image, hole), before, atol=1e-5, rtol=1e-4)


def test_discriminator_parameter_count_at_256():
    channels = [4, 64, 128, 256, 256, 256, 256]
    expected = sum(25 * cin * cout + cout for cin, cout in zip(channels, channels[1:]))
    critic = SNPatchGAN(256)
    assert param_count(critic) == expected == 5_946_816
    assert critic.out_side == 4


@pytest.mark.parametrize("model", [GatedGenerator, SNPatchGAN])
def test_bad_size_or_width_is_a_user_error(model):
    with pytest.raises(UserError, match="size"):
        model(60)
    with pytest.raises(UserError, match="width"):
        model(64, width=0)


def test_generator_rejects_an_input_side_it_cannot_divide():
    generator = GatedGenerator(32, width=0.25)
    with pytest.raises(UserError, match="multiple of 8"):
        generator(torch.zeros(1, 3, 36, 36), torch.zeros(1, 1, 36, 36))


def test_diagonal_sum_is_the_release_fuse_convolution():
    """The fuse step's shifted-slice sum against the identity-kernel convolution the release runs."""
    torch.manual_seed(0)
    matrix = torch.randn(7, 5)
    for k in (1, 3, 5):
        identity = torch.eye(k).view(1, 1, k, k)
        expected = F.conv2d(matrix.view(1, 1, 7, 5), identity, padding=k // 2).view(7, 5)
        assert torch.allclose(diagonal_sum(matrix, k), expected, atol=1e-6)
    assert diagonal_sum(torch.ones(3, 3), 3).tolist() == [[2, 2, 1], [2, 3, 2], [1, 2, 2]]
