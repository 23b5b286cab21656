"""PConv: the Partial Convolutions baseline.

Liu, Reda, Shih, Wang, Tao, Catanzaro, "Image Inpainting for Irregular Holes
Using Partial Convolutions", ECCV 2018. A U-Net of partial convolutions with
mask update (`networks.py`), no discriminator. The objective is valid + hole +
perceptual + style + total variation; the last `finetune_share` of the steps
fine-tune at `lr_finetune` with the encoder's BatchNorm frozen.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from fgi.config import spec
from fgi.methods import Method, losses
from fgi.methods.base import Objective, adam, composite, unwrap
from fgi.methods.pconv.networks import PConvUNet
from fgi.methods.vgg import VGG_LAYERS


@dataclass(frozen=True)
class PConvParams:
    width: float = spec(gt=0.0, le=4.0)
    lr_g: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    w_valid: float = spec(ge=0.0)
    w_hole: float = spec(ge=0.0)
    w_perceptual: float = spec(ge=0.0)
    w_style: float = spec(ge=0.0)
    w_tv: float = spec(ge=0.0)
    vgg_layers: list[str] = spec(choices=VGG_LAYERS)
    finetune_share: float = spec(ge=0.0, lt=1.0)
    lr_finetune: float = spec(gt=0.0)


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
        self.optimizers["generator"] = adam(
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


METHOD = Method(
    name="pconv", display="PConv", citation="Liu et al. [4]",
    params=PConvParams,
    generator=lambda cfg, size: PConvUNet(size, cfg.width),
    objective=PConvObjective,  # Liu et al. train without a discriminator
    # Jam et al., Tables 1 and 2 (3,000 CelebA-HQ test images at 256²): MSE, MAE, FID, PSNR, SSIM.
    published={"full": (124.62, 105.94, 15.86, 28.82, 0.90), "foreground": (102.72, 4.35, 7.99, 29.24, 0.87)},
)
