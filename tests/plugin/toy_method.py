"""A toy inpainting method in one file, from outside fgi: what docs/adding-a-method.md walks through.

A three-layer convolutional network fills the hole, trained with an L1 loss
inside the hole and outside it. No paper; it exists to prove that a method
registered through the `fgi.methods` entry point runs through the whole
pipeline with no edit to fgi/.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from fgi.config import spec
from fgi.methods import Method
from fgi.methods.base import Objective, composite


@dataclass(frozen=True)
class ToyParams:
    width: float = spec(gt=0.0, le=4.0)   # channels = 16 x width
    lr_g: float = spec(gt=0.0)
    beta1: float = spec(ge=0.0, le=1.0)
    beta2: float = spec(ge=0.0, le=1.0)
    w_hole: float = spec(ge=0.0)           # weight of the L1 inside the hole; outside it weighs 1


class ToyGenerator(nn.Module):
    def __init__(self, size: int, width: float):
        super().__init__()
        channels = max(4, round(16 * width))
        self.net = nn.Sequential(
            nn.Conv2d(4, channels, 3, padding=1), nn.ReLU(),        # (N, 4, S, S) -> (N, C, S, S)
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh())        # -> (N, 3, S, S) in [-1, 1]

    def forward(self, masked: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([masked, hole], dim=1))


class ToyObjective(Objective):
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext):
        with autocast():
            prediction = self.generator(image * (1 - hole), hole)
            inside = ((prediction - image).abs() * hole).mean()
            outside = ((prediction - image).abs() * (1 - hole)).mean()
            total = self.cfg.w_hole * inside + outside
        self._update("generator", total)
        return {"g/total": total, "g/hole": inside, "g/valid": outside,
                "g/composite_l1": (composite(prediction, image, hole) - image).abs().mean()}


METHOD = Method(
    name="toy", display="Toy", citation="a toy plugin", params=ToyParams,
    generator=lambda cfg, size: ToyGenerator(size, cfg.width),
    objective=ToyObjective,
)
