"""GC against its released TensorFlow code: the same weights in, the same coarse and refined outputs out.

The release (JiahuiYu/generative_inpainting, `inpaint_model.py` and `inpaint_ops.py`, with
JiahuiYu/neuralgym) is TensorFlow 1 code and is not part of this project. To run this test, put
copies of both repositories in one folder and point `FGI_GC_RELEASE` at it, in an environment
with TensorFlow 2 and `tf_keras`:

    FGI_GC_RELEASE=/path/to/copies  pytest tests/test_gc_release.py
    # /path/to/copies/generative_inpainting/inpaint_model.py, /path/to/copies/neuralgym/neuralgym/

Without them it skips, saying which is missing. The release runs under `tf.compat.v1` in graph
mode; the only things stood in for are TF1's `tf.contrib` argument scopes (`arg_scope`,
`add_arg_scope`), which the network is built without (its defaults are the ones the release's
scope sets), and neuralgym's package `__init__` files, which import its trainers: its layer,
loss and model modules load from the copy as they are.

Our generator's weights (Glorot, as released, times a gain that keeps the outputs away from 0 and
from tanh's flats) are
copied into the release's variables in creation order, which is the layer order of both. At
64² our generator caps the dilation rates at the feature side (`dilation_rates`); the
comparison restores the release's 2, 4, 8, 16, so that both run the same network.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fgi.methods.gc.networks import PAPER_DILATIONS, GatedGenerator
from fgi.methods.gc.released import import_tensorflow

RELEASE = os.environ.get("FGI_GC_RELEASE", "")
# Each gated layer shrinks Glorot activations ~3x; with this gain the outputs' spread is 0.24-0.33,
# neither vanishing nor on tanh's flats (at 3.0 the differences grow 10x where the attention's
# softmax, scale 10, amplifies float32 rounding).
GAIN = 2.5
# Measured (AMD EPYC, TensorFlow 2.21 CPU): max |ours − released| 1.2e-6 / 2.4e-6 (coarse / refined)
# at 64², 4.9e-6 / 5.2e-6 at 256² (5.4e-6 refined in channels_last). `attention_variant: corrected`
# differs by 0.16 in the refined output.
TOLERANCE = 2e-5


def release_or_skip() -> Path:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install tensorflow-cpu tf_keras) to run the release")
    root = Path(RELEASE) if RELEASE else None
    needed = ("generative_inpainting/inpaint_model.py", "neuralgym/neuralgym/ops/layers.py")
    if root is None or not all((root / path).is_file() for path in needed):
        pytest.skip("the release is absent: set FGI_GC_RELEASE to a folder with copies of "
                    "generative_inpainting/ and neuralgym/ (see this file's docstring)")
    return root


def package(name: str, folder: Path) -> None:
    """Register package `name` at `folder` without running its __init__ (neuralgym's imports its trainers)."""
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    sys.modules[name] = module


def load_release(root: Path):
    """inpaint_model's InpaintCAModel, with `tensorflow` resolving to tf.compat.v1 for the release's modules."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers from tf_keras, not Keras 3
    tf2 = import_tensorflow()

    tf = tf2.compat.v1
    tf.disable_v2_behavior()
    contrib_ops = types.ModuleType("tensorflow.contrib.framework.python.ops")
    contrib_ops.add_arg_scope = lambda function: function
    contrib_ops.arg_scope = lambda functions, **defaults: contextlib.nullcontext()
    # What the release takes from tf.contrib besides the scopes: initialisers and a regulariser, unused
    # here (every weight is loaded from ours), and flatten.
    contrib = types.SimpleNamespace(framework=contrib_ops, layers=types.SimpleNamespace(
        xavier_initializer_conv2d=lambda *args, **kwargs: tf.glorot_uniform_initializer(),
        l2_regularizer=lambda scale: None, flatten=tf.layers.flatten))
    released_tf = types.ModuleType("tensorflow")  # tf.compat.v1, plus tf.contrib
    released_tf.__getattr__ = lambda name: getattr(tf, name)
    released_tf.contrib = contrib
    saved = {name: sys.modules.get(name) for name in ("tensorflow", "tensorflow.contrib",
                                                       "tensorflow.contrib.framework",
                                                       "tensorflow.contrib.framework.python",
                                                       "tensorflow.contrib.framework.python.ops")}
    sys.modules["tensorflow"] = released_tf
    for name in list(saved)[1:]:
        sys.modules[name] = contrib_ops if name.endswith(".ops") else types.ModuleType(name)
    try:
        neuralgym = root / "neuralgym" / "neuralgym"
        package("neuralgym", neuralgym)
        package("neuralgym.ops", neuralgym / "ops")
        package("neuralgym.utils", neuralgym / "utils")
        package("neuralgym.models", neuralgym / "models")
        sys.modules["neuralgym.models"].Model = importlib.import_module("neuralgym.models.model").Model
        sys.path.insert(0, str(root / "generative_inpainting"))
        model = importlib.import_module("inpaint_model")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return tf, model.InpaintCAModel


def ours(size: int) -> GatedGenerator:
    torch.manual_seed(0)
    generator = GatedGenerator(size, 1.0, attention=True, attention_variant="released").eval()
    for stage in (generator.coarse, generator.refine_conv):  # the release's rates at every size
        for layer, rate in zip(list(stage)[6:10], PAPER_DILATIONS):
            layer.conv.dilation, layer.conv.padding = (rate, rate), (rate, rate)
    with torch.no_grad():
        for conv in (m for m in generator.modules() if isinstance(m, nn.Conv2d)):
            conv.weight.mul_(GAIN)
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(conv.weight.numel()))
    return generator


def batch(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size)
    image = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    hole = np.zeros((1, size, size, 1), np.float32)
    hole[:, size // 4: size // 2, size // 8: size // 2] = 1
    hole[:, 5 * size // 8: 7 * size // 8, size // 2: 3 * size // 4] = 1
    return image * (1 - hole), hole


@pytest.mark.parametrize("size", [64, 256])
def test_coarse_and_refined_outputs_match_the_release(size):
    root = release_or_skip()
    tf, model = load_release(root)
    masked, hole = batch(size)
    generator = ours(size)
    inputs = (torch.from_numpy(masked).permute(0, 3, 1, 2), torch.from_numpy(hole).permute(0, 3, 1, 2))
    with torch.no_grad():
        outputs = {"NCHW": generator(*inputs, stages=True)}
        # channels_last, as `fgi inpaint` runs GC in float32 (fgi.inference.memory_format)
        shipped = copy.deepcopy(generator).to(memory_format=torch.channels_last)
        outputs["channels_last"] = shipped(*(t.contiguous(memory_format=torch.channels_last) for t in inputs),
                                           stages=True)

    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, masked.shape)
        mask = tf.placeholder(tf.float32, hole.shape)
        stage1, stage2, _ = model().build_inpaint_net(x, mask, training=False)
        variables = tf.trainable_variables()
        convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
        assert len(variables) == 2 * len(convs), "the release's layers and ours differ in number"
        with tf.Session() as session:
            for conv, (kernel, bias) in zip(convs, zip(variables[::2], variables[1::2])):
                # torch (out, in, kh, kw) -> TensorFlow (kh, kw, in, out); the gate is the second half in both.
                kernel.load(conv.weight.detach().permute(2, 3, 1, 0).numpy(), session)
                bias.load(conv.bias.detach().numpy(), session)
            released = session.run([stage1, stage2], {x: masked, mask: hole})

    for layout, (coarse, refined) in outputs.items():
        for name, got, want in (("coarse", coarse, released[0]), ("refined", refined, released[1])):
            got = got.permute(0, 2, 3, 1).numpy()
            difference = np.abs(got - want)
            print(f"{name} at {size}², {layout}: max |ours − released| {difference.max():.2e}, "
                  f"mean {difference.mean():.2e}, output std {want.std():.3f}")  # docs/fidelity.md (pytest -s)
            assert want.std() > 0.1, f"{name}: outputs too close to 0 to compare"
            assert difference.max() < TOLERANCE, \
                f"{name} at {size}², {layout}: max |ours − released| {difference.max():.2e}"
