"""Context Encoder and its DCGAN discriminator.

Pathak, Krähenbühl, Donahue, Darrell, Efros, "Context Encoders: Feature
Learning by Inpainting", CVPR 2016.

We implement the paper's DCGAN-style variant (the one in its released code for
the centre-region task): 4x4 stride-2 conv encoder down to 4x4, a 4x4 conv
bottleneck to a (N, bottleneck) code, a 4x4 transposed conv back to 4x4, and a
mirrored 4x4 stride-2 transposed-conv decoder. The channel-wise fully-connected
bottleneck of the paper's ImageNet feature-learning model is omitted.

A 4x4 convolution of a 4x4 map (and a 4x4 transposed convolution of a 1x1 code)
is a fully connected layer, so both are written as `nn.Linear` with the same
weights and outputs: one matmul each, which runs in float32 even under
bfloat16 autocast. They hold most of the network's weights (2 x 16M at the
study's width) but see only a batch of codes, so casting those weights to
bfloat16 and their gradients back every step cost more than the product saves
(docs/benchmarks.md).

Adaptation: the paper predicts the 64x64 centre of a 128x128 image; our holes
are irregular and anywhere, so the decoder predicts the whole image at the
working size and the loss is applied on the holes. Depth follows the size
(log2(size) - 2 stride-2 layers), so every size ends at a 4x4 map.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from fgi.errors import UserError

# DCGAN channel progression, capped at 512 for the deeper layers of large sizes.
BASE_CHANNELS = (64, 128, 256, 512)


def stride2_layers(size: int, model: str) -> int:
    """Stride-2 layers that take a `size`² input down to 4x4: log2(size) - 2."""
    if size < 8 or size & (size - 1):
        raise UserError(f"{model}: size must be a power of two >= 8, got {size}; set data.size to e.g. 256")
    return int(math.log2(size)) - 2


def level_channels(depth: int, width: float, model: str) -> list[int]:
    """Channels after each stride-2 layer: 64, 128, 256, 512, 512, … times `width`, at least 8."""
    if width <= 0:
        raise UserError(f"{model}: width must be > 0, got {width}; set width to e.g. 1.0")
    return [max(8, round(BASE_CHANNELS[min(i, len(BASE_CHANNELS) - 1)] * width)) for i in range(depth)]


class CodeToMap(nn.Linear):
    """The 4x4 transposed convolution of a (N, code) vector, as the (code -> C*16) fully connected
    layer it is. Its weight is the transposed convolution's (code, C, 4, 4) weight, transposed."""


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialisation both papers' code uses: N(0, 0.02) convs, N(1, 0.02) BN scales."""
    if isinstance(module, CodeToMap):  # drawn in the transposed convolution's layout, as it would be
        with torch.no_grad():
            module.weight.copy_(torch.empty(module.in_features, module.out_features).normal_(0.0, 0.02).T)
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def down_block(in_ch: int, out_ch: int, batch_norm: bool) -> nn.Sequential:
    """4x4 stride-2 conv, optional BatchNorm, LeakyReLU(0.2): halves the side."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class ContextEncoder(nn.Module):
    """Encoder, 4x4-conv bottleneck, decoder; `forward(masked_image, hole) -> prediction`.

    `in_channels` is 3 (the masked image) or 4 (the hole mask appended as a
    channel, so the network knows where the hole is even where the image is
    black). The first encoder layer has no BatchNorm, as in DCGAN and the
    paper's code. `bottleneck` is the code length and is not scaled by `width`.
    """

    def __init__(self, size: int, width: float = 1.0, bottleneck: int = 4000, in_channels: int = 4):
        super().__init__()
        if in_channels not in (3, 4):
            raise UserError(f"ContextEncoder: in_channels must be 3 (masked image) or 4 (plus the hole), "
                            f"got {in_channels}; set in_channels to 4")
        if bottleneck < 1:
            raise UserError(f"ContextEncoder: bottleneck must be >= 1, got {bottleneck}; "
                            "set bottleneck to e.g. 4000")
        self.in_channels = in_channels
        depth = stride2_layers(size, "ContextEncoder")
        channels = level_channels(depth, width, "ContextEncoder")

        encoder = [down_block(in_channels, channels[0], batch_norm=False)]
        encoder += [down_block(channels[i - 1], channels[i], batch_norm=True) for i in range(1, depth)]
        self.encoder = nn.Sequential(*encoder)
        self.bottleneck = nn.Sequential(  # the 4x4 conv, 4x4 → 1x1
            nn.Flatten(),
            nn.Linear(channels[-1] * 16, bottleneck, bias=False),
            nn.BatchNorm1d(bottleneck),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.expand = nn.Sequential(  # the 4x4 transposed conv, 1x1 → 4x4
            CodeToMap(bottleneck, channels[-1] * 16, bias=False),
            nn.Unflatten(1, (channels[-1], 4, 4)),
            nn.BatchNorm2d(channels[-1]),
            nn.ReLU(inplace=True),
        )

        decoder: list[nn.Module] = []
        for i in range(depth - 1, 0, -1):
            decoder += [
                nn.ConvTranspose2d(channels[i], channels[i - 1], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels[i - 1]),
                nn.ReLU(inplace=True),
            ]
        decoder += [nn.ConvTranspose2d(channels[0], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)
        self.apply(dcgan_init)

    def forward(self, masked_image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) masked image and (N, 1, H, W) hole → (N, 3, H, W) in [-1, 1]."""
        x = masked_image
        if self.in_channels == 4:
            x = torch.cat([masked_image, hole], dim=1)  # (N, 4, H, W)
        features = self.encoder(x)  # (N, C_L, 4, 4)
        with torch.autocast(x.device.type, enabled=False):  # float32: see the module docstring
            code = self.bottleneck(features.float())  # (N, bottleneck)
            features = self.expand(code)  # (N, C_L, 4, 4)
        return self.decoder(features)  # (N, C_L, 4, 4) → … → (N, 3, H, W)


class DCGANDiscriminator(nn.Module):
    """DCGAN critic: 4x4 stride-2 convs down to 4x4, then a 4x4 conv to one logit per image.

    No sigmoid: the loss uses BCE-with-logits, which is the numerically stable form.
    """

    def __init__(self, size: int, width: float = 1.0):
        super().__init__()
        depth = stride2_layers(size, "DCGANDiscriminator")
        channels = level_channels(depth, width, "DCGANDiscriminator")
        layers = [down_block(3, channels[0], batch_norm=False)]
        layers += [down_block(channels[i - 1], channels[i], batch_norm=True) for i in range(1, depth)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels[-1], 1, 4)  # 4x4 → 1x1
        self.apply(dcgan_init)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) image → (N,) logits (real > 0)."""
        x = self.features(image)  # (N, C_L, 4, 4)
        return self.head(x).flatten()  # (N, 1, 1, 1) → (N,)
