"""What every learned method's objective shares: one training step's protocol, its optimisers.

Every objective follows the same protocol: the generator runs once per step on
the masked image; the discriminator (if any) is updated on the detached
composite; then the generator is updated on its weighted loss terms. Losses
are the functions of `fgi.methods.losses`; weights and learning rates come from
the method's params section. Each method's subclass lives in its own module
(`fgi/methods/<name>/__init__.py`).
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fgi import methods
from fgi.errors import UserError

if TYPE_CHECKING:
    from fgi.methods.vgg import VGG16Features


def composite(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Known pixels from the image, hole pixels from the prediction."""
    return prediction * hole + image * (1 - hole)


def unwrap(module: nn.Module) -> nn.Module:
    """The bare network inside DDP and torch.compile wrappers."""
    if isinstance(module, DistributedDataParallel):
        module = module.module
    return getattr(module, "_orig_mod", module)  # torch.compile's OptimizedModule


def _random_init(network: str) -> None:
    return None


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam as every objective builds it: the fused kernel (CPU and CUDA), one pass over all
    parameters instead of ~6 per parameter tensor (reports/bench.md: the optimiser was a
    third of CE's CPU step)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


@contextlib.contextmanager
def frozen(network: nn.Module):
    """`network` outside DDP, its parameters out of autograd inside the block.

    For a generator update that runs through the discriminator: its weight gradients would be
    computed and then zeroed by its own update. The releases' trainers do not compute them
    (LaMa's `_do_step` turns requires_grad off; neuralgym's optimisers take a var_list), and in
    LaMa's and GC's steps they were a tenth of the time. Outside DDP, because DDP would wait for
    gradients that do not come.
    """
    bare = network.module if isinstance(network, DistributedDataParallel) else network
    trained = [p for p in bare.parameters() if p.requires_grad]
    for parameter in trained:
        parameter.requires_grad_(False)
    try:
        yield bare
    finally:
        for parameter in trained:
            parameter.requires_grad_(True)


class Objective(abc.ABC):
    """A model's networks, optimisers and one training step.

    `vgg` builds the VGG16 feature extractor (when `uses_vgg`); `pretrained(network)` gives the
    file of any other network the `weights` stage fetched (fgi/data/weights.py), or None when it
    is random-init offline, for an objective with a loss network of its own."""

    uses_vgg = False

    def __init__(self, method, cfg: Any, size: int, vgg: Callable[[], VGG16Features] | None = None,
                 pretrained: Callable[[str], Path | None] = _random_init):
        self.name, self.cfg, self.pretrained = method.name, cfg, pretrained
        self.generator = method.generator(cfg, size)
        self.discriminator = method.discriminator(cfg, size) if method.discriminator else None
        self.vgg = vgg() if self.uses_vgg and vgg is not None else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": adam(self.generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))}
        if self.discriminator is not None:
            self.optimizers["discriminator"] = adam(
                self.discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))

    def to(self, device: torch.device, memory_format=torch.contiguous_format) -> "Objective":
        for net in (self.generator, self.discriminator, self.vgg):
            if net is not None:
                net.to(device=device, memory_format=memory_format)
        return self

    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets

    def _update(self, which: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[which]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def schedule(self, step: int, total: int) -> None:
        """Set the training phase for step `step` (0-based) of `total`; called before every step,
        so a resumed run lands in the right phase. Most models have one phase."""

    @abc.abstractmethod
    def step(self, image, hole, fg_mask, autocast=contextlib.nullcontext) -> dict[str, torch.Tensor]:
        """One update of every network; returns the loss terms."""


def make_objective(method, cfg: Any, size: int, vgg: Callable[[], VGG16Features] | None = None,
                   pretrained: Callable[[str], Path | None] = _random_init) -> Objective:
    """The training objective of learned `method` (an `fgi.methods.Method`, or its name) on its section `cfg`;
    without `vgg` and `pretrained`, loss networks are random-init."""
    if isinstance(method, str):
        method = methods.get(method)
    if not method.learned:
        raise UserError(f"{method.name!r} is a classical method: it has nothing to train")
    return method.objective(method, cfg, size, vgg, pretrained)


def parameter_count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
