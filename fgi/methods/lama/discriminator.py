"""LaMa's discriminator: pix2pixHD's multi-layer PatchGAN, returning its features too.

Wang, Liu, Zhu, Tao, Kautz, Catanzaro, "High-Resolution Image Synthesis and
Semantic Manipulation with Conditional GANs", CVPR 2018; as LaMa releases it in
advimman/lama, `saicinpainting/training/modules/pix2pixhd.py`
(`NLayerDiscriminator`), with `configs/training/discriminator/pix2pixhd_nlayer.yaml`
(3 input channels, ndf 64, 4 layers). The discriminator sees the generator's
prediction (not the composite) and no hole. Its intermediate activations feed
LaMa's feature-matching loss (§3.3).

    conv 4x4 s2 (3 -> ndf), LeakyReLU 0.2                         (N, ndf, S/2+1, ...)
    3 x conv 4x4 s2, BN, LeakyReLU 0.2 (channels x2, capped)      (N, 8 ndf, ~S/16, ...)
    conv 4x4 s1, BN, LeakyReLU 0.2                                (N, 8 ndf, ~S/16+1, ...)
    conv 4x4 s1 -> 1 logit per patch                              (N, 1, ~S/16+2, ...)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgi.methods.lama.ffc import scaled

PAPER_NDF = 64
N_LAYERS = 4


class NLayerDiscriminator(nn.Module):
    """Returns (per-patch logits (N, 1, h, w), the activations of every block before the last)."""

    def __init__(self, size: int, width: float = 1.0, n_layers: int = N_LAYERS, input_nc: int = 3):
        super().__init__()
        self.n_layers = n_layers
        ndf = scaled(PAPER_NDF, width, "NLayerDiscriminator")
        cap = scaled(512, width, "NLayerDiscriminator")  # the release caps channels at 512
        blocks = [[nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]]
        channels = ndf
        for _ in range(1, n_layers):
            previous, channels = channels, min(channels * 2, cap)
            blocks.append([nn.Conv2d(previous, channels, kernel_size=4, stride=2, padding=2),
                           nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True)])
        previous, channels = channels, min(channels * 2, cap)
        blocks.append([nn.Conv2d(previous, channels, kernel_size=4, stride=1, padding=2),
                       nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True)])
        blocks.append([nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=2)])
        for index, block in enumerate(blocks):
            setattr(self, f"model{index}", nn.Sequential(*block))  # the release's names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        activations = [image]
        for index in range(self.n_layers + 2):
            activations.append(getattr(self, f"model{index}")(activations[-1]))
        return activations[-1], activations[1:-1]
