"""LaMa's loss terms, as released in advimman/lama (Suvorov et al. §3.2–3.3).

`saicinpainting/training/losses/feature_matching.py` (`masked_l1_loss`,
`feature_matching_loss`) and `adversarial.py` (`NonSaturatingWithR1`, with
`mask_as_fake_target` and the hole scaled to the logits' size by nearest
interpolation). All take images in [0, 1] and the hole (N, 1, S, S), 1 = hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_l1_loss(prediction, image, hole, weight_known: float, weight_missing: float) -> torch.Tensor:
    """Per-pixel L1, weighted `weight_missing` in the hole and `weight_known` outside it, averaged."""
    weights = hole * weight_missing + (1 - hole) * weight_known   # (N, 1, S, S), broadcast over channels
    return (weights * F.l1_loss(prediction, image, reduction="none")).mean()


def feature_matching_loss(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the discriminator's blocks of the MSE between its activations for fake and real."""
    return torch.stack([F.mse_loss(fake, real) for fake, real in zip(fake_features, real_features)]).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: softplus(-D(fake)), averaged over every patch (the hole plays no part)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||grad_x D(x)||^2 at the real images (Mescheder et al., ICML 2018)."""
    gradient, = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gradient.reshape(gradient.shape[0], -1).norm(2, dim=1).pow(2).mean()


def discriminator_loss(real_logits, fake_logits, hole, gp: torch.Tensor, gp_coef: float) -> torch.Tensor:
    """softplus(-D(real)) + gp_coef * R1 + the fake term. With `mask_as_fake_target`, a fake patch
    counts as fake inside the hole (softplus(D)) and as real outside it (softplus(-D)): the known
    pixels of a prediction are the image's own."""
    hole = F.interpolate(hole, size=fake_logits.shape[-2:], mode="nearest")   # (N, 1, h, w)
    fake = F.softplus(fake_logits) * hole + (1 - hole) * F.softplus(-fake_logits)
    return (F.softplus(-real_logits) + gp * gp_coef + fake).mean()
