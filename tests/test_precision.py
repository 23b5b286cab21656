"""bfloat16 autocast trains as well as float32: `train.amp: auto` trades no quality for speed.

Ours (the demo profile's section) trains twice from the same initialisation on the same
faces, holes and batch order: once in float32, once as `fgi.training.train` runs bfloat16
(autocast, channels_last). Each run's hole PSNR on held-out faces must agree within
`TOLERANCE_DB`.

Why 1.0 dB: bfloat16 perturbs every step's rounding, and after a few hundred steps two runs
differ as two training seeds do. Across training seeds the demo's models spread with a
standard deviation of 0.2-0.45 dB, so the difference of two runs has a standard deviation
of at most ~0.65 dB (sqrt(2) x 0.45); 1.0 dB is ~1.5 of those. A bfloat16 path that loses
precision where it matters (a loss summed in bfloat16, the mask arithmetic of a partial
convolution rounded) costs more than that, and a run that does not learn at all fails the
`LEARNED_DB` rise first.

Only where bfloat16 is native: elsewhere `auto` resolves to float32 and no run uses it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from fgi.config import load_params, method_config
from fgi.data.doodles import render_doodle
from fgi.data.synthetic import render_face
from fgi.inference import bfloat16_is_native
from fgi.methods.base import composite, make_objective
from fgi.methods.vgg import VGG16Features
from fgi.training.train import place, seed_everything

from conftest import REPO

SIZE, BATCH, STEPS = 32, 8, 300
TRAIN_FACES, TEST_FACES = 24, 8
TOLERANCE_DB = 1.0
LEARNED_DB = 2.5  # each run must gain this much over its untrained hole PSNR


def faces(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, hole, fg_mask) of `count` synthetic faces at SIZE², each with its doodle hole."""
    images, holes, fg_masks = [], [], []
    for _ in range(count):
        photo, parts = render_face(rng)
        foreground = ndimage.binary_fill_holes(parts["skin"] | parts.get("hair", False))
        images.append(np.asarray(photo.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1)
        fg_masks.append(np.asarray(Image.fromarray(foreground).resize((SIZE, SIZE), Image.Resampling.NEAREST)))
        holes.append(np.asarray(render_doodle(rng, 0.1, 0.4).resize((SIZE, SIZE), Image.Resampling.NEAREST)) < 128)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    hole = torch.from_numpy(np.stack(holes)).float()[:, None]  # (N, 1, S, S)
    fg_mask = torch.from_numpy(np.stack(fg_masks)).float()[:, None]  # (N, 1, S, S)
    return image, hole, fg_mask


def hole_psnr(generator, image, hole, fg_mask, autocast) -> float:
    """Pooled hole PSNR of the composited outputs (peak-to-peak 2 in [-1, 1])."""
    generator.eval()
    with torch.no_grad(), autocast():
        filled = composite(generator(image * (1 - hole), hole).float(), image, hole)
    generator.train()
    mse = ((filled - image).square() * hole).sum() / (hole.sum() * image.shape[1])
    return float(10 * torch.log10(4 / mse))


def train(precision: str, data: tuple, held_out: tuple) -> tuple[float, float]:
    """(untrained, trained) held-out hole PSNR of Ours trained STEPS steps in `precision`."""
    cfg = method_config(load_params(REPO / "params.yaml"), "ours")
    seed_everything(0, deterministic=True)
    objective = make_objective("ours", cfg, SIZE, vgg=lambda: VGG16Features(cfg.vgg_layers, weights=None, seed=0))
    memory, autocast = place(objective, torch.device("cpu"), precision)
    before = hole_psnr(objective.generator, *held_out, autocast)
    order = torch.Generator().manual_seed(0)
    image, hole, fg_mask = data
    for step in range(STEPS):
        objective.schedule(step, STEPS)
        pick = torch.randperm(len(image), generator=order)[:BATCH]
        batch = [t[pick].contiguous(memory_format=memory) for t in (image, hole, fg_mask)]
        objective.step(*batch, autocast=autocast)
    return before, hole_psnr(objective.generator, *held_out, autocast)


@pytest.fixture
def training_mode():
    """`seed_everything` sets process-wide deterministic mode, as training does: undo it after."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.utils.deterministic.fill_uninitialized_memory)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.utils.deterministic.fill_uninitialized_memory = before[2]


@pytest.mark.skipif(not bfloat16_is_native(torch.device("cpu")),
                    reason="this CPU has no native bfloat16: train.amp auto resolves to float32 here")
def test_bfloat16_training_reaches_float32_quality(training_mode):
    rng = np.random.default_rng(5)
    data, held_out = faces(rng, TRAIN_FACES), faces(rng, TEST_FACES)
    runs = {precision: train(precision, data, held_out) for precision in ("float32", "bfloat16")}
    for precision, (before, after) in runs.items():
        assert after >= before + LEARNED_DB, f"{precision}: {before:.2f} -> {after:.2f} dB, it did not learn"
    difference = runs["bfloat16"][1] - runs["float32"][1]
    assert abs(difference) <= TOLERANCE_DB, (
        f"bfloat16 {runs['bfloat16'][1]:.2f} dB vs float32 {runs['float32'][1]:.2f} dB: "
        f"{difference:+.2f} dB, beyond ±{TOLERANCE_DB} dB")



def test_the_context_encoder_bottleneck_runs_float32_under_autocast():
    cfg = method_config(load_params(REPO / "configs" / "study.yaml"), "ce")
    generator = make_objective("ce", cfg, SIZE).generator
    seen = {}
    for name in ("encoder", "bottleneck", "expand", "decoder"):
        getattr(generator, name).register_forward_hook(
            lambda module, args, output, name=name: seen.update({name: output.dtype}))
    image, hole, _ = faces(np.random.default_rng(3), 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        generator(image * (1 - hole), hole).float().mean().backward()
    assert seen == {"encoder": torch.bfloat16, "bottleneck": torch.float32, "expand": torch.float32,
                    "decoder": torch.bfloat16}



def test_float32_inference_is_channels_last_only_for_a_network_that_asks():
    """GC's generator runs float32 inference in channels_last (oneDNN is faster on it there); LaMa's
    stays NCHW in float32, where it matches its release bit for bit; bfloat16 is channels_last for all."""
    from fgi.inference import for_inference, memory_format
    from fgi.methods.gc.networks import GatedGenerator
    from fgi.methods.lama.ffc import LamaGenerator

    cpu = torch.device("cpu")
    gc, lama = GatedGenerator(32, 0.25).eval(), LamaGenerator(32, 0.25, 1, 0.75).eval()
    for generator, layout in ((gc, torch.channels_last), (lama, torch.contiguous_format)):
        assert for_inference(generator, "float32", cpu) == "float32"
        assert memory_format(generator, "float32") is layout
        conv = next(m for m in generator.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
        assert conv.weight.is_contiguous(memory_format=layout)
        assert memory_format(generator, "bfloat16") is torch.channels_last
