"""Every learned model can fit (memorise) one fixed batch under its real objective.

These tests train and measure on the same batch: they show that each model and its objective
learn from the input well enough to beat any input-blind generator on it, not that a model
generalises to faces it was not trained on.

Each test builds the model from the demo profile's section (`params.yaml`,
width 0.25) at 32², runs `fgi.methods.base` training steps (the same `step` the
pipeline trains with, discriminator and VGG losses included) on one fixed
batch, and measures hole PSNR of the raw prediction in eval mode.

The bar starts from the *input-blind bound*. A generator whose output does not
depend on its input gives every image of the batch the same picture, and no
picture has a lower squared error over the batch's holes than their per-pixel
mean, so the pooled hole PSNR of that mean bounds every input-blind model from
above. To keep the bound low while keeping the task learnable, the batch
holds two synthetic faces and their negatives (−x is as inferable from its
context as x, but the mean of x and −x under the same hole is flat grey). A
model trained on the wrong pixels can still edge past the bound, so a model
passes when its best hole PSNR over the last half of the run clears
max(initial, bound) + its margin (`MARGIN_DB`).

Breaks each test was checked against (`python tests/check_learning_breaks.py`
applies them one by one and prints which test fails):

* input detached: the generator sees zeros instead of the masked image;
* gradients cut: the generator's optimiser never steps;
* hole inverted: the objective trains with known and hole pixels swapped;
* loss sign flipped: the generator ascends its loss;
* discriminator inverted: the discriminator ascends its loss, so it learns to call
  the fills real (methods with an adversary).

The adversary learns too. After the run, a method's discriminator scores four
held-out faces and the generator's fills of them (composited, under held-out
holes): the mean real score must exceed the mean fill score by
`ADVERSARY_MARGIN`'s margin, in the units of that discriminator's output. An
adversary that is upside down, as its loss with real and fake swapped makes it,
scores the fills above the faces. LaMa's discriminator is scored on its training faces and raw
predictions instead (`ADVERSARY_ON_TRAINING`). Ours trains its critic at `OURS_LR_D` here:
at the paper's 1e-12 the critic stays at its clipped random initialisation
(tests/test_critic_rate.py), so at that rate no break of the critic could show.

Hole PSNR alone does not separate a GC trained on swapped masks: GC's L1
covers the whole image, so the swapped run still learns every pixel of four
memorised images, and its coarse stage clears the bar. What such a run gets
wrong is what its generator is shown: the pixels it is asked to fill. So every
test also records the generator's inputs at each training step and fails when
a hole pixel was visible in them or the hole channel was not the batch's hole
(`Run.leaks`). That is how GC's test catches "hole inverted"; the other three
fail on PSNR as well. Swapping hole and known pixels in `composite` alone does
not stop a model from learning (every model's reconstruction term compares the
raw prediction), so `test_composite_takes_hole_pixels_from_the_prediction`
catches that one.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from fgi.config import load_params, method_config
from fgi.data.doodles import render_doodle
from fgi.data.synthetic import render_face
from fgi.methods.vgg import VGG16Features
from fgi.methods.base import composite, make_objective

from conftest import REPO

SIZE = 32
HOLE_RATIO = (0.2, 0.4)
FACES = 2  # the batch holds these and their negatives
EVALUATIONS = 16  # hole PSNR measured this many times, evenly over the run
STEPS = {"ours": 80, "ce": 80, "pconv": 80, "gc": 600, "lama": 120}
# Margins sit between the best broken run and the intact run measured by
# check_learning_breaks.py (docs/fidelity.md: "Every model fits one batch").
MARGIN_DB = {"ours": 6.0, "ce": 6.0, "pconv": 6.0, "gc": 1.5, "lama": 6.0}
# GC learns slowly from its released initialisation (each gated layer shrinks the activations
# ~3x), and on four images its hinge GAN term, weighted like L1, keeps the refined output near
# the bound for hundreds of steps, by an amount that depends on the seed and the CPU. So GC's
# margin applies to its coarse stage (the same step trains both stages; L1 alone reaches the
# coarse one), and its refined output must rise GC_REFINED_RISE_DB above where it started.
GC_REFINED_RISE_DB = 1.0
# Ours is measured where every reading of the paper trains it: the holes' foreground pixels.
FOREGROUND_ONLY = {"ours"}
# Held-out real score minus fill score that each adversary must reach. Measured (Intel Xeon, this
# batch, these steps): CE +0.73 intact, −1.69 with the discriminator inverted; GC (attention as
# released) +0.049 and −103; Ours (critic at OURS_LR_D, clipped to ±0.01) +0.27 and −0.24. Each
# margin keeps a factor of ~3 below the intact run and lies far above the inverted one. LaMa
# (demo profile, w_resnet_pl 0; see ADVERSARY_ON_TRAINING): +0.034 and −0.165.
ADVERSARY_MARGIN = {"ours": 0.1, "ce": 0.25, "gc": 0.015, "lama": 0.01}
# LaMa's discriminator is trained on the generator's raw predictions (not composites) of the four
# training images, and with mask_as_fake_target it learns per patch. It is scored on what it learns
# from: the training faces against the raw predictions of them. On held-out faces it scores the
# composited fills above the faces (−0.29 after 160 steps with w_resnet_pl 30, Intel Xeon) while it
# ranks the training faces above the raw predictions (+0.14).
ADVERSARY_ON_TRAINING = {"lama"}
OURS_LR_D = 1e-3


@functools.lru_cache(maxsize=1)
def fixed_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, hole, fg_mask): two faces and their negatives; a face and its negative share a
    doodle hole, so the input-blind bound is exactly that of a flat grey output."""
    rng = np.random.default_rng(11)
    images, holes, fg_masks = [], [], []
    for _ in range(FACES):
        photo, parts = render_face(rng)
        foreground = ndimage.binary_fill_holes(parts["skin"] | parts.get("hair", False))
        images.append(np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1)
        fg_masks.append(np.asarray(Image.fromarray(foreground).resize((SIZE, SIZE), Image.Resampling.NEAREST)))
    for _ in range(FACES):
        doodle = render_doodle(rng, *HOLE_RATIO).resize((SIZE, SIZE), Image.Resampling.NEAREST)
        holes.append(np.asarray(doodle) < 128)  # QD-IMD: 0 = hole
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # (2, 3, S, S)
    image = torch.cat([image, -image]).contiguous()  # (4, 3, S, S)
    hole = torch.from_numpy(np.stack(holes * 2)).float()[:, None]  # (4, 1, S, S)
    fg_mask = torch.from_numpy(np.stack(fg_masks * 2)).float()[:, None]  # (4, 1, S, S)
    return image, hole, fg_mask


def pooled_psnr(prediction: torch.Tensor, image: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR (peak-to-peak 2 in [-1, 1]) of the squared error pooled over `region` of the batch."""
    mse = ((prediction - image).square() * region).sum() / (region.sum() * image.shape[1])
    return float(10 * torch.log10(4 / mse))


def input_blind_bound(image: torch.Tensor, region: torch.Tensor) -> float:
    """The best pooled PSNR any output that ignores the input can reach: the per-pixel mean
    of the images over the batch, where each pixel is in the region."""
    mean = (image * region).sum(0, keepdim=True) / region.sum(0, keepdim=True).clamp(min=1)
    return pooled_psnr(mean.expand_as(image), image, region)


@dataclasses.dataclass
class Run:
    """Hole PSNR of one output over a run, and what it must clear."""

    margin: float
    initial: float
    bound: float  # -inf where only the rise over `initial` is asked
    curve: list[float]
    leaks: int = 0  # training steps whose generator input showed a hole pixel or another hole

    @property
    def best_late(self) -> float:
        return max(self.curve[len(self.curve) // 2:])

    @property
    def bar(self) -> float:
        return max(self.initial, self.bound) + self.margin

    @property
    def passed(self) -> bool:
        return self.best_late >= self.bar and not self.leaks

    def check(self, output: str = "output") -> None:
        assert not self.leaks, (f"{output}: in {self.leaks} training steps the generator was shown hole pixels "
                                "or a hole channel other than the batch's hole")
        assert self.best_late >= self.bar, (
            f"{output}: hole PSNR {self.best_late:.2f} dB (curve {[round(v, 1) for v in self.curve]}) does not "
            f"clear {self.bar:.2f} dB = max(initial {self.initial:.2f}, input-blind bound {self.bound:.2f}) "
            f"+ {self.margin}")


def train_fixed_batch(name: str) -> dict[str, Run]:
    """Train `name` on the fixed batch; {output name: Run} ("coarse" and "refined" for GC)."""
    steps, foreground_only = STEPS[name], name in FOREGROUND_ONLY
    cfg = method_config(load_params(REPO / "params.yaml"), name)
    if name == "ours":
        cfg = dataclasses.replace(cfg, lr_d=OURS_LR_D)
    torch.manual_seed(0)
    objective = make_objective(name, cfg, SIZE, vgg=lambda: VGG16Features(cfg.vgg_layers, weights=None, seed=0))
    image, hole, fg_mask = fixed_batch()
    region = hole * fg_mask if foreground_only else hole

    def measure() -> dict[str, float]:
        objective.generator.eval()
        with torch.no_grad():
            if name == "gc":
                coarse, refined = objective.generator(image * (1 - hole), hole, stages=True)
                outputs = {"coarse": coarse, "refined": refined}
            else:
                outputs = {"output": objective.generator(image * (1 - hole), hole)}
        objective.generator.train()
        return {key: pooled_psnr(prediction, image, region) for key, prediction in outputs.items()}

    shown = []  # (masked, hole) as the generator received them in training

    def record_input(module, args):
        shown.append((args[0].detach(), args[1].detach()))

    initial, curves, leaks = measure(), {}, 0
    for step in range(steps):
        objective.schedule(step, steps)
        shown.clear()
        handle = objective.generator.register_forward_pre_hook(record_input)
        objective.step(image, hole, fg_mask)
        handle.remove()
        leaks += not shown or any((masked * hole).abs().max() > 0 or not torch.equal(shown_hole, hole)
                                  for masked, shown_hole in shown)
        if (step + 1) % (steps // EVALUATIONS) == 0:
            for key, value in measure().items():
                curves.setdefault(key, []).append(value)
    bound = input_blind_bound(image, region)
    runs = {key: Run(MARGIN_DB[name], initial[key], bound, curve, leaks) for key, curve in curves.items()}
    if name == "gc":
        runs["refined"] = Run(GC_REFINED_RISE_DB, initial["refined"], float("-inf"), curves["refined"], leaks)
    if objective.discriminator is not None:
        runs["adversary"] = Adversary(ADVERSARY_MARGIN[name], *adversary_scores(objective, name))
    return runs


@functools.lru_cache(maxsize=1)
def held_out_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(image, hole): four faces and doodle holes the training batch does not hold."""
    rng = np.random.default_rng(99)
    images, holes = [], []
    for _ in range(4):
        photo, _ = render_face(rng)
        images.append(np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1)
        doodle = render_doodle(rng, *HOLE_RATIO).resize((SIZE, SIZE), Image.Resampling.NEAREST)
        holes.append(np.asarray(doodle) < 128)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (4, 3, S, S)
    return image, torch.from_numpy(np.stack(holes)).float()[:, None]  # (4, 1, S, S)


@torch.no_grad()
def adversary_scores(objective, name: str) -> tuple[float, float]:
    """The trained discriminator's mean score of the held-out faces and of the generator's fills."""
    image, hole = held_out_batch()
    objective.generator.eval()
    objective.discriminator.eval()
    filled = composite(objective.generator(image * (1 - hole), hole), image, hole)
    if name in ADVERSARY_ON_TRAINING:  # LaMa's discriminator reads [0, 1] and returns features beside its logits
        image, hole, _ = fixed_batch()
        prediction = objective.generator(image * (1 - hole), hole)
        return (float(objective.discriminator((image + 1) / 2)[0].mean()),
                float(objective.discriminator((prediction + 1) / 2)[0].mean()))
    extra = (hole,) if name == "gc" else ()  # SN-PatchGAN also reads the hole
    return (float(objective.discriminator(image, *extra).mean()),
            float(objective.discriminator(filled, *extra).mean()))


@dataclasses.dataclass
class Adversary:
    """The discriminator after the run: it must score real faces above the generator's fills."""

    margin: float
    real: float
    fake: float
    leaks: int = 0  # the generator's leaks are reported by its own runs

    @property
    def best_late(self) -> float:
        return self.real - self.fake

    @property
    def bar(self) -> float:
        return self.margin

    @property
    def passed(self) -> bool:
        return self.best_late >= self.bar

    def check(self, output: str = "adversary") -> None:
        assert self.passed, (f"{output}: held-out faces score {self.real:.4f}, the generator's fills "
                             f"{self.fake:.4f}: real − fake {self.best_late:+.4f} is below {self.margin}")


def check_learns(name: str) -> None:
    for output, run in train_fixed_batch(name).items():
        run.check(output)


def test_ours_learns():
    """Ours (the demo's reading, `base_loss: swgan`), inside the holes' foreground pixels, and its
    critic. Catches: input detached, gradients cut, hole inverted, loss sign flipped, discriminator
    inverted."""
    check_learns("ours")


def test_ce_learns():
    """Context Encoder at the released learning rates, and its discriminator. Catches: input
    detached, gradients cut, hole inverted, loss sign flipped, discriminator inverted."""
    check_learns("ce")


def test_pconv_learns():
    """PConv, with its fine-tuning phase (the demo's last 10 % of the steps). Catches:
    input detached, gradients cut, hole inverted, loss sign flipped."""
    check_learns("pconv")


def test_gc_learns():
    """GC, as released: its coarse stage clears the bound, its refined output rises (see
    GC_REFINED_RISE_DB), and its SN-PatchGAN. Catches: input detached, gradients cut, loss sign
    flipped on PSNR; hole inverted on what the generator is shown (see the module docstring);
    discriminator inverted on the adversary."""
    check_learns("gc")


def test_lama_learns():
    """LaMa as released, but for the demo profile's w_resnet_pl 0: L1 on the known pixels only, so
    the hole is learned through feature matching and the adversarial term; and its discriminator
    (see ADVERSARY_ON_TRAINING). Catches: input detached, gradients cut, hole
    inverted, loss sign flipped, discriminator inverted."""
    check_learns("lama")


def test_composite_takes_hole_pixels_from_the_prediction():
    image = torch.full((1, 3, 2, 2), 0.5)
    prediction = torch.full((1, 3, 2, 2), -0.25)
    hole = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    filled = composite(prediction, image, hole)
    assert filled[0, :, 0, 0].tolist() == [-0.25] * 3  # the hole pixel
    assert (filled[0, :, 1, :] == 0.5).all() and (filled[0, :, 0, 1] == 0.5).all()


def test_input_blind_bound_is_the_best_constant_output():
    """The bound is an upper bound: no constant picture beats the per-pixel mean."""
    image, hole, _ = fixed_batch()
    bound = input_blind_bound(image, hole)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        constant = torch.rand((1, *image.shape[1:]), generator=generator) * 2 - 1
        assert pooled_psnr(constant.expand_as(image), image, hole) < bound
    assert pooled_psnr(image, image * 0.9, hole) > bound  # an input-aware output can beat it
