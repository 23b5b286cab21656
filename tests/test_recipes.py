"""The training recipes as released: Ours's two readings, PConv's fine-tuning phase, CE's rates."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fgi.config import ParamsError, check_sections, load_params, method_config, parse_params
from fgi.methods.vgg import VGG16Features
from fgi.methods.base import make_objective

from conftest import REPO

PROFILES = [REPO / "params.yaml", REPO / "configs" / "paper.yaml", REPO / "tests" / "micro_params.yaml"]
SIZE = 32


def _section(name: str, **changes):
    cfg = method_config(load_params(REPO / "params.yaml"), name)
    return dataclasses.replace(cfg, **changes)


def _objective(name: str, **changes):
    torch.manual_seed(0)
    cfg = _section(name, **changes)
    return make_objective(name, cfg, SIZE, vgg=lambda: VGG16Features(cfg.vgg_layers, weights=None, seed=0))


def _batch():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((2, 3, SIZE, SIZE), generator=generator) * 2 - 1
    hole = torch.zeros(2, 1, SIZE, SIZE)
    hole[..., 8:24, 4:28] = 1
    fg_mask = torch.zeros(2, 1, SIZE, SIZE)
    fg_mask[..., :, :16] = 1  # left half: foreground; right half: background
    return image, hole, fg_mask


@pytest.mark.parametrize("base_loss, background_gradient", [("none", False), ("swgan", True)])
def test_ours_readings_differ_exactly_in_the_background(base_loss, background_gradient):
    """Literal Eq. 1-2 give the generator no gradient at background pixels; `swgan` adds [15]'s
    full-image perceptual term, which does. WGAN and Eq. 3 are off here: the critic sees the
    whole composite, and Eq. 3's VGG windows reach across the foreground's edge."""
    objective = _objective("ours", base_loss=base_loss, w_adv=0.0, w_pf=0.0)
    image, hole, fg_mask = _batch()
    prediction = torch.zeros_like(image, requires_grad=True)
    captured = {}

    def generator(masked, hole_):
        captured["prediction"] = prediction
        return prediction
    objective.generator.forward = generator
    objective._update = lambda which, loss: captured.setdefault(which, loss)
    terms = objective.step(image, hole, fg_mask)
    grad, = torch.autograd.grad(captured["generator"], prediction)
    background = grad[..., 16:].abs().sum()
    foreground = grad[..., :16].abs().sum()
    assert foreground > 0
    assert (background > 0) == background_gradient
    assert ("g/base_swgan" in terms) == background_gradient


def test_pconv_finetuning_freezes_the_encoder_batchnorm_and_lowers_the_lr():
    objective = _objective("pconv", finetune_share=0.5, lr_finetune=5e-5)
    image, hole, fg_mask = _batch()
    assert objective.finetune_start(10) == 5
    encoder_norms = [m for m in objective.generator.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    decoder_norms = [m for m in objective.generator.decoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert encoder_norms and decoder_norms

    def snapshot(modules):
        return [t.detach().clone() for m in modules for t in (m.weight, m.bias, m.running_mean)]

    objective.generator.train()
    objective.schedule(4, 10)  # initial phase: every BatchNorm learns and tracks statistics
    before = snapshot(encoder_norms)
    objective.step(image, hole, fg_mask)
    assert all(not torch.equal(a, b) for a, b in zip(before, snapshot(encoder_norms)))
    assert [g["lr"] for g in objective.optimizers["generator"].param_groups] == [2e-4, 2e-4]

    objective.schedule(5, 10)  # fine-tuning: encoder BatchNorm frozen, the rest at lr_finetune
    before_encoder, before_decoder = snapshot(encoder_norms), snapshot(decoder_norms)
    objective.step(image, hole, fg_mask)
    assert all(torch.equal(a, b) for a, b in zip(before_encoder, snapshot(encoder_norms)))
    assert all(not torch.equal(a, b) for a, b in zip(before_decoder, snapshot(decoder_norms)))
    assert [g["lr"] for g in objective.optimizers["generator"].param_groups] == [5e-5, 0.0]
    assert not any(m.training for m in encoder_norms) and all(m.training for m in decoder_norms)


def test_pconv_without_finetuning_share_has_one_phase():
    objective = _objective("pconv", finetune_share=0.0)
    assert objective.finetune_start(150) == 150
    objective.schedule(149, 150)
    assert not objective.finetuning


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_ce_generator_trains_at_ten_times_the_discriminator_rate(profile):
    """Pathak et al.'s released training scripts: lr_G = 10 lr_D whenever 0 < w_rec < 1."""
    ce = method_config(load_params(profile), "ce")
    assert 0 < ce.w_rec < 1
    assert ce.lr_g == pytest.approx(10 * ce.lr_d)


@pytest.mark.parametrize("key, value, message", [
    ("base_loss", "s-wgan", "models.ours.base_loss"),
    ("w_base", -1.0, "models.ours.w_base"),
])
def test_bad_ours_reading_is_a_clear_error(key, value, message):
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"]["ours"][key] = value
    with pytest.raises(ParamsError, match=message):
        check_sections(parse_params(raw))


def test_finetune_share_of_one_is_refused():
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"]["pconv"]["finetune_share"] = 1.0
    with pytest.raises(ParamsError, match=r"models.pconv.finetune_share: 1.0 is out of range; allowed: >= 0.0 and < 1.0"):
        check_sections(parse_params(raw))
