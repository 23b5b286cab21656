"""The model registry: build a model's networks by name from its params section.

    generator = make_generator("ours", params.models.ours, size=params.data.size)

An unknown name is a `UserError` listing the known ones (as LaMa's
`make_generator`). `biharmonic` is the classical reference: it has no
networks and is built with `make_classical`.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from fgi.errors import UserError

LEARNED = ("ours", "ce", "pconv", "gc")


def _generators() -> dict[str, Callable[[Any, int], nn.Module]]:
    from fgi.models.ce import ContextEncoder
    from fgi.models.gc import GatedGenerator
    from fgi.models.ours import ForegroundGuidedGenerator
    from fgi.models.pconv import PConvUNet

    return {
        "ours": lambda cfg, size: ForegroundGuidedGenerator(size, cfg.width),
        "ce": lambda cfg, size: ContextEncoder(size, cfg.width, bottleneck=cfg.bottleneck),
        "pconv": lambda cfg, size: PConvUNet(size, cfg.width),
        "gc": lambda cfg, size: GatedGenerator(size, cfg.width, attention=cfg.attention),
    }


def _discriminators() -> dict[str, Callable[[Any, int], nn.Module | None]]:
    from fgi.models.ce import DCGANDiscriminator
    from fgi.models.gc import SNPatchGAN
    from fgi.models.ours import WGANCritic

    return {
        "ours": lambda cfg, size: WGANCritic(size, cfg.width),
        "ce": lambda cfg, size: DCGANDiscriminator(size, cfg.width),
        "pconv": lambda cfg, size: None,  # Liu et al. train without a discriminator
        "gc": lambda cfg, size: SNPatchGAN(size, cfg.width),
    }


def _known(name: str, registry: dict) -> None:
    if name not in registry:
        raise UserError(f"unknown model {name!r}; known learned models: {', '.join(registry)} "
                        "(biharmonic needs no training)")


def make_generator(name: str, cfg: Any, size: int) -> nn.Module:
    registry = _generators()
    _known(name, registry)
    return registry[name](cfg, size)


def make_discriminator(name: str, cfg: Any, size: int) -> nn.Module | None:
    registry = _discriminators()
    _known(name, registry)
    return registry[name](cfg, size)


def make_classical(name: str, cfg: Any):
    if name != "biharmonic":
        raise UserError(f"unknown classical method {name!r}; known: biharmonic")
    from fgi.models.classical import BiharmonicInpainter

    return BiharmonicInpainter(split_into_regions=cfg.split_into_regions)


def parameter_count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
