"""Gated convolutions, contextual attention, DeepFill v2 generator and SN-PatchGAN."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from fgi.errors import UserError
from fgi.models.contextual_attention import ContextualAttention
from fgi.models.gc import GatedConv2d, GatedDeconv2d, GatedGenerator, SNPatchGAN, dilation_rates


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
    out = one_by_one_gated(F.elu)(x).flatten().tolist()

    # ELU(z) = z for z > 0, exp(z) - 1 otherwise; the first three features are negative.
    elu = lambda z: z if z > 0 else math.exp(z) - 1  # noqa: E731
    expected = [elu(2 * v - 1) * sigmoid(-1.5 * v + 0.5) for v in X_VALUES]
    assert out == pytest.approx(expected, abs=1e-6)
    assert out[0] == pytest.approx((math.exp(-5) - 1) * sigmoid(3.5), abs=1e-6)


def test_gated_conv_without_activation_is_feature_times_gate():
    x = torch.tensor(X_VALUES).view(1, 1, 1, 5)
    out = one_by_one_gated(None)(x).flatten().tolist()
    assert out == pytest.approx([(2 * v - 1) * sigmoid(-1.5 * v + 0.5) for v in X_VALUES], abs=1e-6)


def test_gated_conv_same_padding_and_deconv_shapes():
    x = torch.randn(2, 3, 8, 12)
    assert GatedConv2d(3, 5, 3, dilation=4)(x).shape == (2, 5, 8, 12)
    assert GatedConv2d(3, 5, 5)(x).shape == (2, 5, 8, 12)
    assert GatedConv2d(3, 5, 3, stride=2)(x).shape == (2, 5, 4, 6)
    assert GatedDeconv2d(3, 4)(x).shape == (2, 4, 16, 24)


# Contextual attention on a 32x32 feature map (16x16 for matching, rate 2).
# The hole covers feature rows/cols 4..9 (low-res cells 2..4). The hole pixels
# are pasted from foreground positions p = 1..5 (low-res), whose 3x3 windows
# span feature 0..13; the region 16 pixels further down-right (low-res shift 8)
# lies wholly in the known part.
HOLE = (slice(4, 10), slice(4, 10))
SOURCE = (slice(0, 14), slice(0, 14))
SHIFTED = (slice(16, 30), slice(16, 30))


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

    # Matching sees only even pixels (nearest downsampling); the paste must
    # reproduce the full-resolution background, odd pixels included.
    expected = background[..., 20:26, 20:26]
    torch.testing.assert_close(out[..., HOLE[0], HOLE[1]], expected, atol=1e-5, rtol=0)


def test_contextual_attention_never_copies_patches_that_overlap_the_hole():
    background = feature_map(1)
    noise = feature_map(2)[..., :14, :14]
    # The known region down-right holds a noisy copy of the region around the
    # hole; the background inside the hole matches the foreground exactly.
    background[..., SHIFTED[0], SHIFTED[1]] = background[..., SOURCE[0], SOURCE[1]] + 0.5 * noise
    foreground = background.clone()
    attention = ContextualAttention()

    unmasked = attention(foreground, background, torch.zeros(1, 1, 32, 32))
    masked = attention(foreground, background, hole_map())

    # Without a hole each position copies itself, the exact match, so the map
    # comes back whole: the border too, which the released division by 4 halves ...
    torch.testing.assert_close(unmasked, background, atol=1e-3, rtol=0)
    exact_copy = background[..., HOLE[0], HOLE[1]]
    noisy_copy = background[..., 20:26, 20:26]
    # ... with the hole, the best match that lies wholly outside it.
    torch.testing.assert_close(masked[..., HOLE[0], HOLE[1]], noisy_copy, atol=1e-4, rtol=0)
    assert (masked[..., HOLE[0], HOLE[1]] - exact_copy).abs().mean() > 0.2


def test_contextual_attention_ignores_background_inside_a_thin_hole():
    # A one-pixel stroke at an odd column falls between the pixels that nearest
    # downsampling reads; the layer must still treat patches over it as holes.
    # Without fusing, the hole's background can change neither the weights nor
    # the copied patches. (Fusing adds the scores of neighbouring patches, hole
    # ones included, to a candidate's score before the mask, as released.)
    hole = hole_map()
    hole[..., :, 17] = 1
    background = feature_map(3)
    foreground = feature_map(4)
    scrambled = torch.where(hole.bool(), 100 * feature_map(5), background)

    attention = ContextualAttention(fuse=False)
    out = attention(foreground, background, hole)
    out_scrambled = attention(foreground, scrambled, hole)

    torch.testing.assert_close(out_scrambled, out, atol=1e-5, rtol=0)


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


def test_contextual_attention_with_no_known_patch_returns_zeros():
    features = feature_map(8)
    out = ContextualAttention()(features, features, torch.ones(1, 1, 32, 32))
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
