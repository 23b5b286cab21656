"""Make the golden fixtures of tests/test_golden.py with the releases' own code. Run by hand, with clones:

    FGI_LAMA_RELEASE=/path/to/lama FGI_GC_RELEASE=/path/to/copies \\
        .venv/bin/python tests/golden/make_golden.py

(FGI_LAMA_RELEASE: a clone of advimman/lama; FGI_GC_RELEASE: the folder holding clones of
JiahuiYu/generative_inpainting and JiahuiYu/neuralgym; TensorFlow 2 with tf_keras installed, as for
tests/test_lama_release.py and tests/test_gc_release.py, whose import helpers this reuses.) It writes
tests/golden/{lama_networks,lama_step,gc}.npz: inputs (or their seeds and checksums), outputs, and a
`meta` entry (JSON) with the releases' commits (`git rev-parse HEAD`), the library versions, the sizes
and seeds. No weights are stored: every parameter and statistic is `test_golden.golden_values` of its
name and shape, which the test rebuilds.

The LaMa training step runs the release's DefaultInpaintingTrainingModule
(saicinpainting/training/trainers/default.py), built by the release's own `make_training_model` from
the release's configs/training files (lama-fourier-celeba.yaml with ffc_resnet_075 at n_blocks 1,
pix2pixhd_nlayer, default_optimizers, the CelebA trainer's gradient_clip_val 1) and
losses.resnet_pl.weight 0, and drives it as pytorch_lightning 1.2.9 (the release's requirement) does
with two optimisers and automatic optimisation: for each optimiser in turn, training_step ->
training_step_end -> loss.backward() -> PrecisionPlugin.clip_gradients (transcribed below) ->
optimizer.step(), the same batch dict for both. Stood in for, since none of it is installed or runs in
a training step:

* `pytorch_lightning`: a module whose LightningModule is nn.Module plus a no-op save_hyperparameters
  and a log_dict that records what training_step_end logs (the terms compared); `trainer` is set to
  a single-process stand-in (num_nodes 1, num_processes 1, global_rank 0) read by get_ddp_rank;
  Lightning's toggle_optimizer is not re-enacted: the release's _do_step sets requires_grad the same
  way itself (generator on, discriminator off, and back);
* `make_visualizer` and `make_evaluator`, as trainers.base imported them: return None (the
  visualiser runs only when batch_idx % visualize_each_iters == 0, and the step uses batch_idx 1; the
  evaluators only in validation);
* import-only packages the trainer's module imports pull in and never call in a step: kornia,
  albumentations, imgaug, webdataset, easydict (empty modules whose attributes are empty classes).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import json
import math
import os
import platform
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]   # tests/ (the test modules), the repository (fgi)

import test_gc_release as gc_release  # noqa: E402
import test_golden as golden  # noqa: E402
import test_lama_release as lama_release  # noqa: E402

STUBBED = ("kornia", "albumentations", "imgaug", "webdataset", "easydict")
LAMA_GENERATOR = dict(size=32, width=0.25, ngf=16, n_blocks=2, ratio_g=0.75, batch=2, seed=1)
LAMA_DISCRIMINATOR = dict(size=16, width=1.0, ndf=64, n_layers=4, batch=2, seed=2, fake_seed=3)
LAMA_STEP = dict(size=32, width=1.0, ngf=64, n_blocks=1, batch=2, seed=4, batch_idx=1)
GC_GENERATOR = dict(size=64, width=1.0, seed=5)
GC_DISCRIMINATOR = dict(size=256, width=1.0, out_side=4, seed=6)


def commit(folder: Path) -> str:
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def versions(**more) -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), **more}


def save(name: str, arrays: dict, meta: dict) -> None:
    meta = {"made_by": "tests/golden/make_golden.py", **meta}
    arrays = {key: np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor) else value)
              for key, value in arrays.items()}
    arrays = {key: value.astype(np.uint8) if key.endswith("hole") else value for key, value in arrays.items()}
    path = HERE / f"{name}.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta, indent=1)), **arrays)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KB, {len(arrays)} arrays")


# --- LaMa ----------------------------------------------------------------------------------------------

class _Anything(types.ModuleType):
    """An import-only package: any attribute is a fresh empty class (base classes at import time)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Anything(spec.name)

    def exec_module(self, module):
        module.__path__ = []


class LightningModule(nn.Module):
    """pytorch_lightning 1.2's LightningModule, as far as the release's training step uses it."""

    def save_hyperparameters(self, *args, **kwargs) -> None:
        pass

    def log_dict(self, dictionary, **kwargs) -> None:
        logged = self.__dict__.setdefault("logged", {})
        logged.update({key: value.detach().clone() for key, value in dictionary.items()})


@contextlib.contextmanager
def lama_modules(root: Path):
    """The release's modules (as test_lama_release's fixture imports them, plus the trainer), with the
    stand-ins of this file's docstring; sys.path and sys.modules restored afterwards."""
    lightning = types.ModuleType("pytorch_lightning")
    lightning.LightningModule, lightning.seed_everything = LightningModule, None
    finder = _StubFinder()
    saved = {name: sys.modules.pop(name) for name in list(sys.modules)
             if lama_release.is_release_module(name) or name.split(".")[0] in STUBBED + ("pytorch_lightning",)}
    sys.modules["pytorch_lightning"] = lightning
    sys.meta_path.insert(0, finder)
    sys.path.insert(0, str(root))
    try:
        modules = types.SimpleNamespace(
            ffc=importlib.import_module("saicinpainting.training.modules.ffc"),
            pix2pixhd=importlib.import_module("saicinpainting.training.modules.pix2pixhd"),
            adversarial=importlib.import_module("saicinpainting.training.losses.adversarial"),
            feature_matching=importlib.import_module("saicinpainting.training.losses.feature_matching"),
            base=importlib.import_module("saicinpainting.training.trainers.base"),
            trainers=importlib.import_module("saicinpainting.training.trainers"))
        modules.base.make_visualizer = lambda **kwargs: None
        modules.base.make_evaluator = lambda **kwargs: None
        yield modules
    finally:
        sys.path.remove(str(root))
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if lama_release.is_release_module(name)
                     or name.split(".")[0] in STUBBED + ("pytorch_lightning",)]:
            del sys.modules[name]
        sys.modules.update(saved)


def release_config(root: Path, n_blocks: int):
    """The release's training config, composed as hydra would from lama-fourier-celeba.yaml's defaults
    (the parts a training step reads), the generator shrunk to n_blocks and ResNetPL's weight 0."""
    from omegaconf import OmegaConf

    folder = root / "configs" / "training"
    top = OmegaConf.load(folder / "lama-fourier-celeba.yaml")
    config = OmegaConf.create({
        "training_model": top.training_model, "losses": top.losses,
        "generator": OmegaConf.load(folder / "generator" / "ffc_resnet_075.yaml"),
        "discriminator": OmegaConf.load(folder / "discriminator" / "pix2pixhd_nlayer.yaml"),
        "optimizers": OmegaConf.load(folder / "optimizers" / "default_optimizers.yaml"),
        "trainer": OmegaConf.load(folder / "trainer" / "any_gpu_large_ssim_ddp_final_celeba.yaml"),
        "visualizer": {}, "evaluator": {}, "data": {}})
    config.generator.n_blocks = n_blocks
    config.losses.resnet_pl.weight = 0
    return config


def released_recipe(config) -> dict:
    """The release's values of the models.lama keys every profile shares (test_golden.RELEASED_RECIPE_KEYS)."""
    losses, optimizers = config.losses, config.optimizers
    assert optimizers.generator.kind == optimizers.discriminator.kind == "adam"
    assert "betas" not in optimizers.generator and "betas" not in optimizers.discriminator
    betas = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).defaults["betas"]   # the release sets none
    assert losses.adversarial.kind == "r1" and losses.adversarial.mask_as_fake_target
    return {"ratio_g": float(config.generator.resnet_conv_kwargs.ratio_gin),
            "lr_g": float(optimizers.generator.lr), "lr_d": float(optimizers.discriminator.lr),
            "beta1": betas[0], "beta2": betas[1],
            "w_l1_known": float(losses.l1.weight_known), "w_l1_missing": float(losses.l1.weight_missing),
            "w_adv": float(losses.adversarial.weight), "gp_coef": float(losses.adversarial.gp_coef),
            "w_fm": float(losses.feature_matching.weight),
            "grad_clip": float(config.trainer.kwargs.gradient_clip_val)}


def lightning_clip_gradients(optimizer: torch.optim.Optimizer, clip_val: float, norm_type: float = 2.0):
    """pytorch_lightning 1.2's PrecisionPlugin.clip_gradients (plugins/precision/precision_plugin.py,
    EPSILON 1e-6, fp32), transcribed: the norm over the optimiser's parameters that have a gradient.
    Returns that norm (before clipping), for the record."""
    if clip_val is None or float(clip_val) <= 0:
        return
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    parameters = list(filter(lambda p: p.grad is not None, parameters))
    device = parameters[0].device
    if norm_type == math.inf:
        total_norm = max(p.grad.data.abs().max() for p in parameters)
    else:
        out = torch.empty(len(parameters), device=device)
        for i, p in enumerate(parameters):
            torch.norm(p.grad.data.to(device), norm_type, out=out[i])
        total_norm = torch.norm(out, norm_type)
    clip_coef = torch.tensor(float(clip_val), device=device) / (total_norm + 1e-6)
    clip_coef = torch.min(clip_coef, torch.ones_like(clip_coef))
    for p in parameters:
        p.grad.data.mul_(clip_coef.to(p.grad.data.device))
    return float(total_norm)


def lama_networks(release) -> tuple[dict, dict]:
    arrays: dict = {}
    # Generator: the release's FFCResNetGenerator with ffc_resnet_075's kwargs, ngf and n_blocks shrunk.
    g = LAMA_GENERATOR
    kwargs = {**lama_release.FFC_RESNET_075, "ngf": g["ngf"], "n_blocks": g["n_blocks"]}
    generator = release.ffc.FFCResNetGenerator(**kwargs)
    golden.fill(generator, "generator")
    image = golden.images(g["batch"], g["size"], g["seed"])
    hole = golden.holes(g["batch"], g["size"])
    arrays.update({"generator/image": image, "generator/hole": hole})
    image, hole = torch.from_numpy(image), torch.from_numpy(hole)
    x = torch.cat((((image + 1) / 2) * (1 - hole), hole), 1)
    with torch.no_grad():
        arrays["generator/train/output"] = generator.train()(x)
        for name, tensor in generator.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                arrays[f"generator/train/{name}"] = tensor.clone()
        golden.fill(generator, "generator")
        arrays["generator/eval/output"] = generator.eval()(x)

    # Discriminator: pix2pixhd_nlayer as configured (ndf 64, 4 layers).
    d = LAMA_DISCRIMINATOR
    discriminator = release.pix2pixhd.NLayerDiscriminator(**lama_release.PIX2PIXHD_NLAYER)
    golden.fill(discriminator, "discriminator")
    real = torch.from_numpy(golden.images(d["batch"], d["size"], d["seed"]) * 0.5 + 0.5)   # LaMa's [0, 1]
    fake = torch.from_numpy(golden.images(d["batch"], d["size"], d["fake_seed"]) * 0.5 + 0.5)
    fake = (fake + real) / 2      # a "prediction" off the image in and out of the hole, as test_lama_release
    hole = torch.from_numpy(golden.holes(d["batch"], d["size"]))
    arrays.update({"discriminator/real": real, "discriminator/fake": fake, "discriminator/hole": hole})
    with torch.no_grad():
        for mode, x in (("train", real), ("eval", real[:1])):
            discriminator.train(mode == "train")
            logits, features = discriminator(x)
            arrays[f"discriminator/{mode}/logits"] = logits
            for index, feature in enumerate(features):
                arrays[f"discriminator/{mode}/feature{index}"] = feature
            golden.fill(discriminator, "discriminator")

    # Losses: the release's functions, on its discriminator's outputs (train mode).
    discriminator.train()
    adversarial = release.adversarial.NonSaturatingWithR1(
        weight=lama_release.W_ADV, gp_coef=lama_release.GP_COEF, mask_as_fake_target=True, allow_scale_mask=True)
    real_logits, real_features = discriminator(real)
    fake_logits, fake_features = discriminator(fake)
    arrays["loss/l1"] = release.feature_matching.masked_l1_loss(fake, real, hole, lama_release.W_L1_KNOWN,
                                                                lama_release.W_L1_MISSING)
    arrays["loss/fm"] = release.feature_matching.feature_matching_loss(fake_features, real_features)
    arrays["loss/generator_adversarial"], _ = adversarial.generator_loss(
        real_batch=real, fake_batch=fake, discr_real_pred=real_logits, discr_fake_pred=fake_logits, mask=hole)
    real = real.clone()
    adversarial.pre_discriminator_step(real, fake, None, discriminator)
    real_logits, _ = discriminator(real)
    fake_logits, _ = discriminator(fake)
    loss, metrics = adversarial.discriminator_loss(real_batch=real, fake_batch=fake, discr_real_pred=real_logits,
                                                   discr_fake_pred=fake_logits, mask=hole)
    arrays["loss/discriminator"], arrays["loss/r1"] = loss, metrics["discr_real_gp"]
    discriminator.zero_grad()
    loss.backward()
    cancelled = golden.cancelled_biases(discriminator)
    parameters = [(name, p) for name, p in discriminator.named_parameters() if name not in cancelled]
    arrays["loss/grad_norm"] = torch.stack([p.grad.double().norm() for _, p in parameters])
    arrays["loss/grad_small"] = torch.cat([p.grad.double() for _, p in parameters if p.dim() == 1])

    meta = {"generator": {**g, "release_kwargs": kwargs},
            "discriminator": {**d, "release_kwargs": lama_release.PIX2PIXHD_NLAYER},
            "losses": {"w_l1_known": lama_release.W_L1_KNOWN, "w_l1_missing": lama_release.W_L1_MISSING,
                       "w_adv": lama_release.W_ADV, "gp_coef": lama_release.GP_COEF,
                       "cancelled_biases": sorted(cancelled)}}
    return arrays, meta


def lama_step(release, root: Path) -> tuple[dict, dict]:
    s = LAMA_STEP
    config = release_config(root, s["n_blocks"])
    module = release.trainers.make_training_model(config)
    assert module.loss_resnet_pl is None and config.generator.ngf == s["ngf"]
    module.trainer = types.SimpleNamespace(num_nodes=1, num_processes=1, global_rank=0)
    golden.fill(module.generator, "generator")
    golden.fill(module.discriminator, "discriminator")
    optimizers = [entry["optimizer"] for entry in module.configure_optimizers()]
    networks = {"generator": module.generator, "discriminator": module.discriminator}
    before = {network: golden.snapshot(net) for network, net in networks.items()}

    image = golden.images(s["batch"], s["size"], s["seed"])
    hole = golden.holes(s["batch"], s["size"])
    batch = {"image": (torch.from_numpy(image) + 1) / 2, "mask": torch.from_numpy(hole)}   # as LamaObjective's to01
    module.train()
    losses, norms = [], []
    for optimizer_idx, optimizer in enumerate(optimizers):          # Lightning 1.2, automatic optimisation
        output = module.training_step(batch, s["batch_idx"], optimizer_idx=optimizer_idx)
        loss = module.training_step_end(output)
        loss.backward()
        norms.append(lightning_clip_gradients(optimizer, config.trainer.kwargs.gradient_clip_val))
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.detach())
    arrays = {"image": image, "hole": hole, "loss/generator": losses[0], "loss/discriminator": losses[1],
              **{f"logged/{key}": value for key, value in module.logged.items()},
              **{f"digest/{key}": value for key, value in
                 golden.step_digest(networks, dict(zip(networks, optimizers)), before).items()}}
    from omegaconf import OmegaConf

    shown = OmegaConf.masked_copy(config, ["training_model", "generator", "discriminator", "optimizers"])
    recorded = {**OmegaConf.to_container(shown, resolve=True),
                      "losses": {key: OmegaConf.to_container(value) for key, value in config.losses.items()
                                 if key != "resnet_pl"} | {"resnet_pl": {"weight": 0}},
                      "gradient_clip_val": config.trainer.kwargs.gradient_clip_val}
    meta = {**s, "logged": sorted(module.logged), "released_recipe": released_recipe(config),
            "gradient_norms_before_clipping": dict(zip(networks, norms)),
            "cancelled_biases": {network: sorted(golden.cancelled_biases(net)) for network, net in networks.items()},
            "release_config": recorded}
    return arrays, meta


def make_lama(root: Path) -> None:
    with lama_modules(root) as release:
        provenance = {"commits": {"advimman/lama": commit(root)}, "versions": versions()}
        arrays, meta = lama_networks(release)
        save("lama_networks", arrays, {**provenance, **meta})
        arrays, meta = lama_step(release, root)
        save("lama_step", arrays, {**provenance, **meta})


# --- GC ------------------------------------------------------------------------------------------------

def make_gc(root: Path) -> None:
    tf, model = gc_release.load_release(root)
    provenance = {"commits": {"JiahuiYu/generative_inpainting": commit(root / "generative_inpainting"),
                              "JiahuiYu/neuralgym": commit(root / "neuralgym")},
                  "versions": versions(tensorflow=importlib.import_module("tensorflow").__version__)}
    arrays: dict = {}

    g = GC_GENERATOR
    generator = gc_release.ours(g["size"])   # ours, with the release's dilations restored: the layer order
    golden.fill(generator, "gc-generator", gc_release.GAIN)
    image, hole = golden.images(1, g["size"], g["seed"]), golden.holes(1, g["size"])
    masked = image * (1 - hole)
    arrays["generator/input_checksum"] = golden.checksum(masked)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (1, g["size"], g["size"], 3))
        mask = tf.placeholder(tf.float32, (1, g["size"], g["size"], 1))
        stage1, stage2, _ = model().build_inpaint_net(x, mask, training=False)
        variables = tf.trainable_variables()
        convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
        assert len(variables) == 2 * len(convs)
        with tf.Session() as session:
            for conv, (kernel, bias) in zip(convs, zip(variables[::2], variables[1::2])):
                kernel.load(conv.weight.detach().permute(2, 3, 1, 0).numpy(), session)
                bias.load(conv.bias.detach().numpy(), session)
            coarse, refined = session.run([stage1, stage2], {x: masked.transpose(0, 2, 3, 1),
                                                             mask: hole.transpose(0, 2, 3, 1)})
    arrays["generator/coarse"] = coarse.transpose(0, 3, 1, 2)     # NCHW, as ours
    arrays["generator/refined"] = refined.transpose(0, 3, 1, 2)

    d = GC_DISCRIMINATOR
    from fgi.methods.gc.networks import SNPatchGAN

    discriminator = SNPatchGAN(d["size"], d["width"])
    assert discriminator.out_side == d["out_side"]
    golden.fill(discriminator, "gc-discriminator", skip=("._u", "._v"))
    convs = [m for m in discriminator.features if isinstance(m, nn.Conv2d)]
    image, hole = golden.images(1, d["size"], d["seed"]), golden.holes(1, d["size"])
    arrays["discriminator/input_checksum"] = golden.checksum(image)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (1, d["size"], d["size"], 4))
        output = model().build_gan_discriminator(x, training=False)
        variables = {v.op.name: v for v in tf.global_variables()}
        assert len(variables) == 3 * len(convs), sorted(variables)
        us = []
        with tf.Session() as session:
            for index, conv in enumerate(convs):
                scope = f"discriminator/sn_patch_gan/conv{index + 1}"
                weight = conv.parametrizations.weight.original.detach()
                u = np.random.RandomState(d["seed"] * 100 + index).normal(size=(1, weight.shape[0])).astype(np.float32)
                arrays[f"discriminator/u{index}"] = u
                variables[f"{scope}/kernel"].load(weight.permute(2, 3, 1, 0).numpy(), session)
                variables[f"{scope}/bias"].load(conv.bias.detach().numpy(), session)
                variables[f"{scope}/kernel_sn/u"].load(u, session)
                us.append(variables[f"{scope}/kernel_sn/u"])
            scores = session.run(output, {x: np.concatenate((image, hole), 1).transpose(0, 2, 3, 1)})
            for index, value in enumerate(session.run(us)):
                arrays[f"discriminator/u_after{index}"] = value
    arrays["discriminator/output"] = scores
    save("gc", arrays, {**provenance, "generator": {**g, "gain": gc_release.GAIN,
                                                    "dilations": list(gc_release.PAPER_DILATIONS)},
                        "discriminator": {**d, "u_seed": "RandomState(seed * 100 + layer).normal"}})


def main() -> None:
    lama, gc = os.environ.get("FGI_LAMA_RELEASE", ""), os.environ.get("FGI_GC_RELEASE", "")
    if not lama or not gc:
        sys.exit("set FGI_LAMA_RELEASE (a clone of advimman/lama) and FGI_GC_RELEASE (the folder holding clones "
                 "of generative_inpainting and neuralgym); see this file's docstring")
    torch.set_num_threads(1)   # speed: OpenMP threads contend on small CPUs (test_lama_release's docstring)
    make_lama(Path(lama))
    make_gc(Path(gc))


if __name__ == "__main__":
    main()
