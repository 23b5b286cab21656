"""GC: the Gated Convolutions baseline (DeepFill v2).

Yu, Lin, Yang, Shen, Lu, Huang, "Free-Form Image Inpainting with Gated
Convolution", ICCV 2019. A coarse and a refinement network of gated
convolutions, contextual attention in the refinement branch, and an SN-PatchGAN
discriminator (`networks.py`, `contextual_attention.py`). The objective is L1
on both stages + the SN-PatchGAN hinge loss.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal


from fgi.config import ReleasedWeights, spec
from fgi.methods import Importer, Method, losses
from fgi.methods.base import Objective, composite, frozen
from fgi.methods.gc.networks import GatedGenerator, SNPatchGAN


@dataclass(frozen=True)
class GCParams:
    width: float = spec(gt=0.0, le=4.0)
    lr_g: float = spec(gt=0.0)
    lr_d: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    w_l1: float = spec(ge=0.0)
    w_adv: float = spec(ge=0.0)
    attention: bool = spec()
    attention_variant: Literal["released", "corrected"] = spec()
    released: ReleasedWeights = spec()


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
        with autocast(), frozen(discriminator) as critic:
            l_l1 = losses.l1_loss(coarse, image) + losses.l1_loss(refined, image)
            l_adv = losses.hinge_generator_loss(critic(filled, hole))
            total = cfg.w_l1 * l_l1 + cfg.w_adv * l_adv
        self._update("generator", total)
        return {"g/total": total, "g/l1": l_l1, "g/adv": l_adv, "d/hinge": loss_d}


def load_released(path, cfg, size):
    """The release's weights (`released.py`), imported only when a profile asks for them."""
    from fgi.methods.gc.released import load  # noqa: PLC0415 - TensorFlow, at import time only
    return load(path, cfg, size)


METHOD = Method(
    name="gc", display="GC", citation="Yu et al. [6]",
    params=GCParams,
    generator=lambda cfg, size: GatedGenerator(size, cfg.width, attention=cfg.attention,
                                               attention_variant=cfg.attention_variant),
    discriminator=lambda cfg, size: SNPatchGAN(size, cfg.width),
    objective=GCObjective,
    importer=Importer(load=load_released, size=256, width=1.0,
                      source="JiahuiYu/generative_inpainting: the CelebA-HQ 256 model (a TensorFlow checkpoint)"),
    # Jam et al., Tables 1 and 2 (3,000 CelebA-HQ test images at 256²): MSE, MAE, FID, PSNR, SSIM.
    published={"full": (102.42, 43.10, 4.29, 39.96, 0.92), "foreground": (29.14, 1.47, 2.23, 35.33, 0.95)},
)
