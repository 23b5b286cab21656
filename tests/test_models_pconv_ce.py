"""Partial-conv U-Net, Context Encoder and DCGAN discriminator: hand-computed cases and shapes."""

import pytest
import torch

from fgi.errors import UserError
from fgi.methods.ce.networks import ContextEncoder, DCGANDiscriminator
from fgi.methods.pconv.networks import PartialConv2d, PConvUNet


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ones_pconv(in_ch: int, kernel: int, padding: int, bias: float) -> PartialConv2d:
    """A float64 partial conv with all-ones weights, so hand sums are exact to 1e-6."""
    conv = PartialConv2d(in_ch, 1, kernel, padding=padding).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(bias)
    return conv


def test_partial_conv_matches_hand_computation():
    # 5x5 image with values 1..25 row by row; the 2x2 top-left corner is a hole
    # whose values (1, 2, 6, 7) must never reach the output.
    x = torch.arange(1.0, 26.0, dtype=torch.float64).view(1, 1, 5, 5)
    valid = torch.ones(1, 1, 5, 5, dtype=torch.float64)
    valid[..., :2, :2] = 0
    conv = ones_pconv(1, kernel=3, padding=1, bias=0.5)

    out, new_valid = conv(x, valid)

    out = out[0, 0]
    # (0, 0): the window holds only hole pixels and zero padding → 0, no bias.
    assert out[0, 0].item() == 0.0
    # (1, 1): known 3, 8, 11, 12, 13 (5 of 9) → 47 · 9/5 + 0.5.
    assert out[1, 1].item() == pytest.approx(47 * 9 / 5 + 0.5, abs=1e-6)
    # (3, 3): all 9 known → a plain conv: 13+14+15+18+19+20+23+24+25 + 0.5.
    assert out[3, 3].item() == pytest.approx(171 + 0.5, abs=1e-6)
    # (4, 4): padding counts as unknown; known 19, 20, 24, 25 (4 of 9) → 88 · 9/4 + 0.5.
    assert out[4, 4].item() == pytest.approx(88 * 9 / 4 + 0.5, abs=1e-6)
    # (0, 1): known 3 and 8 (2 of 9) → 11 · 9/2 + 0.5.
    assert out[0, 1].item() == pytest.approx(11 * 9 / 2 + 0.5, abs=1e-6)

    expected_valid = torch.ones(1, 1, 5, 5, dtype=torch.float64)
    expected_valid[..., 0, 0] = 0
    assert torch.equal(new_valid, expected_valid)


def test_partial_conv_per_channel_mask_by_hand():
    # 1x1 kernel over 2 channels: channel 0 is known everywhere, channel 1 only
    # at pixel (0, 0). window_size = 2, so one known channel doubles its value.
    x = torch.tensor([[[[3.0, 5.0]], [[7.0, 100.0]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    valid = torch.tensor([[[[1.0, 1.0]], [[1.0, 0.0]]]], dtype=torch.float64)
    conv = ones_pconv(2, kernel=1, padding=0, bias=1.0)

    out, new_valid = conv(x, valid)

    expected = torch.tensor([[[[3.0 + 7.0 + 1.0, 5.0 * 2 / 1 + 1.0]]]], dtype=torch.float64)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(new_valid, torch.ones(1, 1, 1, 2, dtype=torch.float64))


def test_single_channel_mask_equals_repeated_mask():
    torch.manual_seed(0)
    conv = PartialConv2d(4, 6, 3, stride=2, padding=1)
    x = torch.randn(2, 4, 8, 8)
    valid = (torch.rand(2, 1, 8, 8) > 0.5).float()

    out_single, valid_single = conv(x, valid)
    out_repeated, valid_repeated = conv(x, valid.expand(-1, 4, -1, -1))

    assert torch.allclose(out_single, out_repeated, atol=1e-5)
    assert torch.equal(valid_single, valid_repeated)


def test_partial_conv_rejects_wrong_mask_channels():
    conv = PartialConv2d(4, 6, 3, padding=1)
    with pytest.raises(ValueError, match="expected 1 or 4"):
        conv(torch.zeros(1, 4, 8, 8), torch.ones(1, 2, 8, 8))


def irregular_hole(size: int) -> torch.Tensor:
    """A filled rectangle plus a thin diagonal stroke, (1, 1, size, size), 1 = hole."""
    hole = torch.zeros(1, 1, size, size)
    hole[..., size // 4 : size // 2, size // 8 : size // 2] = 1
    for i in range(size // 2, size - 2):
        hole[..., i, i - 2 : i + 1] = 1
    return hole


def test_unet_mask_update_fills_the_hole():
    model = PConvUNet(32, width=0.25)
    hole = irregular_hole(32)
    image = torch.rand(1, 3, 32, 32) * 2 - 1

    _, valids = model.encode(image * (1 - hole), 1 - hole)

    assert len(valids) == 1 + 4  # the input plus 4 stride-2 layers (32 → 2)
    assert valids[-1].shape == (1, 1, 2, 2)
    assert valids[1].min() == 0  # one 7x7 layer does not yet close a 8x12 hole
    assert torch.equal(valids[-1], torch.ones_like(valids[-1]))
    known_fraction = [v.mean().item() for v in valids]
    assert known_fraction == sorted(known_fraction)


@pytest.mark.parametrize("size", [32, 64])
def test_unet_shape_range_and_gradients(size):
    torch.manual_seed(0)
    model = PConvUNet(size, width=0.25)
    hole = irregular_hole(size).repeat(2, 1, 1, 1)
    image = torch.rand(2, 3, size, size) * 2 - 1

    prediction = model(image * (1 - hole), hole)

    assert prediction.shape == (2, 3, size, size)
    assert prediction.abs().max() <= 1
    prediction.mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_ignores_values_inside_the_hole():
    # Every partial conv multiplies its input by the valid mask, the first layer
    # and the last (whose skip is the input image) alike, so what the masked
    # input holds inside the hole cannot matter.
    torch.manual_seed(0)
    model = PConvUNet(32, width=0.25)
    hole = irregular_hole(32)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    masked = image * (1 - hole)
    scribbled = masked + hole * torch.randn(1, 3, 32, 32) * 5

    first_clean, _ = model.encoder[0](masked, 1 - hole)
    first_scribbled, _ = model.encoder[0](scribbled, 1 - hole)
    assert torch.equal(first_clean, first_scribbled)
    assert torch.allclose(model(masked, hole), model(scribbled, hole), atol=1e-6)
    # …while a known pixel does matter.
    assert not torch.allclose(model(masked, hole), model(masked * 0.5, hole), atol=1e-6)


def test_unet_at_256_has_the_papers_order_of_parameters():
    model = PConvUNet(256, width=1.0)
    # 7 stride-2 layers (256 → 2); the paper's 8-layer 512² net has 32,859,796.
    assert len(model.encoder) == 7
    assert param_count(model) == 25_779_860
    assert param_count(PConvUNet(512)) == 32_859_796
    hole = irregular_hole(256)
    with torch.no_grad():
        prediction = model.eval()(torch.zeros(1, 3, 256, 256), hole)
    assert prediction.shape == (1, 3, 256, 256)


@pytest.mark.parametrize("bad_size", [0, 4, 48, 100])
def test_bad_sizes_are_user_errors(bad_size):
    for build in (PConvUNet, ContextEncoder, DCGANDiscriminator):
        with pytest.raises(UserError, match="data.size"):
            build(bad_size)


def test_unet_rejects_input_of_the_wrong_side():
    model = PConvUNet(32, width=0.25)
    with pytest.raises(UserError, match="multiple of 16"):
        model(torch.zeros(1, 3, 40, 40), torch.zeros(1, 1, 40, 40))


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("in_channels", [3, 4])
def test_context_encoder_shapes_and_gradients(size, in_channels):
    torch.manual_seed(0)
    model = ContextEncoder(size, width=0.25, bottleneck=64, in_channels=in_channels)
    hole = irregular_hole(size).repeat(2, 1, 1, 1)
    image = torch.rand(2, 3, size, size) * 2 - 1

    prediction = model(image * (1 - hole), hole)

    assert prediction.shape == (2, 3, size, size)
    assert prediction.abs().max() <= 1
    prediction.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_context_encoder_sees_the_hole_channel():
    torch.manual_seed(0)
    model = ContextEncoder(32, width=0.25, bottleneck=32, in_channels=4).eval()
    masked = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        without_hole = model(masked, torch.zeros(1, 1, 32, 32))
        with_hole = model(masked, irregular_hole(32))
    assert not torch.allclose(without_hole, with_hole)


def test_context_encoder_linear_bottleneck_is_the_4x4_convolution_of_the_paper():
    torch.manual_seed(0)
    model = ContextEncoder(32, width=0.25, bottleneck=24)
    channels = model.expand[0].out_features // 16
    features = torch.randn(3, channels, 4, 4, dtype=torch.float64)
    code = torch.randn(3, 24, dtype=torch.float64)
    # Conv2d(C, B, 4) on a 4x4 map, and ConvTranspose2d(B, C, 4) on a 1x1 code, with the same weights.
    to_code = model.bottleneck[1].weight.double().view(24, channels, 4, 4)
    from_code = model.expand[0].weight.double().T.reshape(24, channels, 4, 4)
    assert torch.allclose(model.bottleneck[1].double()(features.flatten(1)),
                          torch.nn.functional.conv2d(features, to_code).flatten(1))
    assert torch.allclose(model.expand[0].double()(code).view(3, channels, 4, 4),
                          torch.nn.functional.conv_transpose2d(code[:, :, None, None], from_code))


def test_context_encoder_rejects_bad_arguments():
    with pytest.raises(UserError, match="in_channels"):
        ContextEncoder(32, in_channels=5)
    with pytest.raises(UserError, match="bottleneck"):
        ContextEncoder(32, bottleneck=0)
    with pytest.raises(UserError, match="width"):
        ContextEncoder(32, width=0)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_discriminator_gives_one_logit_per_image(size):
    model = DCGANDiscriminator(size, width=0.25)
    logits = model(torch.rand(3, 3, size, size) * 2 - 1)
    assert logits.shape == (3,)
    # No sigmoid: a large head bias gives logits far outside (0, 1).
    with torch.no_grad():
        model.head.bias.fill_(50.0)
        assert (model.eval()(torch.zeros(3, 3, size, size)) > 10).all()


def test_parameter_counts_at_256():
    # Reported in the model docs; 4x4 conv bottleneck of 4000 dominates the CE.
    assert param_count(ContextEncoder(256)) == 87_841_283
    assert param_count(DCGANDiscriminator(256)) == 11_156_289


@pytest.mark.parametrize("build", [
    lambda: PConvUNet(32, width=0.25),
    lambda: ContextEncoder(32, width=0.25, bottleneck=32),
    lambda: DCGANDiscriminator(32, width=0.25),
])
def test_same_seed_same_weights(build):
    torch.manual_seed(0)
    first = build().state_dict()
    torch.manual_seed(0)
    second = build().state_dict()
    torch.manual_seed(1)
    third = build().state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)
