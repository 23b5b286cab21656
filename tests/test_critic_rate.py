"""At the paper's critic rate (configs/paper.yaml: `models.ours.lr_d` 1e-12) Ours's critic never
moves from its clipped random initialisation, so Eq. 4 is scored by a fixed random critic.

The test builds Ours from the paper profile's section (at 32² and the demo's width 0.25, so it
runs in seconds on a CPU) and trains it with `OursObjective.step`, the step `fgi.training.train`
calls, on `test_learning`'s fixed batch. WGAN weight clipping (`clip`) is the only thing that
changes the critic: at the first step it clamps the random initial weights (PyTorch's default
initialisation, |w| up to ~0.14) into ±clip; after that, each Adam step at lr 1e-12 moves a
weight by at most a few 1e-12, which in float32 leaves most weights bit for bit where they are.
The generator, at lr_g 1e-4, moves by orders of magnitude more over the same steps, so the test
cannot pass by nothing training.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from conftest import REPO
from fgi.config import load_params, method_config
from fgi.methods.base import make_objective
from fgi.methods.vgg import VGG16Features
from test_learning import SIZE, fixed_batch

WIDTH = 0.25  # the demo's width (params.yaml); the paper's 1.0 takes ~15x longer per step
STEPS_AFTER_FIRST = 10


def adam_step_bound(t: int, beta1: float, beta2: float) -> float:
    """The largest |Adam update| / lr at step t (1-based) for any gradients.

    m_t = Σ a_k g_k and v_t = Σ b_k g_k² with a_k = (1-β1)β1^k, b_k = (1-β2)β2^k (k = 0..t-1), so
    by Cauchy-Schwarz |m_t| / √v_t ≤ √(Σ a_k²/b_k) = (1-β1)/√(1-β2) · √((1-r^t)/(1-r)), r = β1²/β2;
    bias correction multiplies that by √(1-β2^t)/(1-β1^t), and eps only shrinks the update. At
    t = 1 the bound is 1 (the first step is lr·sign(g)); at β1 0.5, β2 0.999 it is ~1.9 by t = 11
    and ~18 for large t."""
    r = beta1 ** 2 / beta2
    return ((1 - beta1) / math.sqrt(1 - beta2) * math.sqrt((1 - r ** t) / (1 - r))
            * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t))


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def max_change(now: list[torch.Tensor], before: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(now, before))


def test_ours_critic_stays_at_its_clipped_random_init_at_the_paper_rate():
    cfg = method_config(load_params(REPO / "configs" / "paper.yaml"), "ours")
    assert cfg.critic == "wgan" and cfg.lr_d == 1e-12  # the paper profile this test is about
    cfg = dataclasses.replace(cfg, width=WIDTH)
    lr, clip, betas = cfg.lr_d, cfg.clip, (cfg.beta1, cfg.beta2)
    torch.manual_seed(0)
    objective = make_objective("ours", cfg, SIZE, vgg=lambda: VGG16Features(cfg.vgg_layers, weights=None, seed=0))
    critic, generator = objective.discriminator, objective.generator
    image, hole, fg_mask = fixed_batch()

    init, generator_init = snapshot(critic), snapshot(generator)
    assert max(float(w.abs().max()) for w in init) > 10 * clip  # the random init lies far outside ±clip

    # Step 1: the weights become the init clamped to ±clip. The Adam update (|Δ| ≤ lr) before the
    # clamp is the only difference, and rounding the float32 sum w + Δ at most doubles it
    # (|fl(w + Δ) - w| ≤ 2|Δ|, since w itself is a float).
    objective.step(image, hole, fg_mask)
    first = snapshot(critic)
    clipped = [w.clamp(-clip, clip) for w in init]
    assert max_change(first, clipped) <= 2 * lr * adam_step_bound(1, *betas)
    assert max_change(first, init) > 0.5 * max(float(w.abs().max()) for w in init)  # clipping moved it
    assert sum(int((w.abs() > clip).sum()) for w in init) > 0.5 * sum(w.numel() for w in init)

    # Steps 2..11: the critic trains (its gradients are not zero), but every step moves a weight by
    # at most 2·lr·adam_step_bound(t) (the clamp only pulls back towards ±clip), so the drift is
    # bounded by their sum, ~3e-11 here: 10^-8 of the clip value.
    for _ in range(STEPS_AFTER_FIRST):
        objective.step(image, hole, fg_mask)
    assert any(float(p.grad.abs().max()) > 0 for p in critic.parameters())
    bound = sum(2 * lr * adam_step_bound(t, *betas) for t in range(2, STEPS_AFTER_FIRST + 2))
    last = snapshot(critic)
    critic_drift = max_change(last, first)
    moved = sum(int((a != b).sum()) for a, b in zip(last, first))
    assert critic_drift <= bound < 1e-8 * clip, f"critic moved {critic_drift:.3g} after step 1 (bound {bound:.3g})"

    # The generator, trained in the same steps at lr_g 1e-4, moves more than a million times the
    # critic's bound (measured: 1.4e-3 against 3.0e-11; Adam's first step alone moves each weight
    # that has a gradient by lr_g).
    generator_change = max_change(snapshot(generator), generator_init)
    assert generator_change > 1e6 * bound, f"generator moved only {generator_change:.3g}"
    print(f"critic: {moved} of {sum(w.numel() for w in last)} weights moved after step 1, by at most "
          f"{critic_drift:.3g} (bound {bound:.3g}); generator: max change {generator_change:.3g}")
