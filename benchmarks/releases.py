"""releases: our GC and LaMa against the released code they re-implement, timed in one run, same inputs and weights.

1. GC generator, 256², batch 1: the release's `build_inpaint_net` as a TF1 graph (a `tf.compat.v1` Session
   running the refined output) vs our GatedGenerator as `fgi inpaint --precision float32` runs it (eval
   mode, torch.no_grad, `for_inference`: channels_last weights and inputs, as GC asks).
2. GC training step, the study's size and batch (configs/study.yaml), width 1.0 (the release's cnum 48 is
   fixed; ours with the release's dilations and six stride-2 discriminator layers): the release's
   `build_graph_with_losses` (L1 + SN-PatchGAN hinge; the fed hole for its random masks, one per batch as
   there) with the train ops of neuralgym's one-GPU MultiGPUTrainer (TF Adam, lr 1e-4, β 0.5/0.999), run
   as train.py runs them: the discriminator's, then the generator's, each `session.run` running the
   generator's forward again; vs `GCObjective.step` (one forward).
3. LaMa generator, 256², batch 1: advimman/lama's FFCResNetGenerator (ffc_resnet_075) vs our LamaGenerator,
   readied the same way (NCHW in float32).
4. LaMa training step, the study's size and batch, width 1.0 (at 0.5 our discriminator's channel cap is not
   the release's fixed 512), w_resnet_pl 0: the release's DefaultInpaintingTrainingModule as Lightning 1.2.9
   drives it (tests/golden/make_golden.py: per optimiser training_step, training_step_end, backward,
   Lightning's clipping at 1, Adam): the generator's update, then the discriminator's on a fresh
   prediction; vs `LamaObjective.step`.

Why interleaved: this CPU is shared. The release and ours alternate call by call (A, B, A, B, ... after
warm-up rounds), so a change of load hits both alike; the median and min of each are reported. The ratio
release ÷ ours (≥ 1: ours is at least as fast) is taken per round, one release call over the ours call
after it, so that a swing of load between rounds cancels; its median is reported with a distribution-free
95 % interval (order statistics of the rounds' ratios, `median_interval`). Ours is called at least as fast
as the release where that interval lies at or above 1, slower where it lies below, and neither otherwise.
Ours also runs in `auto` precision as `fgi inpaint`
and `fgi.training.train` ready it (bfloat16 autocast and channels_last where bfloat16 is native). Outputs
are compared from the same weights and inputs (a training step's first, untimed round) at the release
tests' tolerances: GC max abs Δ < tests/test_gc_release.py TOLERANCE, LaMa max abs Δ / rms <
tests/test_lama_release.py TOLERANCE; a disagreement fails the section. The releases are found as those
tests find them (FGI_GC_RELEASE, FGI_LAMA_RELEASE; GC also needs TensorFlow), else the section says so.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import math
import sys
import types
from unittest import mock

import numpy as np
import torch
from torch import nn

from benchmarks.common import (ROOT, Check, CpuMeter, Section, fmt, interleave, locate, machine, median, say,
                               study_params, table)
from fgi.config import method_config
from fgi.inference import for_inference, inference_autocast, memory_format, resolve_precision
from fgi.methods.base import make_objective
from fgi.training.train import place

NAME = "releases"
THREADS = 2
SIZE = 256  # the generators' inference
CPU = torch.device("cpu")


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """The median of `values` and a distribution-free interval for it: (median, low, high), the k-th
    smallest and k-th largest value for the largest k whose binomial(n, 1/2) tails hold at most 1 − level
    (at n = 15: the 4th and 12th of 15, 96.5 % coverage). Too few values for `level`: the min and max."""
    ordered, n = sorted(values), len(values)
    tail, k = 0.0, 0
    while k < n // 2 and tail + math.comb(n, k) / 2 ** n <= (1 - level) / 2:
        tail += math.comb(n, k) / 2 ** n  # P(fewer than k + 1 of the n values lie below the median)
        k += 1
    k = max(k, 1)
    return median(ordered), ordered[k - 1], ordered[n - k]


def helpers():
    """The release tests' helpers (tests/ is no package: on sys.path, as make_golden.py puts it)."""
    for folder in (ROOT / "tests", ROOT / "tests" / "golden"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return tuple(importlib.import_module(name) for name in ("test_gc_release", "test_lama_release", "make_golden"))


def under(fn, context=contextlib.nullcontext):
    def call():  # `fn` under torch.no_grad and `context`
        with torch.no_grad(), context():
            return fn()

    return call


def readied(generator: nn.Module, inputs: tuple, precision: str) -> tuple[nn.Module, tuple]:
    """A copy of `generator` and `inputs` as `fgi inpaint --precision <precision>` readies them."""
    generator = copy.deepcopy(generator)
    for_inference(generator, precision, CPU)
    return generator, tuple(t.contiguous(memory_format=memory_format(generator, precision)) for t in inputs)


def shipped_arm(generator: nn.Module, inputs: tuple, precision: str):
    """`generator` on `inputs` as `fgi inpaint --precision <precision>` runs it."""
    generator, inputs = readied(generator, inputs, precision)
    return under(lambda: generator(*inputs), lambda: inference_autocast(precision, CPU))


def load_generator(generator: nn.Module, variables, sess) -> None:
    """Ours -> the release's variables in creation order, as tests/test_gc_release.py copies them."""
    convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
    assert len(variables) == 2 * len(convs), "the release's layers and ours differ in number"
    for conv, (kernel, bias) in zip(convs, zip(variables[::2], variables[1::2])):
        kernel.load(conv.weight.detach().permute(2, 3, 1, 0).numpy(), sess)
        bias.load(conv.bias.detach().numpy(), sess)


def gc_inference(gc, tf, model, auto, warmup, repeats) -> tuple:
    masked, hole = gc.batch(SIZE)  # (1, S, S, 3|1), NHWC
    generator = gc.ours(SIZE)
    inputs = tuple(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() for a in (masked, hole))
    with tf.Graph().as_default():
        x, mask = tf.placeholder(tf.float32, masked.shape), tf.placeholder(tf.float32, hole.shape)
        stage1, stage2, _ = model().build_inpaint_net(x, mask, training=False)
        sess = tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                                                inter_op_parallelism_threads=THREADS))
        load_generator(generator, tf.trainable_variables(), sess)
    feed = {x: masked, mask: hole}
    with torch.no_grad():
        shipped, shipped_inputs = readied(generator, inputs, "float32")  # what the "ours" arm times
        got = shipped(*shipped_inputs, stages=True)
    diff = max(float(np.abs(g.permute(0, 2, 3, 1).numpy() - w).max())
               for g, w in zip(got, sess.run([stage1, stage2], feed)))
    arms = {"release": lambda: sess.run(stage2, feed), "ours": shipped_arm(generator, inputs, "float32")}
    if auto == "bfloat16":
        arms["auto"] = shipped_arm(generator, inputs, auto)
    times = interleave(arms, warmup, repeats)
    sess.close()
    return (f"GC generator, {SIZE}², batch 1", times, diff < gc.TOLERANCE,
            f"max abs Δ {diff:.1e} (coarse, refined; tolerance {gc.TOLERANCE:g})")


def gc_objective(gc, size: int, amp: str):
    """GCObjective at width 1.0: the test's weights and dilations; the discriminator halving six times as
    the release's (ours stops at 4×4: at 64² its last two layers have stride 1), its σ converged."""
    torch.manual_seed(0)
    objective = make_objective("gc", dataclasses.replace(method_config(study_params(), "gc"), width=1.0), size)
    reference = gc.ours(size)
    objective.generator.load_state_dict(reference.state_dict())
    for mine, theirs in zip(objective.generator.modules(), reference.modules()):
        if isinstance(mine, nn.Conv2d):
            mine.dilation, mine.padding = theirs.dilation, theirs.padding
    convs = [m for m in objective.discriminator.features if isinstance(m, nn.Conv2d)]
    for conv in convs:  # converged: one power iteration more on either side (each its own way) keeps σ
        conv.stride, conv.padding = (2, 2), (0, 0)
        sn = conv.parametrizations.weight[0]
        sn._power_method(sn._reshape_weight_to_matrix(conv.parametrizations.weight.original), 500)
    memory, autocast = place(objective, CPU, amp)
    return objective, convs, memory, autocast


def gc_training(gc, tf, model, auto, warmup, repeats) -> tuple:
    params = study_params()
    size, n = params.data.size, params.train.batch_size
    release = sys.modules[model.__module__]
    from neuralgym.ops.train_ops import average_gradients, process_gradients

    data = np.random.default_rng(0).integers(0, 256, (n, size, size, 3)).astype(np.float32)
    hole = gc.batch(size)[1]  # (1, S, S, 1): one mask per batch, as the release draws it
    objective, convs, _, _ = gc_objective(gc, size, "float32")
    flags = types.SimpleNamespace(guided=False, padding="SAME", l1_loss_alpha=1.0, gan_with_mask=True, gan="sngan",
                                  gan_loss_alpha=1.0, ae_loss=True, batch_size=n)  # inpaint.yml
    with tf.Graph().as_default():
        batch, mask = tf.placeholder(tf.float32, data.shape), tf.placeholder(tf.float32, hole.shape)
        stand_ins = dict(random_bbox=lambda flags: None, bbox2mask=lambda flags, bbox, name: mask,
                         brush_stroke_mask=lambda flags, name: mask)
        with mock.patch.multiple(release, **stand_ins):  # train.py: the D and the G trainer each build it
            _, d_vars, d_losses = model().build_graph_with_losses(flags, batch)
            g_vars, _, g_losses = model().build_graph_with_losses(flags, batch, reuse=True)
        lr = tf.get_variable("lr", shape=[], trainable=False, initializer=tf.constant_initializer(1e-4))
        optimizer = tf.train.AdamOptimizer(lr, beta1=0.5, beta2=0.999)
        ops = [optimizer.apply_gradients(average_gradients([process_gradients(
            optimizer.compute_gradients(loss, var_list), None)])) for loss, var_list in
            ((d_losses["d_loss"], d_vars), (g_losses["g_loss"], g_vars))]
        sess = tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=THREADS,
                                                inter_op_parallelism_threads=THREADS))
        sess.run(tf.global_variables_initializer())
        load_generator(objective.generator, g_vars, sess)
        variables = {v.op.name: v for v in tf.global_variables()}
        for index, conv in enumerate(convs):  # as make_golden.py loads the discriminator
            sn = conv.parametrizations.weight
            for name, value in (("kernel", sn.original.detach().permute(2, 3, 1, 0)), ("bias", conv.bias.detach()),
                                ("kernel_sn/u", sn[0]._u[None])):
                variables[f"discriminator/sn_patch_gan/conv{index + 1}/{name}"].load(value.numpy(), sess)
    feed = {batch: data, mask: hole}
    image = torch.from_numpy(data).permute(0, 3, 1, 2) / 127.5 - 1  # the release's batch_pos
    holes = torch.from_numpy(hole).permute(0, 3, 1, 2).expand(n, 1, size, size).contiguous()

    def release_step(l1=()):  # each trainer's run: [train op, loss]
        d_loss, *l1 = sess.run([ops[0], d_losses["d_loss"], *l1], feed)[1:]
        return d_loss, l1, sess.run([ops[1], g_losses["g_loss"]], feed)[1]

    def step(objective=objective, autocast=contextlib.nullcontext, inputs=(image, holes)):
        terms = objective.step(*inputs, torch.ones_like(holes), autocast=autocast)
        return {k: float(v.detach()) for k, v in terms.items()}

    (d_loss, (l1,), g_loss), terms = release_step([d_losses["ae_loss"]]), step()  # from the same weights
    d_diff, l1_diff = abs(terms["d/hinge"] / 2 - d_loss), abs(terms["g/l1"] - l1)
    arms = {"release": release_step, "ours": step}
    if auto == "bfloat16":
        fast, _, memory, autocast = gc_objective(gc, size, auto)
        arms["auto"] = lambda: step(fast, autocast, tuple(t.contiguous(memory_format=memory) for t in (image, holes)))
    times = interleave(arms, warmup, repeats)
    sess.close()
    return (f"GC training step, {size}², batch {n}, width 1.0", times, max(d_diff, l1_diff) < gc.TOLERANCE,
            f"first step: L1 abs Δ {l1_diff:.1e}, D hinge abs Δ {d_diff:.1e} (ours ÷ 2: the release halves it); "
            f"G loss, after each side's Adam step of D, {abs(terms['g/total'] - g_loss):.1e} (not held to "
            f"{gc.TOLERANCE:g}: TF's Adam adds ε to √v before the bias correction, torch's after)")


def lama_inference(lama, golden, root, auto, warmup, repeats) -> tuple:
    from fgi.methods.lama.ffc import LamaGenerator

    with golden.lama_modules(root) as release:
        torch.manual_seed(5)
        generator = LamaGenerator(SIZE, 1.0).eval()
        lama.randomise_batchnorm(generator.net, 6)
        released = release.ffc.FFCResNetGenerator(**lama.FFC_RESNET_075).eval()
        lama.copy_into(generator.net, released)  # load_state_dict(strict=True)
    image01, hole = lama.batch(SIZE, 1)
    masked = (image01 * 2 - 1) * (1 - hole)  # the pipeline's [-1, 1], as the test feeds LamaGenerator
    with torch.no_grad():
        want = released(torch.cat((image01 * (1 - hole), hole), 1)) * 2 - 1
        shipped, shipped_inputs = readied(generator, (masked, hole), "float32")  # what the "ours" arm times
        diff = ((shipped(*shipped_inputs) - want).abs().max() / lama.scale(want)).item()  # the test's measure
    arms = {"release": under(lambda: released(torch.cat((image01 * (1 - hole), hole), 1))),
            "ours": shipped_arm(generator, (masked, hole), "float32")}
    if auto == "bfloat16":
        arms["auto"] = shipped_arm(generator, (masked, hole), auto)
    return (f"LaMa generator, {SIZE}², batch 1", interleave(arms, warmup, repeats), diff < lama.TOLERANCE,
            f"max abs Δ / rms {diff:.1e} (tolerance {lama.TOLERANCE:g})")


def lama_training(lama, golden, root, auto, warmup, repeats) -> tuple:
    params = study_params()
    size, n = params.data.size, params.train.batch_size
    cfg = dataclasses.replace(method_config(params, "lama"), width=1.0, w_resnet_pl=0.0)
    torch.manual_seed(0)
    objective = make_objective("lama", cfg, size)
    lama.randomise_batchnorm(objective.generator.net, 1)
    with golden.lama_modules(root) as release:
        config = golden.release_config(root, cfg.n_blocks)  # lama-fourier-celeba.yaml, resnet_pl.weight 0
        module = release.trainers.make_training_model(config)
    module.trainer = types.SimpleNamespace(num_nodes=1, num_processes=1, global_rank=0)
    module.generator.load_state_dict(objective.generator.net.state_dict(), strict=True)
    module.discriminator.load_state_dict(objective.discriminator.state_dict(), strict=True)
    optimizers = [entry["optimizer"] for entry in module.configure_optimizers()]
    module.train(), objective.generator.train(), objective.discriminator.train()
    image01, hole = lama.batch(size, n)
    image = image01 * 2 - 1

    def release_step():
        for index, optimizer in enumerate(optimizers):  # Lightning 1.2, automatic optimisation
            batch = {"image": (image + 1) / 2, "mask": hole}  # LamaObjective's to01
            module.training_step_end(module.training_step(batch, 1, optimizer_idx=index)).backward()
            golden.lightning_clip_gradients(optimizer, config.trainer.kwargs.gradient_clip_val)
            optimizer.step()
            optimizer.zero_grad()

    def step(objective=objective, autocast=contextlib.nullcontext, inputs=(image, hole)):
        return objective.step(*inputs, torch.ones_like(hole), autocast=autocast)

    release_step()
    terms = step()  # from the same weights
    logged = {"g/l1": "train_gen_l1", "g/adv": "train_gen_adv", "g/fm": "train_gen_fm", "d/total": "train_discr_adv"}
    diff = max((terms[ours] - module.logged[theirs]).abs().item() / lama.scale(module.logged[theirs])
               for ours, theirs in logged.items())
    arms = {"release": release_step, "ours": step}
    if auto == "bfloat16":
        torch.manual_seed(0)
        fast = make_objective("lama", cfg, size)
        memory, autocast = place(fast, CPU, auto)
        arms["auto"] = lambda: step(fast, autocast, tuple(t.contiguous(memory_format=memory) for t in (image, hole)))
    return (f"LaMa training step, {size}², batch {n}, width 1.0", interleave(arms, warmup, repeats),
            diff < lama.TOLERANCE, f"first step: G's L1, adversarial, feature-matching terms and D's loss (on the "
            f"updated generator's fresh prediction): max abs Δ / rms {diff:.1e} (tolerance {lama.TOLERANCE:g})")


def run(quick: bool = False) -> Section:
    warmup, repeats = (1, 2) if quick else (2, 15)
    threads, results, skipped, tf_version = torch.get_num_threads(), [], [], "not loaded"
    torch.set_num_threads(THREADS)
    auto = resolve_precision("auto", CPU)
    try:
        gc, lama, golden = helpers()
        (gc_root, gc_reason), (lama_root, lama_reason) = locate(gc.release_or_skip), locate(lama.release_root)
        with CpuMeter() as meter:
            if gc_root:
                tf, model = gc.load_release(gc_root)
                tf_version = importlib.import_module("tensorflow").__version__
                results += [gc_inference(gc, tf, model, auto, warmup, repeats),
                            gc_training(gc, tf, model, auto, warmup, repeats)]
            else:
                skipped.append(f"**GC (cases 1 and 2) skipped**, as tests/test_gc_release.py skips: {gc_reason}.")
            if lama_root:
                results += [lama_inference(lama, golden, lama_root, auto, warmup, repeats),
                            lama_training(lama, golden, lama_root, auto, warmup, repeats)]
            else:
                skipped.append(f"**LaMa (cases 3 and 4) skipped**, as tests/test_lama_release.py skips: "
                               f"{lama_reason}.")
    finally:
        torch.set_num_threads(threads)
    rows, checks = [], []
    for case, times, _, difference in results:
        release, ours = times["release"], times["ours"]
        ratio, low, high = median_interval([r / o for r, o in zip(release, ours)])
        verdict = True if low >= 1 else False if high < 1 else None
        rows.append([case, f"{fmt(median(release))} / {fmt(min(release))}", f"{fmt(median(ours))} / {fmt(min(ours))}",
                     f"**{ratio:.2f}×** [{low:.2f}, {high:.2f}]",
                     f"{median(release) / median(ours):.2f}× / {min(release) / min(ours):.2f}×",
                     f"{fmt(median(times['auto']))} ({median(release) / median(times['auto']):.2f}×)"
                     if "auto" in times else "= float32", difference])
        checks.append(Check(f"{case}: release ÷ ours, float32", median(ours), median(release), "s",
                            "the release, interleaved", ratio, target="≥ 1× (95 % interval)", passed=verdict,
                            note=f"min {fmt(min(ours))} s; per-round ratio {ratio:.2f}× [{low:.2f}, {high:.2f}]"))
        say(f"releases: {case}: release {median(release):.3f} s, ours {median(ours):.3f} s; per-round ratio "
            f"{ratio:.2f}× [{low:.2f}, {high:.2f}]; {difference}")
    body = [(f"{meter.describe()}. {machine()}; {THREADS} threads on each side (torch.set_num_threads; TensorFlow "
             f"{tf_version}, intra- and inter-op {THREADS}). Median and min of {repeats} interleaved call(s) after "
             f"{warmup} warm-up round(s) (a training step's comparison round before them). `auto` precision resolves "
             f"to **{auto}** on this CPU" + (" (no native bfloat16): ours in `auto` is the float32 column."
                                             if auto == "float32" else " (native bfloat16)."))]
    if rows:
        body.append(table(["case", "release s (median / min)", "ours float32 s (median / min)",
                           "release ÷ ours, per round: median [95 % interval]",
                           "release ÷ ours of the medians / of the mins", "ours `auto` s (release ÷ it)", "outputs"],
                          rows))
    body += skipped + __doc__.split("\n\n")[1:3]
    disagree = [f"{case}: {difference}" for case, _, agree, difference in results if not agree]
    if disagree:
        raise AssertionError(f"releases: ours and the release disagree: {'; '.join(disagree)}")
    return Section(NAME, "releases: our GC and LaMa against the released code (CPU, interleaved)", "\n\n".join(body),
                   checks)
