"""Ours: the seed paper's foreground-guided method.

Jam, Kendrick, Drouard, Walker, Yap, "Foreground-guided Facial Inpainting with
Fidelity Preservation". The generator (an S-WGAN [15] encoder-decoder with
symmetric additive skips) and the WGAN critic are in `networks.py`. The
objective is Eq. 1 + Eq. 2 + Eq. 3 (each restricted to the foreground mask
M_F) + Eq. 4 (WGAN, weight clipping, or WGAN-GP with `critic: wgan-gp`); with
`base_loss: swgan` also S-WGAN's full-image perceptual term [15]
(docs/results.md: "Two readings").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch

from fgi.config import spec
from fgi.methods import Method, losses
from fgi.methods.base import Objective, composite, frozen
from fgi.methods.ours.networks import ForegroundGuidedGenerator, WGANCritic
from fgi.methods.vgg import VGG_LAYERS


@dataclass(frozen=True)
class OursParams:
    width: float = spec(gt=0.0, le=4.0)
    critic: Literal["wgan", "wgan-gp"] = spec()
    reference: Literal["ground_truth", "input"] = spec()
    lr_g: float = spec(gt=0.0)
    lr_d: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    n_critic: int = spec(ge=1)
    clip: float = spec(gt=0.0)
    gp_weight: float = spec(ge=0.0)
    w_cf: float = spec(ge=0.0)
    w_f: float = spec(ge=0.0)
    w_pf: float = spec(ge=0.0)
    w_adv: float = spec(ge=0.0)
    vgg_layers: list[str] = spec(choices=VGG_LAYERS)
    base_loss: Literal["none", "swgan"] = spec()
    w_base: float = spec(ge=0.0)


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
        with autocast(), frozen(critic) as critic:
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


METHOD = Method(
    name="ours", display="Ours", citation="Foreground-guided", role="proposed",
    params=OursParams,
    generator=lambda cfg, size: ForegroundGuidedGenerator(size, cfg.width),
    discriminator=lambda cfg, size: WGANCritic(size, cfg.width),
    objective=OursObjective,
    needs_foreground=True,  # Eq. 1-3 are restricted to M_F
    # Jam et al., Tables 1 and 2 (3,000 CelebA-HQ test images at 256²): MSE, MAE, FID, PSNR, SSIM.
    published={"full": (194.86, 57.38, 9.63, 34.35, 0.92), "foreground": (26.01, 2.58, 1.19, 37.38, 0.96)},
)
