"""Frozen VGG16 feature extractor for the perceptual, style and foreground losses.

VGG16 is Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition" (ICLR 2015); its use as a fixed loss network
follows Johnson et al. 2016 (the seed paper's Eq. 3) and Liu et al. 2018
(PConv's perceptual and style losses on pool1-pool3).

The layers are torchvision's `vgg16().features` (configuration "D"), built
here without the 100M parameter classifier, and without importing torchvision,
whose import costs each training process ~2 s. torchvision's indices into
`features` (so that the
ImageNet checkpoint `vgg16-397923af.pth`, keys `features.<i>.weight`, loads
unchanged):

    block 1:  0 conv1_1   1 relu1_1   2 conv1_2   3 relu1_2   4 pool1
    block 2:  5 conv2_1   6 relu2_1   7 conv2_2   8 relu2_2   9 pool2
    block 3: 10 conv3_1  11 relu3_1  12 conv3_2  13 relu3_2  14 conv3_3  15 relu3_3  16 pool3
    block 4: 17 conv4_1  18 relu4_1  19 conv4_2  20 relu4_2  21 conv4_3  22 relu4_3  23 pool4
    block 5: 24 conv5_1  25 relu5_1  26 conv5_2  27 relu5_2  28 conv5_3  29 relu5_3  30 pool5

Without a checkpoint (no internet) the convolutions get a seeded Kaiming
init, and `provenance` says so, so no report mistakes them for ImageNet
features.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from fgi.errors import UserError

RANDOM_INIT_PROVENANCE = "random-init (offline)"

# ImageNet statistics the torchvision checkpoint was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Channels of each 3x3 convolution, "M" a 2x2 max-pool: VGG16 (Simonyan & Zisserman's D).
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_features() -> nn.Sequential:
    """torchvision's `vgg16().features`: the same modules at the same indices."""
    layers: list[nn.Module] = []
    channels = 3
    for entry in VGG16_CONFIG:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = entry
    return nn.Sequential(*layers)


def _layer_indices() -> dict[str, int]:
    """Map 'relu<b>_<k>' and 'pool<b>' to their index in torchvision's vgg16 `features`."""
    indices: dict[str, int] = {}
    index, block, conv_in_block = 0, 1, 0
    for entry in VGG16_CONFIG:
        if entry == "M":
            indices[f"pool{block}"] = index
            index, block, conv_in_block = index + 1, block + 1, 0
        else:
            conv_in_block += 1
            indices[f"relu{block}_{conv_in_block}"] = index + 1  # conv at index, ReLU after it
            index += 2
    return indices


LAYER_INDEX = _layer_indices()
# The layers a params file may name (a method's `vgg_layers`).
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "pool1", "pool2", "pool3", "pool4", "pool5")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class VGG16Features(nn.Module):
    """Frozen VGG16 returning the feature maps of `layers` (in the order given).

    Input: images (N, 3, H, W) in [-1, 1]. Output: a list with one tensor per
    requested layer, e.g. for pool1, pool2, pool3 at 32x32:
    (N, 64, 16, 16), (N, 128, 8, 8), (N, 256, 4, 4).
    Gradients flow to the input; the weights never change.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        weights: str | Path | None = None,
        seed: int = 0,
    ):
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if not layers or unknown:
            raise UserError(
                f"VGG16 layers {list(unknown) or '[]'} unknown; "
                f"use names from {sorted(LAYER_INDEX)}"
            )
        self.layers = layers
        self.layer_indices = tuple(LAYER_INDEX[name] for name in layers)
        deepest = max(self.layer_indices)

        # Building the convs draws from the global RNG; fork it so that creating
        # the loss network never shifts the initialisation of the models trained.
        with torch.random.fork_rng(devices=[]):
            features = vgg16_features()[: deepest + 1]
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # the returned ReLU outputs must not be overwritten
        self.features = features

        if weights is None:
            self._init_random(seed)
            self.provenance = RANDOM_INIT_PROVENANCE
        else:
            path = Path(weights)
            self._load_checkpoint(path)
            self.provenance = f"pretrained:{sha256_of(path)}"

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _init_random(self, seed: int) -> None:
        # Same scheme as torchvision's VGG init, but from a private generator.
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                nn.init.zeros_(module.bias)

    def _load_checkpoint(self, path: Path) -> None:
        if not path.is_file():
            raise UserError(
                f"VGG16 weights file {path} not found; run the `weights` stage or pass weights=None"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unreadable file is the user's to replace
            raise UserError(
                f"VGG16 weights file {path} could not be read ({type(err).__name__}); "
                "delete it and run the `weights` stage again"
            ) from None
        if not isinstance(state, dict):
            raise UserError(
                f"VGG16 weights file {path} is not a state dict; use torchvision's vgg16 checkpoint"
            )
        prefix = "features."
        kept = {}
        for key, value in state.items():
            index = key[len(prefix):].split(".")[0]
            if key.startswith(prefix) and index.isdigit() and int(index) < len(self.features):
                kept[key[len(prefix):]] = value  # layers past the deepest requested are dropped
        try:
            self.features.load_state_dict(kept, strict=True)
        except RuntimeError:
            raise UserError(
                f"VGG16 weights file {path} does not match torchvision's vgg16 "
                "(keys features.<i>.weight/bias); use vgg16-397923af.pth"
            ) from None

    def train(self, mode: bool = True) -> "VGG16Features":
        # A loss network stays in eval mode whatever its parent module does.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images + 1) / 2  # (N, 3, H, W) in [0, 1]
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # ImageNet-normalised
        found: dict[int, torch.Tensor] = {}
        wanted = set(self.layer_indices)
        for index, module in enumerate(self.features):
            x = module(x)  # pool<b> halves H and W
            if index in wanted:
                found[index] = x
        return [found[index] for index in self.layer_indices]
