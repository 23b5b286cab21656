"""Every loss term of the four models, one small function each.

Conventions: images (N, C, H, W) in [-1, 1]; `hole` (N, 1, H, W) with 1 = hole;
`fg_mask` (N, 1, H, W) with 1 = foreground; masks broadcast over channels.
"Mean" below is over every element of the batch, which equals the per-image
mean averaged over the batch because all images share one size.

Papers:
* Ours  -- Jam et al., "Foreground-guided Facial Inpainting with Fidelity Preservation",
  §3.1, Eq. 1-4.
* PConv -- Liu et al. 2018, "Image Inpainting for Irregular Holes Using Partial Convolutions",
  "Loss Functions" section; terms named by their symbols (L_hole, L_valid, ...). Liu et al.
  write M with 1 = valid, so their (1 - M) is our `hole`.
* GC    -- Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution" (DeepFill v2),
  SN-PatchGAN section: L_D^sn and L_G.
* CE    -- Pathak et al. 2016, "Context Encoders: Feature Learning by Inpainting", §3.3, Eq. 1-3.
* WGAN-GP -- Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Eq. 3.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- ours


def foreground_l1(
    pred: torch.Tensor, reference: torch.Tensor, fg_mask: torch.Tensor
) -> torch.Tensor:
    """Jam et al. Eq. 1, L_cF = ||M_F ⊙ (reference - I_pred)||_1 / N, N = H·W·C.

    The paper's symbol for the reference is M_I (the input) while its text
    says ground truth; the caller chooses. Returns the mean over all elements.
    """
    return (fg_mask * (reference - pred)).abs().mean()


def foreground_l2(pred: torch.Tensor, gt: torch.Tensor, fg_mask: torch.Tensor) -> torch.Tensor:
    """Jam et al. Eq. 2, L_F = ||M_F ⊙ (I_gt - I_pred)||_2 / N, N = H·W·C.

    Read as the usual "L2 loss": the *squared* L2 norm over N, i.e. the mean
    of squared masked differences (the unsquared norm divided by N would
    vanish as images grow).
    """
    return (fg_mask * (gt - pred)).square().mean()


def foreground_perceptual(
    pred_feats: Sequence[torch.Tensor],
    ref_feats: Sequence[torch.Tensor],
    fg_mask: torch.Tensor,
) -> torch.Tensor:
    """Jam et al. Eq. 3, L_pF = Σ_i ||M_F ⊙ [φ_i(reference) - φ_i(I_pred)]||_2 / N_i.

    φ_i are VGG16 feature maps (`fgi.methods.vgg.VGG16Features`). M_F is
    resized to each map with area interpolation, i.e. averaged over the
    pixels a feature cell pools, so boundary cells are weighted by their
    foreground fraction. Squared L2 over elements as in Eq. 2, summed over
    layers.
    """
    total = pred_feats[0].new_zeros(())
    for pred_feat, ref_feat in zip(pred_feats, ref_feats, strict=True):
        mask = F.interpolate(fg_mask.to(pred_feat.dtype), size=pred_feat.shape[-2:], mode="area")
        total = total + (mask * (ref_feat - pred_feat)).square().mean()  # mask: (N, 1, h, w)
    return total


def swgan_perceptual(pred_feats: Sequence[torch.Tensor], gt_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Jam et al. 2020 (S-WGAN, arXiv:2001.03725), the perceptual half of its
    Wasserstein-perceptual generator loss: Σ_i ||φ_i(I_gt) - φ_i(I_pred)||_2 / N_i
    over the *whole* image, read like Eq. 3 (squared L2 over elements, summed
    over the VGG16 layers φ_i). It is Eq. 3 with M_F = 1: the term that reaches
    background holes, which Eq. 1-3 never see.
    """
    total = pred_feats[0].new_zeros(())
    for pred_feat, gt_feat in zip(pred_feats, gt_feats, strict=True):
        total = total + (gt_feat - pred_feat).square().mean()
    return total


def wgan_generator_loss(critic_fake: torch.Tensor) -> torch.Tensor:
    """Jam et al. Eq. 4, generator side: minimise -E[D(G(x))]."""
    return -critic_fake.mean()


def wgan_critic_loss(critic_real: torch.Tensor, critic_fake: torch.Tensor) -> torch.Tensor:
    """Jam et al. Eq. 4, max_D E[D(I_gt)] - E[D(G(.))], written as a loss to minimise."""
    return critic_fake.mean() - critic_real.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gulrajani et al. 2017 Eq. 3: weight · E[(||∇_x̂ D(x̂)||_2 - 1)^2].

    x̂ = α·real + (1-α)·fake with α ~ U[0, 1] per image. The graph is kept
    (create_graph) so the penalty trains the critic.
    """
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand(
        real.shape[0], 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype
    )
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)  # (N, C, H, W)
    scores = critic(mixed)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grads.flatten(1).norm(2, dim=1)  # (N,)
    return weight * (norms - 1).square().mean()


# --------------------------------------------------------------------------- PConv


def pconv_valid_loss(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Liu et al. L_valid = ||(1 - hole) ⊙ (I_out - I_gt)||_1 / N_gt, N_gt = C·H·W."""
    return ((1 - hole) * (pred - gt)).abs().mean()


def pconv_hole_loss(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Liu et al. L_hole = ||hole ⊙ (I_out - I_gt)||_1 / N_gt, N_gt = C·H·W."""
    return (hole * (pred - gt)).abs().mean()


def perceptual_loss(
    feats_pred: Sequence[torch.Tensor],
    feats_comp: Sequence[torch.Tensor],
    feats_gt: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Liu et al. L_perceptual.

    Σ_p ||Ψ_p(I_out) - Ψ_p(I_gt)||_1 / N_p + ||Ψ_p(I_comp) - Ψ_p(I_gt)||_1 / N_p,
    where N_p is the number of elements of Ψ_p(I_gt), i.e. each term is a mean.
    """
    total = feats_gt[0].new_zeros(())
    for pred, comp, gt in zip(feats_pred, feats_comp, feats_gt, strict=True):
        total = total + (pred - gt).abs().mean() + (comp - gt).abs().mean()
    return total


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), Ψ Ψ^T · K_p with K_p = 1 / (C·H·W) (Liu et al., in L_style).

    Computed in float32 with autocast off: a sum over H·W products of
    activations overflows float16.
    """
    n, c, h, w = feat.shape
    with torch.autocast(device_type=feat.device.type, enabled=False):
        flat = feat.float().reshape(n, c, h * w)  # (N, C, HW)
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)  # (N, C, C)


def style_loss(
    feats_pred: Sequence[torch.Tensor],
    feats_comp: Sequence[torch.Tensor],
    feats_gt: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Liu et al. L_style_out + L_style_comp.

    Σ_p ||G(Ψ_p(x)) - G(Ψ_p(I_gt))||_1 / C_p^2 for x = I_out and x = I_comp;
    the 1/C_p^2 with an L1 sum over the C_p x C_p Gram entries is the
    elementwise mean.
    """
    total = feats_gt[0].new_zeros((), dtype=torch.float32)
    for pred, comp, gt in zip(feats_pred, feats_comp, feats_gt, strict=True):
        gram_gt = gram_matrix(gt)
        total = total + (gram_matrix(pred) - gram_gt).abs().mean()
        total = total + (gram_matrix(comp) - gram_gt).abs().mean()
    return total


def total_variation_loss(comp: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Liu et al. L_tv: total variation of I_comp over P, the 1-pixel dilation of the hole.

    A neighbour pair counts only when both pixels lie in P; each direction's
    L1 sum is divided by N = number of elements of I_comp (N·C·H·W here).
    """
    # P: a 3x3 max filter dilates the hole by one pixel
    region = F.max_pool2d(hole.to(comp.dtype), kernel_size=3, stride=1, padding=1)  # (N, 1, H, W)
    pairs_x = region[..., :, 1:] * region[..., :, :-1]  # (N, 1, H, W-1)
    pairs_y = region[..., 1:, :] * region[..., :-1, :]  # (N, 1, H-1, W)
    diff_x = (comp[..., :, 1:] - comp[..., :, :-1]).abs()  # (N, C, H, W-1)
    diff_y = (comp[..., 1:, :] - comp[..., :-1, :]).abs()  # (N, C, H-1, W)
    return ((pairs_x * diff_x).sum() + (pairs_y * diff_y).sum()) / comp.numel()


# --------------------------------------------------------------------------- GC (DeepFill v2)


def l1_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Yu et al. 2019: pixel-wise L1 reconstruction loss (coarse and refined outputs), mean."""
    return (pred - gt).abs().mean()


def hinge_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Yu et al. 2019, SN-PatchGAN L_D^sn = E[ReLU(1 - D(x))] + E[ReLU(1 + D(G(z)))]."""
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def hinge_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Yu et al. 2019, SN-PatchGAN L_G = -E[D(G(z))]."""
    return -d_fake.mean()


# --------------------------------------------------------------------------- CE


def masked_l2_loss(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Pathak et al. Eq. 1, L_rec = ||M̂ ⊙ (x - F((1 - M̂) ⊙ x))||_2^2.

    Normalised by the number of hole elements (hole pixels x channels, at
    least 1) so the scale does not depend on the hole size. The paper's 10x
    weight on an overlapping border applies to its square centre hole only
    and is not used for free-form holes.
    """
    count = (hole.sum() * pred.shape[1]).clamp(min=1)
    return (hole * (pred - gt)).square().sum() / count


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Pathak et al. Eq. 2, max_D log D(x) + log(1 - D(F(.))), as binary cross-entropy on logits."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def bce_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Pathak et al. Eq. 2, generator side, non-saturating -log D(F(.)) (Goodfellow et al.)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
