"""LaMa: Large Mask inpainting with Fourier convolutions.

Suvorov, Logacheva, Mashikhin, Remizova, Ashukha, Silvestrov, Kong, Goka,
Park, Lempitsky, "Resolution-robust Large Mask Inpainting with Fourier
Convolutions", WACV 2022 (advimman/lama). The CelebA-HQ recipe as released,
`configs/training/lama-fourier-celeba.yaml`:

* generator `ffc_resnet_075` (`ffc.py`) and discriminator `pix2pixhd_nlayer`
  (`discriminator.py`);
* L1 on the known pixels only (weight_known 10, weight_missing 0), the
  non-saturating adversarial loss (weight 10) with R1 (gp_coef 0.001) and
  `mask_as_fake_target`, feature matching (100), and the ResNet perceptual loss
  `resnet_pl` (30) on the ADE20k ResNet50-dilated encoder (`resnet_pl.py`);
* every loss on the raw prediction (not the composite), images in [0, 1];
* Adam at lr 1e-3 (generator) and 1e-4 (discriminator), default betas, no
  schedule (`default_optimizers.yaml`); gradients clipped to norm 1
  (`gradient_clip_val` of the CelebA trainer config).

One step follows the release's PyTorch Lightning loop: the generator is updated
first; the discriminator is then updated on a fresh prediction of the updated
generator (Lightning runs the forward once per optimiser).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from fgi.config import ReleasedWeights, spec
from fgi.methods import Importer, Method
from fgi.methods.base import Objective, frozen
from fgi.methods.lama import losses
from fgi.methods.lama.discriminator import NLayerDiscriminator
from fgi.methods.lama.ffc import LamaGenerator
from fgi.methods.lama.resnet_pl import NETWORK, ResNetPL, load_encoder


@dataclass(frozen=True)
class LamaParams:
    width: float = spec(gt=0.0, le=4.0)
    n_blocks: int = spec(ge=1)
    ratio_g: float = spec(ge=0.0, lt=1.0)
    lr_g: float = spec(gt=0.0)
    lr_d: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    w_l1_known: float = spec(ge=0.0)
    w_l1_missing: float = spec(ge=0.0)
    w_adv: float = spec(ge=0.0)
    gp_coef: float = spec(ge=0.0)
    w_fm: float = spec(ge=0.0)
    w_resnet_pl: float = spec(ge=0.0)
    grad_clip: float = spec(ge=0.0)
    released: ReleasedWeights = spec()


def to01(image: torch.Tensor) -> torch.Tensor:
    """The pipeline's [-1, 1] to LaMa's [0, 1]."""
    return (image + 1) / 2


class LamaObjective(Objective):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        encoder, self.resnet_pl_provenance = load_encoder(self.pretrained(NETWORK))
        self.resnet_pl = ResNetPL(encoder, self.cfg.w_resnet_pl) if self.cfg.w_resnet_pl > 0 else None
        if self.cfg.grad_clip > 0:  # Lightning's gradient_clip_val: after backward, before each step
            for optimizer in self.optimizers.values():
                optimizer.register_step_pre_hook(self._clip)

    def _clip(self, optimizer, args, kwargs) -> None:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                       self.cfg.grad_clip)

    def to(self, device, memory_format=torch.contiguous_format):
        super().to(device, memory_format)
        if self.resnet_pl is not None:
            self.resnet_pl.to(device=device, memory_format=memory_format)
        return self

    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        cfg, discriminator = self.cfg, self.discriminator
        masked = image * (1 - hole)
        real = to01(image)
        with autocast(), frozen(discriminator) as critic:  # as the release's _do_step
            prediction = to01(self.generator(masked, hole))
            terms = {"l1": losses.masked_l1_loss(prediction, real, hole, cfg.w_l1_known, cfg.w_l1_missing)}
            real_logits, real_features = critic(real)
            fake_logits, fake_features = critic(prediction)
            terms["adv"] = cfg.w_adv * losses.generator_adversarial_loss(fake_logits)
            terms["fm"] = cfg.w_fm * losses.feature_matching_loss(fake_features, real_features)
            if self.resnet_pl is not None:
                terms["resnet_pl"] = self.resnet_pl(prediction, real)
            total = sum(terms.values())
        self._update("generator", total)

        with torch.no_grad(), autocast():
            fresh = to01(self.generator(masked, hole))
        real = real.detach().requires_grad_(True)
        with autocast():
            real_logits, _ = discriminator(real)
            fake_logits, _ = discriminator(fresh)
            gp = losses.r1_penalty(real_logits, real)
            loss_d = losses.discriminator_loss(real_logits, fake_logits, hole, gp, cfg.gp_coef)
        self._update("discriminator", loss_d)
        return {"g/total": total, **{f"g/{key}": value for key, value in terms.items()},
                "d/total": loss_d, "d/r1": gp}


def load_released(path, cfg, size):
    """The release's weights (`released.py`), imported only when a profile asks for them."""
    from fgi.methods.lama.released import load  # noqa: PLC0415 - the checkpoint reader, only when used
    return load(path, cfg, size)


METHOD = Method(
    name="lama", display="LaMa", citation="Suvorov et al.",
    params=LamaParams,
    generator=lambda cfg, size: LamaGenerator(size, cfg.width, cfg.n_blocks, cfg.ratio_g),
    discriminator=lambda cfg, size: NLayerDiscriminator(size, cfg.width),
    objective=LamaObjective,
    importer=Importer(load=load_released, size=256, width=1.0,
                      source="advimman/lama: lama-celeba-hq/lama-fourier (config.yaml and models/best.ckpt)"),
    # Jam et al. predate LaMa: no published values under the paper's protocol.
)
