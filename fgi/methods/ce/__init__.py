"""CE: the Context Encoder baseline.

Pathak, Krähenbühl, Donahue, Darrell, Efros, "Context Encoders: Feature
Learning by Inpainting", CVPR 2016. Encoder, channel-wise fully connected
bottleneck and decoder, with a DCGAN discriminator (`networks.py`). The
objective is the masked L2 reconstruction (0.999) + adversarial BCE (0.001);
the released code trains the generator at 10x the discriminator's rate (params).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


from fgi.config import spec
from fgi.methods import Method, losses
from fgi.methods.base import Objective, composite, frozen
from fgi.methods.ce.networks import ContextEncoder, DCGANDiscriminator


@dataclass(frozen=True)
class CEParams:
    width: float = spec(gt=0.0, le=4.0)
    bottleneck: int = spec(ge=1)
    lr_g: float = spec(gt=0.0)
    lr_d: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    w_rec: float = spec(ge=0.0)
    w_adv: float = spec(ge=0.0)


class CEObjective(Objective):
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg, discriminator = self.cfg, self.discriminator
        masked = image * (1 - hole)
        with autocast():
            prediction = self.generator(masked, hole)
            filled = composite(prediction, image, hole)
            loss_d = losses.bce_discriminator_loss(discriminator(image), discriminator(filled.detach()))
        self._update("discriminator", loss_d)
        with autocast(), frozen(discriminator) as critic:
            l_rec = losses.masked_l2_loss(prediction, image, hole)
            l_adv = losses.bce_generator_loss(critic(filled))
            total = cfg.w_rec * l_rec + cfg.w_adv * l_adv
        self._update("generator", total)
        return {"g/total": total, "g/rec": l_rec, "g/adv": l_adv, "d/bce": loss_d}


METHOD = Method(
    name="ce", display="CE", citation="Pathak et al. [3]",
    params=CEParams,
    generator=lambda cfg, size: ContextEncoder(size, cfg.width, bottleneck=cfg.bottleneck),
    discriminator=lambda cfg, size: DCGANDiscriminator(size, cfg.width),
    objective=CEObjective,
    # Jam et al., Tables 1 and 2 (3,000 CelebA-HQ test images at 256²): MSE, MAE, FID, PSNR, SSIM.
    published={"full": (133.481, 129.30, 29.96, 27.71, 0.76), "foreground": (133.481, 129.30, 27.38, 27.71, 0.76)},
)
