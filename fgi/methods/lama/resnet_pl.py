"""LaMa's high-receptive-field perceptual loss (`resnet_pl`, Suvorov et al. §3.2).

The squared distance between the features of a segmentation network for the
prediction and for the image: the ADE20k ResNet50-dilated encoder of CSAIL's
semantic-segmentation-pytorch (Zhou et al., "Scene Parsing through ADE20K
Dataset", CVPR 2017), whose dilated layers see far. As released in
advimman/lama, `saicinpainting/training/losses/perceptual.py` (`ResNetPL`) and
`models/ade20k/{base,resnet}.py` (`ResnetDilated` over a deep-stem `resnet50`,
dilate_scale 8):

    3 x conv 3x3 + BN + ReLU (stride 2 first), maxpool    (N, 128, S/4, S/4)
    layer1..layer4: 3, 4, 6, 3 bottlenecks                (N, 256|512|1024|2048, S/4, S/8, S/8, S/8)
        layer3 and layer4 trade their stride for dilation 2 and 4

    loss = weight * sum over the 4 layer outputs of mean((f(pred) - f(image))^2)

on images in [0, 1] normalised with ImageNet's mean and std; the encoder is
frozen in eval mode. Attribute names follow the release, so its
`encoder_epoch_20.pth` loads as is. The weights come from the `weights` stage
(network `ade20k_resnet50dilated`); offline they are a seeded random init in the
release's own init scheme, recorded as such.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgi.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NETWORK = "ade20k_resnet50dilated"  # its name in the weights stage (fgi/data/weights.py)
RANDOM_INIT_SEED = 0


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class ResnetDilated(nn.Module):
    """The ADE20k encoder: (N, 3, S, S) normalised -> the outputs of layer1..layer4."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = conv3x3(3, 64, stride=2), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.conv2, self.bn2, self.relu2 = conv3x3(64, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.conv3, self.bn3, self.relu3 = conv3x3(64, 128), nn.BatchNorm2d(128), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = 128
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        # `_nostride_dilate` of the release: the first block keeps its stride's dilation/2, the rest dilate.
        self.layer3 = self._make_layer(256, 6, first_dilation=1, dilation=2)
        self.layer4 = self._make_layer(512, 3, first_dilation=2, dilation=4)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, first_dilation: int = 1,
                    dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, first_dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_random(self, seed: int) -> None:
        """The release's ResNet init (normal(0, sqrt(2 / (k*k*out))), BN at 1 and 0), from a private generator."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                with torch.no_grad():
                    module.weight.normal_(0, math.sqrt(2.0 / fan_out), generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))   # (N, 64, S/2, S/2)
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))   # (N, 128, S/2, S/2)
        x = self.maxpool(x)                       # (N, 128, S/4, S/4)
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


def load_encoder(path: Path | None) -> tuple[ResnetDilated, str]:
    """The frozen encoder from the weights stage's file, or a seeded random one; and its provenance."""
    encoder = ResnetDilated()
    if path is None:
        encoder.init_random(RANDOM_INIT_SEED)
        provenance = f"random-init (offline, seed {RANDOM_INIT_SEED})"
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: any unpickling error
            raise UserError(f"{path}: cannot be read as the ADE20k encoder ({type(err).__name__}); delete it and "
                            "rerun the weights stage") from err
        missing = set(encoder.state_dict()) - set(state) if isinstance(state, dict) else {"(not a state dict)"}
        if missing:
            raise UserError(f"{path}: not the ADE20k ResNet50-dilated encoder (missing {sorted(missing)[:3]}); "
                            "delete it and rerun the weights stage")
        # The release loads with strict=False: the file may hold more (e.g. the classifier's fc).
        encoder.load_state_dict({key: state[key] for key in encoder.state_dict()})
        provenance = f"pretrained:{path.name}"
    encoder.requires_grad_(False)
    return encoder.eval(), provenance


class ResNetPL(nn.Module):
    """weight * sum_l mse(f_l(pred), f_l(image)) over the encoder's four layers; inputs in [0, 1]."""

    def __init__(self, encoder: ResnetDilated, weight: float = 1.0):
        super().__init__()
        self.impl, self.weight = encoder, weight
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "ResNetPL":
        super().train(mode)
        self.impl.eval()  # frozen: BatchNorm keeps its running statistics whatever the caller does
        return self

    def forward(self, prediction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        prediction_features = self.impl((prediction - self.mean) / self.std)
        image_features = self.impl((image - self.mean) / self.std)
        return torch.stack([F.mse_loss(p, i) for p, i in zip(prediction_features, image_features)]).sum() * self.weight
