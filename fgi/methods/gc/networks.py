"""Gated convolutions: the DeepFill v2 generator and the SN-PatchGAN discriminator.

Yu, Lin, Yang, Shen, Lu, Huang, "Free-Form Image Inpainting with Gated
Convolution", ICCV 2019 (arXiv:1806.03589). The layer plan follows the
released TensorFlow code (JiahuiYu/generative_inpainting, v2), which fixes
details the paper leaves open:

* A gated convolution is one convolution to 2·out channels split into a
  feature and a gate: out = ELU(feature) ⊙ sigmoid(gate). The released
  `gen_conv(x, cnum)` convolves to cnum channels and splits them, so its layers
  output cnum/2 channels; here `GatedConv2d(in_ch, out_ch)` names the output.
* Coarse network: 5x5 gated conv, two stride-2 gated convs (each followed by a
  3x3 one), gated convs dilated 2, 4, 8, 16, then nearest ×2 upsampling +
  gated conv twice, and a 3x3 output conv to 3 channels with tanh. The output
  conv has no gate (the released `gen_conv` returns the raw conv when cnum = 3).
* Refinement network on the composite coarse·hole + image·(1 - hole): a
  dilated gated-conv branch and a contextual-attention branch (see
  `contextual_attention.py`; its last conv before the attention uses ReLU),
  concatenated, then the coarse network's decoder. As released, the
  refinement input is the 3-channel composite alone; the hole reaches it
  through the attention's candidate mask.
* Generator input: masked image, a ones channel (it marks the zero padding at
  the image border) and the hole → 5 channels. Base width cnum = 48; at width
  1.0 the generator has the paper's 4.1M parameters.
* SN-PatchGAN: six 5x5 stride-2 convs, spectral normalisation, LeakyReLU(0.2)
  after each (the last too), channels 64, 128, 256, 256, 256, 256. Input:
  image + hole (4 channels; the released `gan_with_mask`, without a ones
  channel). Output: the flattened feature map, so the hinge loss applies to
  every element.
* Convolutions start from TensorFlow's default initialisation (Glorot
  uniform, zero bias), as the released code does.
* Padding is TensorFlow's 'SAME' everywhere, as released: `build_inpaint_net`
  defaults to padding='SAME' (its inference graph passes no other), which
  `gen_conv` hands to `tf.layers.conv2d`, and `dis_conv` convolves with
  'SAME'. For a stride-2 layer on an even side TensorFlow pads one pixel more
  after than before (3x3: 0 / 1, 5x5: 1 / 2), so `SameConv2d` pads
  asymmetrically there; a symmetric PyTorch padding would sample a grid
  shifted by one pixel. Stride-1 layers (odd kernels) pad symmetrically.
* Contextual attention downsamples the features with TF1's nearest-neighbour
  resize with align_corners=True, as neuralgym's `resize` does (see
  `contextual_attention.resize_nearest_align_corners`). The ×2 upsampling in
  `gen_deconv` uses the same resize, which at an exact doubling reads the
  same pixels as PyTorch's nearest mode.

Adaptations to the working size (the published model is 256x256): the
generator always downsamples by 4, but caps the dilation rates at a quarter of
the feature map side (256 keeps 2, 4, 8, 16; 64 → 2, 4, 4, 4; 32 → 2, 2, 2,
2), so no dilated tap lands wholly in the padding. The discriminator keeps its
six layers but stops halving at 4x4; the remaining layers have stride 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.nn.utils.parametrizations import spectral_norm

from fgi.errors import UserError
from fgi.methods.gc.contextual_attention import ContextualAttention, same_padding

PAPER_CNUM = 48  # the released generator's base width
PAPER_DILATIONS = (2, 4, 8, 16)
PAPER_DISC_CHANNELS = (64, 128, 256, 256, 256, 256)
# Stride-2 layers before contextual attention × its matching downsampling rate.
SIDE_MULTIPLE = 4 * 2


def check_size(size: int, model: str) -> None:
    """Both networks need a side that the generator's ×4 downsampling and the ×2 attention rate divide."""
    if size < 16 or size % SIDE_MULTIPLE:
        raise UserError(f"{model}: size must be a multiple of {SIDE_MULTIPLE} and >= 16, got {size}; "
                        "set data.size to e.g. 256")


def check_width(width: float, model: str) -> None:
    if width <= 0:
        raise UserError(f"{model}: width must be > 0, got {width}; set width to e.g. 1.0")


def glorot_init(module: nn.Module) -> None:
    """TensorFlow's default conv initialisation, which the released code relies on: Glorot uniform, zero bias."""
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def dilation_rates(size: int) -> tuple[int, ...]:
    """The dilated middle's rates at `size`: the paper's 2, 4, 8, 16, capped at (size/4)/4, at least 1."""
    cap = max(1, size // 4 // 4)
    return tuple(min(rate, cap) for rate in PAPER_DILATIONS)


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow 'SAME' zero padding, as the released `gen_conv` and `dis_conv` use.

    The output side is ceil(side / stride). At stride 1 (odd kernels only) the
    padding is symmetric, so the conv pads itself; at stride > 1 the padding
    is computed per input (`same_padding`) and can be one pixel larger after
    than before, which PyTorch's symmetric `padding` cannot express.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        if stride == 1 and kernel_size % 2 == 0:
            raise ValueError(f"SameConv2d: stride 1 needs an odd kernel, got {kernel_size}")
        padding = dilation * (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=padding, dilation=dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", tf_padding='SAME'"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1 or self.stride[1] > 1:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
            x = F.pad(x, (left, right, top, bottom))  # (N, C, H + top + bottom, W + left + right)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def gated_elu(feature: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ELU(feature), sigmoid(gate)), new dense tensors in at least float32, ELU as TensorFlow's kernel.

    TensorFlow's Elu is x above 0, exp(x) − 1 below. Here it is max(x, exp(min(x, 0)) − 1), the
    same values (e^x − 1 ≥ x, equal at 0) to within one rounding of exp. Why not F.elu: it takes
    expm1, which has no vectorised CPU kernel in torch (a scalar loop, ~10x exp's time: a fifth
    of the generator's forward pass). Why copy the gate first: exp and sigmoid run several
    times slower on a strided view, as the conv output's halves are in channels_last, than on a
    dense tensor; the copy costs a sixth of the sigmoid. At least float32: exp(x) − 1 rounded to
    bfloat16 twice would lose most of the digits of a small negative ELU.
    """
    exact = torch.promote_types(feature.dtype, torch.float32)
    elu = feature.to(exact).clamp_max(0).exp_().sub_(1)  # dense: e^min(x, 0) − 1
    elu = torch.maximum(elu, feature, out=elu)  # x above 0
    sigmoid = gate.to(exact, memory_format=torch.preserve_format, copy=True).sigmoid_()
    return elu, sigmoid


class GatedELU(torch.autograd.Function):
    """ELU(feature) · sigmoid(gate) (`gated_elu`), with TensorFlow's EluGrad read from the output:
    1 where ELU > 0, ELU + 1 elsewhere. Inference skips the autograd function (`GatedConv2d`)."""

    @staticmethod
    def forward(ctx, feature: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        elu, sigmoid = (t.to(feature.dtype) for t in gated_elu(feature, gate))
        ctx.save_for_backward(elu, sigmoid)
        return elu * sigmoid

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        elu, sigmoid = ctx.saved_tensors
        grad_feature = grad * sigmoid * torch.where(elu > 0, 1.0, elu + 1)
        grad_gate = grad * elu * sigmoid * (1 - sigmoid)
        return grad_feature, grad_gate


ACTIVATIONS = ("elu", "relu", "none")


class GatedConv2d(nn.Module):
    """`activation(feature) * sigmoid(gate)` from one conv to 2·out_ch channels; TF 'SAME' padding.

    `activation` is "elu" (the released `gen_conv`), "relu" (the attention branch's last
    conv) or "none" (feature · sigmoid(gate)). The first out_ch conv channels are the feature,
    the last out_ch the gate.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 activation: str = "elu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.out_ch = out_ch
        self.activation = activation
        self.conv = SameConv2d(in_ch, 2 * out_ch, kernel_size, stride=stride, dilation=dilation)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gate = self.conv(x).split(self.out_ch, dim=1)  # 2 × (N, out_ch, H/stride, W/stride)
        if self.activation == "elu":
            if torch.is_grad_enabled():
                return GatedELU.apply(feature, gate)
            elu, sigmoid = gated_elu(feature, gate)
            return elu.mul_(sigmoid).to(feature.dtype)
        if self.activation == "relu":
            feature = F.relu(feature)
        return feature * torch.sigmoid(gate)


class GatedDeconv2d(nn.Module):
    """Nearest ×2 upsampling, then a 3x3 gated conv (the released `gen_deconv`).

    The release upsamples with align_corners=True; at exactly ×2 that reads
    source pixel floor(i / 2), the same as PyTorch's nearest mode.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = GatedConv2d(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (N, in_ch, 2H, 2W)
        return self.conv(x)  # (N, out_ch, 2H, 2W)


def output_layer(in_ch: int) -> nn.Sequential:
    """Plain 3x3 conv to RGB (no gate, as released) and tanh into [-1, 1]."""
    return nn.Sequential(nn.Conv2d(in_ch, 3, 3, padding=1), nn.Tanh())


def decoder(in_ch: int, cnum: int) -> nn.Sequential:
    """(N, in_ch, H/4, W/4) → (N, 3, H, W): two gated convs, two upsamplings, the output layer."""
    return nn.Sequential(
        GatedConv2d(in_ch, 2 * cnum, 3),
        GatedConv2d(2 * cnum, 2 * cnum, 3),
        GatedDeconv2d(2 * cnum, cnum),  # (N, cnum, H/2, W/2)
        GatedConv2d(cnum, cnum, 3),
        GatedDeconv2d(cnum, cnum // 2),  # (N, cnum/2, H, W)
        GatedConv2d(cnum // 2, cnum // 4, 3),
        output_layer(cnum // 4),  # (N, 3, H, W)
    )


class GatedGenerator(nn.Module):
    """DeepFill v2 two-stage generator: `forward(masked_image, hole) -> refined` (N, 3, H, W) in [-1, 1].

    `forward_stages` returns (coarse, refined) for the loss, which applies L1
    to both. Neither output is composited; the caller pastes the known pixels.
    """

    # `fgi.inference.memory_format`: oneDNN's float32 convolutions run this network ~1.1x faster
    # on channels_last weights and inputs (benchmarks/releases.py), so inference uses it there too.
    channels_last_float32 = True

    def __init__(self, size: int, width: float = 1.0, attention: bool = True, attention_variant: str = "released"):
        super().__init__()
        check_size(size, "GatedGenerator")
        check_width(width, "GatedGenerator")
        self.size = size
        self.dilations = dilation_rates(size)
        c = max(8, round(PAPER_CNUM * width))  # the released cnum; gated layers output c/2 … 2c

        self.coarse = nn.Sequential(
            GatedConv2d(5, c // 2, 5),  # (N, c/2, H, W)
            GatedConv2d(c // 2, c, 3, stride=2),  # (N, c, H/2, W/2)
            GatedConv2d(c, c, 3),
            GatedConv2d(c, 2 * c, 3, stride=2),  # (N, 2c, H/4, W/4)
            GatedConv2d(2 * c, 2 * c, 3),
            GatedConv2d(2 * c, 2 * c, 3),
            *[GatedConv2d(2 * c, 2 * c, 3, dilation=rate) for rate in self.dilations],
            decoder(2 * c, c),  # (N, 3, H, W)
        )
        self.refine_conv = nn.Sequential(
            GatedConv2d(3, c // 2, 5),  # (N, c/2, H, W)
            GatedConv2d(c // 2, c // 2, 3, stride=2),  # (N, c/2, H/2, W/2)
            GatedConv2d(c // 2, c, 3),
            GatedConv2d(c, c, 3, stride=2),  # (N, c, H/4, W/4)
            GatedConv2d(c, 2 * c, 3),
            GatedConv2d(2 * c, 2 * c, 3),
            *[GatedConv2d(2 * c, 2 * c, 3, dilation=rate) for rate in self.dilations],
        )
        self.refine_attention_in = nn.Sequential(
            GatedConv2d(3, c // 2, 5),  # (N, c/2, H, W)
            GatedConv2d(c // 2, c // 2, 3, stride=2),  # (N, c/2, H/2, W/2)
            GatedConv2d(c // 2, c, 3),
            GatedConv2d(c, 2 * c, 3, stride=2),  # (N, 2c, H/4, W/4)
            GatedConv2d(2 * c, 2 * c, 3),
            GatedConv2d(2 * c, 2 * c, 3, activation="relu"),
        )
        # Without attention (an ablation, `models.gc.attention: false`) the branch's
        # features pass straight on, so the parameter count stays the same.
        self.attention = ContextualAttention(ksize=3, stride=1, rate=2, variant=attention_variant) if attention else None
        self.refine_attention_out = nn.Sequential(
            GatedConv2d(2 * c, 2 * c, 3),
            GatedConv2d(2 * c, 2 * c, 3),
        )
        self.refine_decoder = decoder(4 * c, c)
        self.apply(glorot_init)

    def forward_stages(self, masked_image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) masked image and (N, 1, H, W) hole → (coarse, refined), each (N, 3, H, W) in [-1, 1]."""
        if masked_image.shape[-2] % SIDE_MULTIPLE or masked_image.shape[-1] % SIDE_MULTIPLE:
            raise UserError(f"GatedGenerator: image side must be a multiple of {SIDE_MULTIPLE}, got "
                            f"{tuple(masked_image.shape[-2:])}; resize the input to {self.size}x{self.size}")
        ones = torch.ones_like(hole)
        coarse = self.coarse(torch.cat([masked_image, ones, hole], dim=1))  # (N, 5, H, W) → (N, 3, H, W)

        composite = coarse * hole + masked_image * (1 - hole)  # (N, 3, H, W)
        hallucinated = self.refine_conv(composite)  # (N, 2c, H/4, W/4)
        features = self.refine_attention_in(composite)  # (N, 2c, H/4, W/4)
        if self.attention is not None:
            features = self.attention(features, features, hole)  # copy known patches into the hole
        copied = self.refine_attention_out(features)  # (N, 2c, H/4, W/4)
        refined = self.refine_decoder(torch.cat([hallucinated, copied], dim=1))  # (N, 4c, H/4, W/4) → (N, 3, H, W)
        return coarse, refined

    def forward(self, masked_image: torch.Tensor, hole: torch.Tensor, stages: bool = False):
        """(N, 3, H, W) masked image and (N, 1, H, W) hole → (N, 3, H, W) refined prediction,
        or (coarse, refined) with `stages` (training goes through forward so DDP sees the call)."""
        coarse, refined = self.forward_stages(masked_image, hole)
        return (coarse, refined) if stages else refined


class SNPatchGAN(nn.Module):
    """SN-PatchGAN critic: `forward(image, hole) -> (N, C·h·w)` scores, one per feature-map element."""

    def __init__(self, size: int, width: float = 1.0):
        super().__init__()
        check_size(size, "SNPatchGAN")
        check_width(width, "SNPatchGAN")
        channels = [max(8, round(ch * width)) for ch in PAPER_DISC_CHANNELS]
        side, halvings = size, 0
        while halvings < len(channels) and -(-side // 2) >= 4:
            side, halvings = -(-side // 2), halvings + 1
        self.out_side = side  # 4 at every power-of-two size from 16 to 256

        layers: list[nn.Module] = []
        prev = 4
        for i, ch in enumerate(channels):
            # 'SAME' as the released dis_conv: a stride-2 5x5 pads 1 before, 2 after.
            conv = SameConv2d(prev, ch, 5, stride=2 if i < halvings else 1)
            glorot_init(conv)
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2, inplace=True)]
            prev = ch
        self.features = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) image and (N, 1, H, W) hole → (N, C·h·w), h = w = `out_side` at the built size."""
        x = self.features(torch.cat([image, hole], dim=1))  # (N, 4, H, W) → (N, C, h, w)
        return x.flatten(1)
