"""One training step per model: its losses, its optimisers, its adversarial game.

Every objective follows the same protocol: the generator runs once per step on
the masked image; the discriminator (if any) is updated on the detached
composite; then the generator is updated on its weighted loss terms. Losses
are the functions of `fgi.losses`; weights and learning rates come from the
model's params section.

* ours  -- Jam et al.: Eq. 1 + Eq. 2 + Eq. 3 (foreground-masked) + Eq. 4 (WGAN,
           weight clipping, or WGAN-GP with `critic: wgan-gp`); with
           `base_loss: swgan` also S-WGAN's full-image perceptual term [15].
* ce    -- Pathak et al.: masked L2 (0.999) + adversarial BCE (0.001); the
           released code trains the generator at 10x the critic's rate (params).
* pconv -- Liu et al.: valid + hole + perceptual + style + TV, no discriminator;
           the last `finetune_share` of the steps at `lr_finetune` with the
           encoder's BatchNorm frozen.
* gc    -- Yu et al.: L1 on both stages + SN-PatchGAN hinge loss.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fgi import losses
from fgi.models import make_discriminator, make_generator
from fgi.models.vgg import VGG16Features


def composite(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Known pixels from the image, hole pixels from the prediction."""
    return prediction * hole + image * (1 - hole)


def unwrap(module: nn.Module) -> nn.Module:
    """The bare network inside DDP and torch.compile wrappers."""
    if isinstance(module, DistributedDataParallel):
        module = module.module
    return getattr(module, "_orig_mod", module)  # torch.compile's OptimizedModule


class Objective(abc.ABC):
    """A model's networks, optimisers and one training step."""

    uses_vgg = False

    def __init__(self, name: str, cfg: Any, size: int, vgg: Callable[[], VGG16Features] | None = None):
        self.name, self.cfg = name, cfg
        self.generator = make_generator(name, cfg, size)
        self.discriminator = make_discriminator(name, cfg, size)
        self.vgg = vgg() if self.uses_vgg and vgg is not None else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))}
        if self.discriminator is not None:
            self.optimizers["discriminator"] = torch.optim.Adam(
                self.discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))

    def to(self, device: torch.device, memory_format=torch.contiguous_format) -> "Objective":
        for net in (self.generator, self.discriminator, self.vgg):
            if net is not None:
                net.to(device=device, memory_format=memory_format)
        return self

    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets

    def _update(self, which: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[which]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def schedule(self, step: int, total: int) -> None:
        """Set the training phase for step `step` (0-based) of `total`; called before every step,
        so a resumed run lands in the right phase. Most models have one phase."""

    @abc.abstractmethod
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext) -> dict[str, torch.Tensor]:
        """One update of every network; returns the loss terms."""


class OursObjective(Objective):
    uses_vgg = True

    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg, critic = self.cfg, self.discriminator
        masked = image * (1 - hole)
        with autocast():
            prediction = self.generator(masked, hole)  # (N, 3, H, W) in [-1, 1]
            filled = composite(prediction, image, hole)
        for _ in range(cfg.n_critic):
            with autocast():
                loss_d = losses.wgan_critic_loss(critic(image), critic(filled.detach()))
                if cfg.critic == "wgan-gp":
                    loss_d = loss_d + losses.gradient_penalty(critic, image, filled, cfg.gp_weight)
            self._update("discriminator", loss_d)
            if cfg.critic == "wgan":
                with torch.no_grad():  # Arjovsky et al.: keep the critic Lipschitz by clipping
                    for weight in critic.parameters():
                        weight.clamp_(-cfg.clip, cfg.clip)
        with autocast():
            reference = image if cfg.reference == "ground_truth" else masked
            l_cf = losses.foreground_l1(prediction, reference, fg_mask)
            l_f = losses.foreground_l2(prediction, image, fg_mask)
            feats_pred, feats_ref = self.vgg(prediction), self.vgg(reference)
            l_pf = losses.foreground_perceptual(feats_pred, feats_ref, fg_mask)
            l_adv = losses.wgan_generator_loss(critic(filled))
            total = cfg.w_cf * l_cf + cfg.w_f * l_f + cfg.w_pf * l_pf + cfg.w_adv * l_adv
            terms = {"g/cF_eq1": l_cf, "g/F_eq2": l_f, "g/pF_eq3": l_pf, "g/adv_eq4": l_adv}
            if cfg.base_loss == "swgan":
                # [15]'s full-image perceptual term: the only one that reaches background holes
                # besides the WGAN term; its weight sits under the foreground terms'.
                feats_gt = feats_ref if reference is image else self.vgg(image)
                terms["g/base_swgan"] = losses.swgan_perceptual(feats_pred, feats_gt)
                total = total + cfg.w_base * terms["g/base_swgan"]
        self._update("generator", total)
        return {"g/total": total, **terms, "d/wgan": loss_d}


class CEObjective(Objective):
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg, discriminator = self.cfg, self.discriminator
        masked = image * (1 - hole)
        with autocast():
            prediction = self.generator(masked, hole)
            filled = composite(prediction, image, hole)
            loss_d = losses.bce_discriminator_loss(discriminator(image), discriminator(filled.detach()))
        self._update("discriminator", loss_d)
        with autocast():
            l_rec = losses.masked_l2_loss(prediction, image, hole)
            l_adv = losses.bce_generator_loss(discriminator(filled))
            total = cfg.w_rec * l_rec + cfg.w_adv * l_adv
        self._update("generator", total)
        return {"g/total": total, "g/rec": l_rec, "g/adv": l_adv, "d/bce": loss_d}


class PConvObjective(Objective):
    """Liu et al. train in two phases: BatchNorm everywhere at lr 2e-4, then a fine-tuning
    phase at lr 5e-5 with the encoder's BatchNorm frozen, because the hole pixels corrupt
    the batch statistics of the early encoder layers. The last `finetune_share` of the
    steps is that phase."""

    uses_vgg = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Two groups, so the fine-tuning phase can freeze the encoder's BatchNorm affine
        # parameters by their learning rate alone: DDP needs every parameter that required
        # a gradient at wrapping time to keep receiving one.
        encoder_norms = {id(p) for module in self.generator.encoder.modules()
                         if isinstance(module, nn.BatchNorm2d) for p in module.parameters()}
        groups = [[p for p in self.generator.parameters() if id(p) not in encoder_norms],
                  [p for p in self.generator.parameters() if id(p) in encoder_norms]]
        self.optimizers["generator"] = torch.optim.Adam(
            [{"params": group} for group in groups], lr=self.cfg.lr_g, betas=(self.cfg.beta1, self.cfg.beta2))
        self.finetuning = False

    def finetune_start(self, total: int) -> int:
        """The first step of the fine-tuning phase (`total` when there is none)."""
        return total - round(total * self.cfg.finetune_share)

    def schedule(self, step: int, total: int) -> None:
        self.finetuning = step >= self.finetune_start(total)
        rest, encoder_norm = self.optimizers["generator"].param_groups
        rest["lr"] = self.cfg.lr_finetune if self.finetuning else self.cfg.lr_g
        encoder_norm["lr"] = 0.0 if self.finetuning else self.cfg.lr_g
        if self.finetuning:  # running statistics frozen too: inference-mode normalisation
            for module in unwrap(self.generator).encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()

    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg = self.cfg
        with autocast():
            prediction = self.generator(image * (1 - hole), hole)
            filled = composite(prediction, image, hole)
            feats_pred, feats_comp, feats_gt = self.vgg(prediction), self.vgg(filled), self.vgg(image)
            terms = {
                "valid": losses.pconv_valid_loss(prediction, image, hole),
                "hole": losses.pconv_hole_loss(prediction, image, hole),
                "perceptual": losses.perceptual_loss(feats_pred, feats_comp, feats_gt),
                "style": losses.style_loss(feats_pred, feats_comp, feats_gt),
                "tv": losses.total_variation_loss(filled, hole),
            }
            total = (cfg.w_valid * terms["valid"] + cfg.w_hole * terms["hole"]
                     + cfg.w_perceptual * terms["perceptual"] + cfg.w_style * terms["style"]
                     + cfg.w_tv * terms["tv"])
        self._update("generator", total)
        return {"g/total": total, **{f"g/{key}": value for key, value in terms.items()}}


class GCObjective(Objective):
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg, discriminator = self.cfg, self.discriminator
        masked = image * (1 - hole)
        with autocast():
            coarse, refined = self.generator(masked, hole, stages=True)
            filled = composite(refined, image, hole)
            loss_d = losses.hinge_discriminator_loss(discriminator(image, hole),
                                                     discriminator(filled.detach(), hole))
        self._update("discriminator", loss_d)
        with autocast():
            l_l1 = losses.l1_loss(coarse, image) + losses.l1_loss(refined, image)
            l_adv = losses.hinge_generator_loss(discriminator(filled, hole))
            total = cfg.w_l1 * l_l1 + cfg.w_adv * l_adv
        self._update("generator", total)
        return {"g/total": total, "g/l1": l_l1, "g/adv": l_adv, "d/hinge": loss_d}


OBJECTIVES = {"ours": OursObjective, "ce": CEObjective, "pconv": PConvObjective, "gc": GCObjective}


def make_objective(name: str, cfg: Any, size: int, vgg: Callable[[], VGG16Features] | None = None) -> Objective:
    if name not in OBJECTIVES:
        make_generator(name, cfg, size)  # raises the registry's clear error
    return OBJECTIVES[name](name, cfg, size, vgg)
