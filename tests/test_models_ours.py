"""The seed paper's generator (symmetric additive skip chain) and WGAN critic."""

from __future__ import annotations

import pytest
import torch

from fgi.methods import losses
from fgi.errors import UserError
from fgi.methods.ours.networks import ForegroundGuidedGenerator, WGANCritic, num_downsamplings


def inputs(size: int, batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    hole = torch.zeros(batch, 1, size, size)
    hole[..., size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
    return image * (1 - hole), hole


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size, down", [(8, 1), (32, 3), (64, 4), (256, 6)])
def test_downsamplings_reach_a_4x4_bottleneck(size, down):
    assert num_downsamplings(size, "test") == down


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("in_channels", [3, 4])
def test_generator_output_shape_and_range(size, in_channels):
    torch.manual_seed(0)
    model = ForegroundGuidedGenerator(size, width=0.25, in_channels=in_channels)
    masked, hole = inputs(size)
    out = model(masked, hole)
    assert out.shape == (2, 3, size, size)
    assert out.min() >= -1 and out.max() <= 1
    assert out.std() > 0


def test_skip_chain_adds_mirrored_encoder_output():
    torch.manual_seed(0)
    model = ForegroundGuidedGenerator(32, width=0.25).eval()
    outputs: dict[str, torch.Tensor] = {}
    block_inputs: dict[str, torch.Tensor] = {}

    def record(name):
        def hook(module, args, output):
            block_inputs[name] = args[0]
            outputs[name] = output

        return hook

    model.stem.register_forward_hook(record("stem"))
    model.middle.register_forward_hook(record("middle"))
    model.head.register_forward_hook(record("head"))
    for i, block in enumerate(model.encoder, start=1):
        block.register_forward_hook(record(f"enc{i}"))
    depth = len(model.encoder)
    for k, block in enumerate(model.decoder):
        block.register_forward_hook(record(f"dec{depth - k}"))  # named by the level it starts at

    with torch.no_grad():
        model(*inputs(32))

    assert depth == 3
    torch.testing.assert_close(block_inputs["dec3"], outputs["middle"] + outputs["enc3"])
    torch.testing.assert_close(block_inputs["dec2"], outputs["dec3"] + outputs["enc2"])
    torch.testing.assert_close(block_inputs["dec1"], outputs["dec2"] + outputs["enc1"])
    torch.testing.assert_close(block_inputs["head"], outputs["dec1"] + outputs["stem"])
    # Added, not concatenated: each decoder block sees its mirror's channel count.
    for level in (1, 2, 3):
        assert block_inputs[f"dec{level}"].shape == outputs[f"enc{level}"].shape
    assert outputs["enc3"].shape[-2:] == (4, 4)


def test_generator_uses_the_hole_channel():
    torch.manual_seed(0)
    model = ForegroundGuidedGenerator(32, width=0.25).eval()
    masked, hole = inputs(32)
    with torch.no_grad():
        assert not torch.equal(model(masked, hole), model(masked, torch.zeros_like(hole)))


def test_generator_gradients_reach_every_parameter_and_the_input():
    torch.manual_seed(0)
    model = ForegroundGuidedGenerator(32, width=0.25)
    masked, hole = inputs(32)
    masked.requires_grad_(True)
    target = torch.zeros(2, 3, 32, 32)
    losses.foreground_l1(model(masked, hole), target, torch.ones_like(hole)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert masked.grad.abs().sum() > 0


def test_generator_rejects_bad_params_and_sizes():
    with pytest.raises(UserError, match="power of two"):
        ForegroundGuidedGenerator(48)
    with pytest.raises(UserError, match="power of two"):
        ForegroundGuidedGenerator(4)
    with pytest.raises(UserError, match="in_channels"):
        ForegroundGuidedGenerator(32, in_channels=5)
    with pytest.raises(UserError, match="width"):
        ForegroundGuidedGenerator(32, width=0)
    model = ForegroundGuidedGenerator(32, width=0.25)
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.zeros(1, 3, 36, 36), torch.zeros(1, 1, 36, 36))


def test_critic_scores_each_image_independently():
    torch.manual_seed(0)
    critic = WGANCritic(32, width=0.25)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    scores = critic(images)
    assert scores.shape == (3,)
    torch.testing.assert_close(critic(images[1:2]), scores[1:2])
    with pytest.raises(ValueError, match="32x32"):
        critic(torch.zeros(1, 3, 64, 64))


def test_critic_trains_with_gradient_penalty():
    torch.manual_seed(0)
    critic = WGANCritic(32, width=0.25)
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    loss = losses.wgan_critic_loss(critic(real), critic(fake))
    loss = loss + losses.gradient_penalty(critic, real, fake)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())


def test_paper_size_parameter_counts():
    # 256x256, width 1.0: a large symmetric-skip encoder-decoder, as in the paper.
    generator = ForegroundGuidedGenerator(256)
    critic = WGANCritic(256)
    assert 40e6 < n_params(generator) < 60e6
    assert 5e6 < n_params(critic) < 20e6
    assert generator.channels == [64, 128, 256, 512, 512, 512, 512]
