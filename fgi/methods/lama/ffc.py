"""LaMa's generator: a ResNet of Fast Fourier Convolutions.

Suvorov, Logacheva, Mashikhin, Remizova, Ashukha, Silvestrov, Kong, Goka,
Park, Lempitsky, "Resolution-robust Large Mask Inpainting with Fourier
Convolutions", WACV 2022, §3.1; FFC after Chi, Jiang, Mu, "Fast Fourier
Convolution", NeurIPS 2020. As released in advimman/lama,
`saicinpainting/training/modules/ffc.py` (`FFCResNetGenerator`), with the
CelebA-HQ config `configs/training/generator/ffc_resnet_075.yaml`:

    reflect-pad 3, FFC 7x7 (4 -> ngf), local only      (N, ngf, S, S)
    3 x FFC 3x3 stride 2, local only; the last splits   (N, 8 ngf, S/8, S/8)
        its output 1/4 local, 3/4 global
    9 x FFC residual block, global ratio 0.75           (N, 8 ngf, S/8, S/8)
    concatenate local and global channels
    3 x ConvTranspose 3x3 stride 2 + BN + ReLU          (N, ngf, S, S)
    reflect-pad 3, conv 7x7 (ngf -> 3), sigmoid         (N, 3, S, S) in [0, 1]

An FFC (§3.1, Fig. 2) carries a local and a global part of its channels. The
local part is ordinary convolution; the global part goes through a spectral
transform: a 1x1 conv, then the real 2-D FFT of the whole feature map, a 1x1
conv + BN + ReLU on its stacked real and imaginary parts, and the inverse FFT,
so that one layer sees the whole image. The released config has no local
Fourier unit (`enable_lfu: False`), no gating and no SE; only that path is
built here. Module and attribute names follow the release, so its state dicts
load unchanged (tests/test_lama_release.py).

`LamaGenerator` adapts the pipeline's convention (images in [-1, 1], the
masked image and the hole given apart) to LaMa's: the input is the image in
[0, 1] with the hole set to 0, concatenated with the hole (`concat_mask`), and
the sigmoid output in [0, 1] is mapped back to [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgi.errors import UserError

PAPER_NGF = 64           # ffc_resnet_075.yaml: ngf
DOWNSAMPLINGS = 3        # n_downsampling
MAX_FEATURES = 1024      # FFCResNetGenerator's default


class FourierUnit(nn.Module):
    """Real FFT over (H, W), a 1x1 conv + BN + ReLU on the spectrum, inverse FFT."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # The spectrum's real and imaginary parts are stacked as channels: 2x in, 2x out.
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        # torch.fft has no bfloat16 kernels: the spectral path runs in float32 under autocast.
        with torch.autocast(x.device.type, enabled=False):
            x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
            spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")       # (N, C, H, W/2+1) complex
            spectrum = torch.stack((spectrum.real, spectrum.imag), dim=-1)  # (N, C, H, W/2+1, 2)
            spectrum = spectrum.permute(0, 1, 4, 2, 3).contiguous()         # (N, C, 2, H, W/2+1)
            spectrum = spectrum.view(batch, -1, *spectrum.shape[3:])        # (N, 2C, H, W/2+1)
            spectrum = self.relu(self.bn(self.conv_layer(spectrum)))         # (N, 2C', H, W/2+1)
            spectrum = spectrum.view(batch, -1, 2, *spectrum.shape[2:])     # (N, C', 2, H, W/2+1)
            spectrum = spectrum.permute(0, 1, 3, 4, 2).contiguous()         # (N, C', H, W/2+1, 2)
            spectrum = torch.complex(spectrum[..., 0], spectrum[..., 1])
            return torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1), norm="ortho")  # (N, C', H, W)


class SpectralTransform(nn.Module):
    """The global branch of an FFC: 1x1 conv to half the channels, Fourier unit with a residual, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels // 2, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(out_channels // 2), nn.ReLU(inplace=True))
        self.fu = FourierUnit(out_channels // 2, out_channels // 2)
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))                  # (N, C/2, H, W)
        return self.conv2(x + self.fu(x).to(x.dtype))       # (N, C, H, W)


class FFC(nn.Module):
    """Four paths between the local (l) and global (g) channel groups: l->l, g->l and l->g are
    convolutions, g->g is the spectral transform. A path with an empty end is absent (None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        in_global = int(in_channels * ratio_gin)
        in_local = in_channels - in_global
        out_global = int(out_channels * ratio_gout)
        out_local = out_channels - out_global
        self.ratio_gout = ratio_gout
        self.global_in_num = in_global

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, bias=False,
                             padding_mode="reflect") if cin and cout else None

        self.convl2l = conv(in_local, out_local)
        self.convl2g = conv(in_local, out_global)
        self.convg2l = conv(in_global, out_local)
        self.convg2g = SpectralTransform(in_global, out_global, stride) if in_global and out_global else None

    @staticmethod
    def _sum(*paths):
        present = [path for path in paths if path is not None]
        return sum(present[1:], present[0]) if present else None

    def forward(self, x: tuple) -> tuple:
        x_local, x_global = x
        out_local = out_global = None
        if self.ratio_gout != 1:
            out_local = self._sum(self.convl2l(x_local) if self.convl2l else None,
                                  self.convg2l(x_global) if self.convg2l else None)
        if self.ratio_gout != 0:
            out_global = self._sum(self.convl2g(x_local) if self.convl2g else None,
                                   self.convg2g(x_global) if self.convg2g else None)
        return out_local, out_global


class FFC_BN_ACT(nn.Module):
    """An FFC, then BatchNorm and an activation on each of its two outputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1, activation: type[nn.Module] = nn.Identity):
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation)
        global_channels = int(out_channels * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_channels - global_channels) if ratio_gout != 1 else nn.Identity()
        self.bn_g = nn.BatchNorm2d(global_channels) if ratio_gout != 0 else nn.Identity()
        self.act_l = activation(inplace=True) if ratio_gout != 1 else nn.Identity()
        self.act_g = activation(inplace=True) if ratio_gout != 0 else nn.Identity()

    def forward(self, x) -> tuple:
        x = x if isinstance(x, tuple) else (x, None)
        x_local, x_global = self.ffc(x)
        if x_local is not None:
            x_local = self.act_l(self.bn_l(x_local))
        if x_global is not None:
            x_global = self.act_g(self.bn_g(x_global))
        return x_local, x_global


class FFCResnetBlock(nn.Module):
    """Two 3x3 FFC + BN + ReLU with a residual on each channel group."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        self.conv1 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1, activation=nn.ReLU)
        self.conv2 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1, activation=nn.ReLU)

    def forward(self, x: tuple) -> tuple:
        id_local, id_global = x
        x_local, x_global = self.conv2(self.conv1(x))
        return id_local + x_local, id_global + x_global


class ConcatTupleLayer(nn.Module):
    def forward(self, x: tuple) -> torch.Tensor:
        x_local, x_global = x
        return x_local if x_global is None else torch.cat((x_local, x_global), dim=1)


class FFCResNetGenerator(nn.Module):
    """LaMa's `ffc_resnet` generator: (N, 4, S, S) image in [0, 1] with the hole zeroed, and the
    hole -> (N, 3, S, S) in [0, 1]. `ngf` is 64 in the release."""

    def __init__(self, ngf: int = PAPER_NGF, n_blocks: int = 9, ratio_g: float = 0.75,
                 n_downsampling: int = DOWNSAMPLINGS, input_nc: int = 4, output_nc: int = 3):
        super().__init__()
        model: list[nn.Module] = [nn.ReflectionPad2d(3),
                                  FFC_BN_ACT(input_nc, ngf, 7, 0.0, 0.0, activation=nn.ReLU)]
        for i in range(n_downsampling):
            # The last downsampling layer splits its output for the residual blocks.
            ratio_gout = ratio_g if i == n_downsampling - 1 else 0.0
            model.append(FFC_BN_ACT(min(MAX_FEATURES, ngf * 2 ** i), min(MAX_FEATURES, ngf * 2 ** (i + 1)), 3,
                                    0.0, ratio_gout, stride=2, padding=1, activation=nn.ReLU))
        bottleneck = min(MAX_FEATURES, ngf * 2 ** n_downsampling)
        model += [FFCResnetBlock(bottleneck, ratio_g) for _ in range(n_blocks)]
        model.append(ConcatTupleLayer())
        for i in range(n_downsampling):
            channels = min(MAX_FEATURES, ngf * 2 ** (n_downsampling - i))
            model += [nn.ConvTranspose2d(channels, min(MAX_FEATURES, channels // 2), kernel_size=3, stride=2,
                                         padding=1, output_padding=1),
                      nn.BatchNorm2d(min(MAX_FEATURES, channels // 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Sigmoid()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def scaled(channels: int, width: float, model: str) -> int:
    if width <= 0:
        raise UserError(f"{model}: width must be > 0, got {width}; set models.lama.width to e.g. 1.0")
    return max(8, round(channels * width))


class LamaGenerator(nn.Module):
    """The pipeline's interface around `FFCResNetGenerator`: (masked image in [-1, 1], hole) ->
    prediction in [-1, 1]. `width` scales ngf (64 in the release)."""

    def __init__(self, size: int, width: float = 1.0, n_blocks: int = 9, ratio_g: float = 0.75):
        super().__init__()
        if size % 2 ** DOWNSAMPLINGS or size < 2 * 2 ** DOWNSAMPLINGS:  # reflect-padding needs a 2x2 bottleneck
            raise UserError(f"LamaGenerator: size must be a multiple of {2 ** DOWNSAMPLINGS} and at least 16, "
                            f"got {size}; set data.size to e.g. 256")
        self.net = FFCResNetGenerator(scaled(PAPER_NGF, width, "LamaGenerator"), n_blocks, ratio_g)

    def forward(self, masked_image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        image01 = (masked_image + 1) / 2 * (1 - hole)            # (N, 3, S, S), hole = 0 as LaMa feeds it
        prediction01 = self.net(torch.cat((image01, hole), 1))   # (N, 3, S, S) in [0, 1]
        return prediction01 * 2 - 1
