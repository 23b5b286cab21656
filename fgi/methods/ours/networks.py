"""Generator and critic of the seed paper.

Jam, Kendrick, Drouard, Walker, Yap, "Foreground-guided Facial Inpainting with
Fidelity Preservation" (§3). The generator is "based on [15]": Jam et al.
2020, "Symmetric Skip Connection Wasserstein GAN for High-Resolution Facial
Image Inpainting" (S-WGAN, arXiv:2001.03725) -- an encoder-decoder whose
decoder receives a *symmetric chain*: the output of every encoder level is
ADDED (not concatenated, as in a U-Net) to the input of the mirrored decoder
level, so uncorrupted detail reaches the reconstruction without doubling its
width.

The foreground mask is not an input (the paper keeps it "intact" and uses it
only in the losses, see `fgi.methods.losses`). The input is the masked image, plus the
hole mask as a 4th channel when `in_channels == 4`.

Layout at size S with D = log2(S) - 2 down-samplings (the bottleneck is 4x4):

    stem               (N, in, S, S)               -> (N, C0, S, S)
    encoder, i = 1..D  (N, C(i-1), S/2^(i-1), ...) -> (N, Ci, S/2^i, ...)          stride-2 conv
    middle             (N, CD, 4, 4)               -> (N, CD, 4, 4)
    decoder, i = D..1  (N, Ci, S/2^i, ...)         -> (N, C(i-1), S/2^(i-1), ...)  transposed conv
    head               (N, C0, S, S)               -> (N, 3, S, S)                 tanh

    decoder input at level i = (deeper decoder output, or middle at i=D) + encoder output i
    head input               = level-1 decoder output + stem output

Channels C = (64, 128, 256, 512, 512, ...) x width. S-WGAN stacks plain
Conv+ReLU; we add BatchNorm to every block after the stem (pix2pix-style
Conv-BN-LeakyReLU(0.2) in the encoder, ConvTranspose/Conv-BN-ReLU in the
decoder) because this net is ~30 conv layers deep and trains at batch 5.
At 256x256, width 1.0 the generator has ~46.7M parameters.

The critic is a WGAN critic (paper Eq. 4): stride-2 convs with LeakyReLU and
no normalisation (so the gradient penalty of Gulrajani et al. 2017 stays
per-sample), one unbounded score per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from fgi.errors import UserError

BASE_CHANNELS = (64, 128, 256, 512)  # then 512 for every deeper level
BOTTLENECK = 4  # spatial size after the last down-sampling


def level_channels(levels: int, width: float) -> list[int]:
    """Channels of levels 0..levels-1: 64, 128, 256, 512, 512, ... scaled by `width`."""
    full = [BASE_CHANNELS[min(i, len(BASE_CHANNELS) - 1)] for i in range(levels)]
    return [max(8, round(c * width)) for c in full]


def num_downsamplings(size: int, name: str) -> int:
    """log2(size / 4): 256 -> 6, 128 -> 5, 64 -> 4, 32 -> 3."""
    if size < 2 * BOTTLENECK or size & (size - 1):
        raise UserError(f"{name}: data.size={size} must be a power of two >= {2 * BOTTLENECK}")
    return int(math.log2(size // BOTTLENECK))


def _check_width(width: float, name: str) -> None:
    if not width > 0:
        raise UserError(f"{name}: width={width} must be > 0 (1.0 is the paper size)")


class EncoderBlock(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H/2, W/2): stride-2 conv then a 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DecoderBlock(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, 2H, 2W): 4x4 stride-2 transposed conv then a 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ForegroundGuidedGenerator(nn.Module):
    """Encoder-decoder with a symmetric chain of additive skips (S-WGAN style).

    forward(masked_image (N,3,H,W) in [-1,1], hole (N,1,H,W), 1 = hole)
        -> raw prediction (N,3,H,W) in [-1,1]; compositing happens outside.
    H and W must be multiples of 2^D; the model is built for `size`.
    """

    def __init__(self, size: int, width: float = 1.0, in_channels: int = 4):
        super().__init__()
        if in_channels not in (3, 4):
            raise UserError(
                f"models.ours: in_channels={in_channels} must be 3 (masked image) "
                "or 4 (masked image + hole mask)"
            )
        _check_width(width, "models.ours")
        self.size = size
        self.in_channels = in_channels
        self.num_down = num_downsamplings(size, "models.ours")
        channels = level_channels(self.num_down + 1, width)  # levels 0..D
        self.channels = channels

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.LeakyReLU(0.2)
        )
        # encoder[i-1] takes level i-1 to level i
        self.encoder = nn.ModuleList(
            EncoderBlock(channels[i - 1], channels[i]) for i in range(1, self.num_down + 1)
        )
        deepest = channels[-1]
        self.middle = nn.Sequential(
            nn.Conv2d(deepest, deepest, 3, padding=1, bias=False),
            nn.BatchNorm2d(deepest),
            nn.LeakyReLU(0.2),
            nn.Conv2d(deepest, deepest, 3, padding=1, bias=False),
            nn.BatchNorm2d(deepest),
            nn.LeakyReLU(0.2),
        )
        # decoder[k] takes level D-k to level D-k-1, mirroring encoder[D-k-1]
        self.decoder = nn.ModuleList(
            DecoderBlock(channels[i], channels[i - 1]) for i in range(self.num_down, 0, -1)
        )
        self.head = nn.Sequential(nn.Conv2d(channels[0], 3, 3, padding=1), nn.Tanh())

    def forward(self, masked_image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_down
        if masked_image.shape[-1] % factor or masked_image.shape[-2] % factor:
            raise ValueError(
                f"image size {tuple(masked_image.shape[-2:])} is not a multiple of {factor}"
            )
        if self.in_channels == 4:
            x = torch.cat([masked_image, hole.to(masked_image.dtype)], dim=1)  # (N, 4, H, W)
        else:
            x = masked_image  # (N, 3, H, W)

        x = self.stem(x)  # (N, C0, H, W)
        skips = [x]
        for block in self.encoder:
            x = block(x)  # level i: (N, Ci, H/2^i, W/2^i)
            skips.append(x)

        x = self.middle(x)  # (N, CD, H/2^D, W/2^D)
        for block, skip in zip(self.decoder, reversed(skips[1:])):
            x = block(x + skip)  # level i -> i-1: (N, C(i-1), H/2^(i-1), W/2^(i-1))
        return self.head(x + skips[0])  # (N, 3, H, W) in [-1, 1]


class WGANCritic(nn.Module):
    """WGAN critic: (N, in_channels, size, size) -> (N,) unbounded scores.

    4x4 stride-2 convs with LeakyReLU(0.2) down to 4x4, then a linear layer.
    No normalisation layers, so each score depends on its own image only
    (required by the per-sample gradient penalty).
    """

    def __init__(self, size: int, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        _check_width(width, "models.ours critic")
        self.size = size
        num_down = num_downsamplings(size, "models.ours critic")
        channels = level_channels(num_down, width)  # one per stride-2 conv
        layers: list[nn.Module] = []
        previous = in_channels
        for out_channels in channels:
            layers += [nn.Conv2d(previous, out_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            previous = out_channels
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(previous * BOTTLENECK * BOTTLENECK, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.size, self.size):
            raise ValueError(
                f"critic built for {self.size}x{self.size}, got {tuple(images.shape[-2:])}"
            )
        x = self.features(images)  # (N, C, 4, 4)
        return self.score(x.flatten(1)).squeeze(1)  # (N,)
