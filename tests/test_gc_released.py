"""GC's released weights (fgi/methods/gc/released.py): DeepFill v2's TensorFlow checkpoint, read by name.

Without TensorFlow only the refusals run (its absence is one UserError saying how to install it).
With it, checkpoints written here by `tf.compat.v1.train.Saver` under the release's variable names
must import to exactly the weights they hold, and a renamed, missing or truncated one must fail
naming the variable or file. With the release's code too (FGI_GC_RELEASE, as in
tests/test_gc_release.py), the release builds `inpaint_net` with TensorFlow's own initialisers and
saves it; the imported generator must give the release's coarse and refined outputs.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from test_gc_release import GAIN, TOLERANCE, batch, load_release, ours, release_or_skip

from fgi.errors import UserError
from fgi.methods.gc import released
from fgi.methods.gc.released import import_tensorflow

SIZE = 64
RELEASED = types.SimpleNamespace(width=1.0, attention=True, attention_variant="released")


def tensorflow():
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install '.[tf]'), so no checkpoint can be written")
    return import_tensorflow()


def release_variables(generator: torch.nn.Module) -> dict[str, np.ndarray]:
    """The generator's weights under the release's names, kernels in TF's (kh, kw, in, out) layout."""
    state = generator.state_dict()
    return {name: (state[key].permute(2, 3, 1, 0) if state[key].ndim == 4 else state[key]).numpy()
            for name, key in released.variable_names().items()}


def save(folder: Path, variables: dict[str, np.ndarray]) -> Path:
    """A TF1 Saver checkpoint (`checkpoint`, snap-0.index/.data/.meta) of `variables`, by name."""
    v1 = tensorflow().compat.v1
    with v1.Graph().as_default(), v1.Session() as session:
        made = {name: v1.Variable(value) for name, value in variables.items()}
        session.run(v1.variables_initializer(list(made.values())))
        v1.train.Saver(made).save(session, str(folder / "snap-0"))
    return folder


@pytest.fixture(scope="module")
def generator():
    return ours(SIZE)


@pytest.mark.parametrize("given", ["folder", "prefix", "index file", "folder without `checkpoint`"])
def test_the_checkpoint_imports_every_weight_by_name(tmp_path, generator, given):
    extra = {"discriminator/sn_patch_gan/conv1/kernel": np.zeros((5, 5, 4, 64), np.float32),
             "global_step": np.int64(7), "inpaint_net/conv1/kernel/Adam": np.zeros((5, 5, 5, 48), np.float32)}
    folder = save(tmp_path, {**extra, **release_variables(generator)})
    path = {"folder": folder, "prefix": folder / "snap-0", "index file": folder / "snap-0.index",
            "folder without `checkpoint`": folder}[given]
    if given == "folder without `checkpoint`":
        (folder / "checkpoint").rename(folder / "checkpoint.txt")  # as Google Drive downloads it
    imported = released.load(path, RELEASED, SIZE)
    got, want = imported.generator.state_dict(), generator.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[key], want[key]) for key in want)
    assert imported.generator.dilations == (2, 4, 8, 16) and not imported.generator.training
    assert "JiahuiYu/generative_inpainting" in imported.format and imported.training_images is None
    notes = " ".join(imported.notes)
    assert "discriminator (1), global_step (1)" in notes and "1 optimiser slots" in notes, notes


def test_a_renamed_variable_is_named(tmp_path, generator):
    variables = release_variables(generator)
    variables["inpaint_net/pmconv7/kernel"] = variables.pop("inpaint_net/pmconv9/kernel")
    with pytest.raises(UserError, match="unknown variable inpaint_net/pmconv7/kernel.*another network"):
        released.load(save(tmp_path, variables), RELEASED, SIZE)


def test_a_missing_variable_is_named(tmp_path, generator):
    variables = release_variables(generator)
    del variables["inpaint_net/allconv15_upsample/allconv15_upsample_conv/bias"]
    with pytest.raises(UserError, match="missing inpaint_net/allconv15_upsample/allconv15_upsample_conv/bias"):
        released.load(save(tmp_path, variables), RELEASED, SIZE)


def test_a_variable_of_another_shape_is_named(tmp_path, generator):
    variables = release_variables(generator)
    variables["inpaint_net/xconv3/kernel"] = variables["inpaint_net/xconv3/kernel"][..., :10]
    with pytest.raises(UserError, match=r"inpaint_net/xconv3/kernel: shape \[3, 3, 24, 10\]"):
        released.load(save(tmp_path, variables), RELEASED, SIZE)


def test_a_truncated_data_file_is_named(tmp_path, generator):
    data = save(tmp_path, release_variables(generator)) / "snap-0.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(UserError, match="snap-0.data-00000-of-00001.*truncated or corrupt"):
        released.load(tmp_path, RELEASED, SIZE)


def test_a_folder_without_a_checkpoint_is_named(tmp_path):
    tensorflow()
    with pytest.raises(UserError, match=f"{tmp_path}: holds no TensorFlow checkpoint"):
        released.load(tmp_path, RELEASED, SIZE)


@pytest.mark.parametrize("key, value", [("attention", False), ("attention_variant", "corrected"), ("width", 0.5)])
def test_params_the_weights_cannot_mean_are_refused(tmp_path, key, value):
    cfg = types.SimpleNamespace(**{**vars(RELEASED), key: value})
    with pytest.raises(UserError, match=f"models.gc.{key}:"):
        released.load(tmp_path, cfg, SIZE)


def test_without_tensorflow_it_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    with pytest.raises(UserError, match=r"pip install '\.\[tf\]'"):
        released.load(tmp_path, RELEASED, SIZE)


@pytest.mark.parametrize("size", [SIZE, 256])
def test_the_release_saved_by_itself_imports_to_its_outputs(tmp_path, size):
    root = release_or_skip()
    tf, model = load_release(root)
    masked, hole = batch(size)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x, mask = tf.placeholder(tf.float32, masked.shape), tf.placeholder(tf.float32, hole.shape)
        stages = model().build_inpaint_net(x, mask, training=False)[:2]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())  # the release's own: Glorot kernels, zero biases
            # As in test_gc_release: Glorot alone leaves the outputs near 0; scale the kernels and give the
            # biases values (a zero bias would not show a bias imported into the wrong layer), in TF.
            session.run([tf.assign(v, v * GAIN if "kernel" in v.name else tf.random.normal(v.shape, 0, 0.05))
                         for v in tf.trainable_variables()])
            tf.train.Saver().save(session, str(tmp_path / "snap-0"))
            want = session.run(stages, {x: masked, mask: hole})

    generator = released.load(tmp_path, RELEASED, size).generator
    with torch.no_grad():
        got = generator(torch.from_numpy(masked).permute(0, 3, 1, 2), torch.from_numpy(hole).permute(0, 3, 1, 2),
                        stages=True)
    for name, ours_, theirs in zip(("coarse", "refined"), got, want):
        difference = np.abs(ours_.permute(0, 2, 3, 1).numpy() - theirs)
        print(f"{name} at {size}²: max |imported − released| {difference.max():.2e}, output std {theirs.std():.3f}")
        assert theirs.std() > 0.1, f"{name}: outputs too close to 0 to compare"
        assert difference.max() < TOLERANCE, f"{name}: max |imported − released| {difference.max():.2e}"
