"""Partial Convolutions for irregular holes.

Liu, Reda, Shih, Wang, Tao, Catanzaro, "Image Inpainting for Irregular Holes
Using Partial Convolutions", ECCV 2018 (arXiv:1804.07723).

A partial convolution sees only the known pixels of its window and rescales
the result by how many it saw; its output is known wherever the window saw at
least one known pixel, so the hole shrinks layer by layer. The re-normalisation
follows NVIDIA's released layer (multiply by window_size / sum(M)), not the
paper's literal 1 / sum(M), so a fully known window behaves like a plain conv.

Masks here are *valid* masks (1 = known pixel), the complement of the
pipeline's hole mask. `PConvUNet.forward` takes the hole mask and converts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgi.errors import UserError

# The paper's encoder at 512x512: one entry per stride-2 layer.
PAPER_KERNELS = (7, 5, 5, 3, 3, 3, 3, 3)
PAPER_CHANNELS = (64, 128, 256, 512, 512, 512, 512, 512)


class PartialConv2d(nn.Conv2d):
    """A 2-D partial convolution: `forward(x, valid) -> (out, new_valid)`.

    out = W^T (X ⊙ M) · window_size / sum(M) + b   where sum(M) > 0,
          0 (no bias either)                        where sum(M) = 0;
    new_valid = 1 where sum(M) > 0, else 0.

    `valid` has one channel (N, 1, H, W), shared by every input channel: then
    window_size = kH·kW and sum(M) counts known pixels in the window. This is
    NVIDIA's `multi_channel=False` variant. `valid` may also carry one channel
    per input channel (N, in_ch, H, W) — the U-Net decoder needs this, because
    it concatenates the masks of the upsampled and the skip features — and then
    window_size = in_ch·kH·kW. A one-channel mask gives exactly the same result
    as that mask repeated over in_ch channels. `new_valid` is always (N, 1, H', W').
    Zero padding pads the mask with zeros, so border windows are re-normalised too.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True):
        # No groups or padding modes: the mask count assumes a dense, zero-padded window.
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if valid.shape[1] not in (1, self.in_channels):
            raise ValueError(
                f"valid mask has {valid.shape[1]} channels; expected 1 or {self.in_channels}"
            )
        kernel_h, kernel_w = self.kernel_size
        window_size = valid.shape[1] * kernel_h * kernel_w
        # The mask sum is an exact count of known pixels; keep it in at least
        # float32 even under autocast, where fp16 cannot count past 2048 exactly.
        count_dtype = torch.promote_types(valid.dtype, torch.float32)
        with torch.no_grad(), torch.autocast(device_type=valid.device.type, enabled=False):
            ones = torch.ones(1, valid.shape[1], kernel_h, kernel_w, device=valid.device, dtype=count_dtype)
            known_count = F.conv2d(valid.to(count_dtype), ones, None, self.stride, self.padding, self.dilation)
            new_valid = (known_count > 0).to(count_dtype)  # (N, 1, H', W')
            ratio = window_size / known_count.clamp(min=1e-8) * new_valid  # 0 where nothing is known

        out = F.conv2d(x * valid, self.weight, None, self.stride, self.padding, self.dilation)
        out = out * ratio.to(out.dtype)  # (N, out_ch, H', W')
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * new_valid.to(out.dtype)
        return out, new_valid.to(valid.dtype)


class PConvBlock(nn.Module):
    """Partial conv, then optional BatchNorm and activation; the mask passes through."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int,
                 batch_norm: bool, activation: nn.Module | None):
        super().__init__()
        # BatchNorm's shift makes a conv bias redundant.
        self.conv = PartialConv2d(in_ch, out_ch, kernel_size, stride=stride,
                                  padding=kernel_size // 2, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_ch) if batch_norm else nn.Identity()
        self.act = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, new_valid = self.conv(x, valid)
        return self.act(self.norm(out)), new_valid


def encoder_depth(size: int) -> int:
    """Stride-2 layers for a `size`² input: log2(size) - 1, at most the paper's 8.

    This always ends at 2x2 (the paper's 512² → 2²), e.g. 256 → 7, 64 → 5, 32 → 4.
    """
    if size < 8 or size & (size - 1):
        raise UserError(f"PConvUNet: size must be a power of two >= 8, got {size}; set data.size to e.g. 256")
    return min(int(math.log2(size)) - 1, len(PAPER_KERNELS))


class PConvUNet(nn.Module):
    """The paper's partial-conv U-Net, scaled to `size` and a channel `width`.

    Encoder: `encoder_depth(size)` stride-2 partial convs with the paper's
    kernels (7, 5, 5, 3, …) and channels (64, 128, 256, 512, …) × width,
    BatchNorm except on the first, ReLU. Decoder: nearest ×2 upsampling of
    features and mask, concatenation with the skip features and masks, a 3x3
    partial conv, BatchNorm and LeakyReLU(0.2) except on the last layer, whose
    skip is the input image itself and which outputs 3 channels.

    Adaptation: the paper's last layer is linear; the pipeline works in
    [-1, 1], so the output goes through tanh (a clamp would stop the gradient
    wherever the prediction overshoots).
    """

    def __init__(self, size: int, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        if width <= 0:
            raise UserError(f"PConvUNet: width must be > 0, got {width}; set width to e.g. 1.0")
        self.size = size
        self.depth = encoder_depth(size)
        kernels = PAPER_KERNELS[: self.depth]
        channels = [max(8, round(c * width)) for c in PAPER_CHANNELS[: self.depth]]

        self.encoder = nn.ModuleList()
        prev = in_channels
        for i, (kernel, ch) in enumerate(zip(kernels, channels)):
            self.encoder.append(PConvBlock(prev, ch, kernel, stride=2, batch_norm=i > 0, activation=nn.ReLU()))
            prev = ch

        # decoder[j] mirrors encoder level depth-1-j: it takes the upsampled
        # deeper output and that level's skip (the input image for the last one).
        skip_channels = [in_channels] + channels[:-1]
        self.decoder = nn.ModuleList()
        for j, skip in enumerate(reversed(skip_channels)):
            last = j == self.depth - 1
            out_ch = 3 if last else skip
            self.decoder.append(PConvBlock(prev + skip, out_ch, 3, stride=1, batch_norm=not last,
                                           activation=None if last else nn.LeakyReLU(0.2)))
            prev = out_ch

    def encode(self, masked_image: torch.Tensor, valid: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features and valid masks at every level, the input itself first."""
        features, valids = [masked_image], [valid]  # (N, C_in, H, W), (N, 1, H, W)
        for block in self.encoder:
            x, v = block(features[-1], valids[-1])  # (N, C_i, H/2^i, W/2^i), (N, 1, H/2^i, W/2^i)
            features.append(x)
            valids.append(v)
        return features, valids

    def forward(self, masked_image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) masked image and (N, 1, H, W) hole → (N, 3, H, W) in [-1, 1]."""
        stride = 2 ** self.depth
        if masked_image.shape[-2] % stride or masked_image.shape[-1] % stride:
            raise UserError(f"PConvUNet: image side must be a multiple of {stride}, got "
                            f"{tuple(masked_image.shape[-2:])}; resize the input to {self.size}x{self.size}")
        valid = 1 - hole  # (N, 1, H, W)
        features, valids = self.encode(masked_image, valid)

        x, v = features[-1], valids[-1]  # (N, C_L, H/2^L, W/2^L), the deepest level
        for block, skip, skip_valid in zip(self.decoder, reversed(features[:-1]), reversed(valids[:-1])):
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (N, C, 2h, 2w)
            v = F.interpolate(v, scale_factor=2, mode="nearest")  # (N, 1, 2h, 2w)
            # Each input channel keeps the mask of the tensor it came from.
            channel_valid = torch.cat([v.expand(-1, x.shape[1], -1, -1),
                                       skip_valid.expand(-1, skip.shape[1], -1, -1)], dim=1)  # (N, C + C_skip, 2h, 2w)
            x, v = block(torch.cat([x, skip], dim=1), channel_valid)  # (N, C_skip or 3, 2h, 2w)
        return torch.tanh(x)  # (N, 3, H, W)
