"""LaMa against its released PyTorch code: the same weights in, the same outputs, losses and gradients out.

The release (advimman/lama: `saicinpainting/` and `models/`) is not part of this project. To run this
test, clone it and point `FGI_LAMA_RELEASE` at the clone (the folder holding `saicinpainting/` and
`models/`):

    git clone https://github.com/advimman/lama /path/to/lama
    FGI_LAMA_RELEASE=/path/to/lama  pytest tests/test_lama_release.py

Without it every test skips, saying what is missing. The release's modules are imported unchanged
from the copy (put on sys.path for the import only, and taken out of sys.modules afterwards). Two
packages the release imports are not dependencies of this project and are never called by the
code compared here; for the duration of the import they are stood in for by empty modules:
`pytorch_lightning` (`saicinpainting/utils.py` imports `seed_everything`) and `kornia`
(`saicinpainting/training/modules/spatial_transform.py` imports `kornia.geometry.transform.rotate`,
used only by `LearnableSpatialTransformWrapper`, which `ffc_resnet_075` does not build). Everything
else the release imports is installed (`models/ade20k/base.py` reads `color150.mat` with scipy and
`object150_info.csv` with pandas at import time; both are in the clone).

Compared, on CPU in float32, at 64² and 256²:

1. an FFC (`FFC_BN_ACT`, global ratio 0.75 in and out) and an `FFCResnetBlock` on (N, 64, S, S) feature
   maps, local and global outputs, in train mode and then in eval mode with the BatchNorm running
   statistics the train forwards left (a cumulative average, momentum None, so that they are the
   data's and not near the initial (0, 1)); BN affine parameters are randomised too;
2. the whole generator at width 1.0 (ngf 64) at both sizes: ours `FFCResNetGenerator` against the
   release's built with the kwargs of `configs/training/generator/ffc_resnet_075.yaml`
   (`load_state_dict(strict=True)` both ways: the same parameters and buffers, name for name and
   shape for shape), train then eval, input the image in [0, 1] with the hole zeroed and the hole;
   then `LamaGenerator(size, 1.0)` with the same weights ([-1, 1] in and out) against
   2 * release(cat(image01 * (1 - hole), hole)) - 1;
3. the discriminator (`pix2pixhd_nlayer.yaml`: ndf 64, 4 layers, where our channel cap
   round(512 * width) is the release's 512), train then eval: logits and every feature map;
4. the loss terms against the release's own functions: `masked_l1_loss` (weight_known 10, missing 0),
   `feature_matching_loss`, and `NonSaturatingWithR1(weight=10, gp_coef=0.001,
   mask_as_fake_target=True, allow_scale_mask=True)`'s generator and discriminator losses (the latter
   with R1 computed by the release's `make_r1_gp` after its `pre_discriminator_step`), on the logits
   of real discriminators (7x7 at 64², 19x19 at 256², so the hole is interpolated 'nearest'); and
   the gradients of the discriminator loss w.r.t. every discriminator parameter, each side through
   its own discriminator (R1 differentiated through `create_graph`);
5. `ResNetPL` (weight 30) against the release's `ResNetPL(weights_path=..., arch_encoder=
   'resnet50dilated', segmentation=True)`. No ADE20k weights are available offline: our seeded random
   encoder (`load_encoder(None)`) is saved where the release looks for them,
   `<weights_path>/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth`. With a non-empty
   weights path the release's `ModelBuilder.build_encoder` builds its ResNet-50 with
   `pretrained=False` (no ImageNet download, `models/ade20k/base.py`) and loads the file with
   `strict=False`, so the test checks that every tensor of ours arrived. Compared: the four feature
   maps of the encoders (eval mode, frozen) and the loss values.

Tolerance: max |ours − released| / rms(released) < 1e-5 for every tensor and scalar (rms, not the
maximum, as the scale: the FFC's global outputs have rare peaks up to ~200x their rms, from the spectrum's
DC term). Measured (Intel Xeon with AMX, 2 cores, torch 2.14 CPU, float32): all 512 comparisons
agree bit for bit (difference 0) at both 64² and 256², the generator, discriminator, losses, R1,
D-gradients and ResNetPL included: the two implementations run the same operations in the same
order, on the same kernels. For scale, float32 itself against float64 (the release's modules run in
float64) is 2-7e-6 of the rms (1.8e-5 for the FFC's global output at 256²): a re-implementation that
reorders a sum could come within a few 1e-5 legitimately, and this test would then need a larger
tolerance; the present code needs none. The values compared are of order 1: generator outputs rms
0.49, logits 0.4-0.5, losses 0.02-0.18 (R1 times gp_coef) to 7 (adversarial), ResNetPL 59 (64²) and
158 (256²) with the random encoder, hence relative tolerances throughout. A change of 1e-4 in any
of the compared paths fails it (checked by scaling our Fourier unit, discriminator logits, layer4
features and gp_coef; and by detaching our R1, which only the gradient comparison sees).

Runtime with the release present: ~20 s with OMP_NUM_THREADS=1 on that machine; with torch's
default two threads while another job held one of the cores, 48-105 s (OpenMP threads contending;
the 64² generator alone went from 1.2 s to 15-30 s).
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from fgi.methods.lama import losses as our_losses
from fgi.methods.lama.discriminator import NLayerDiscriminator
from fgi.methods.lama.ffc import FFC_BN_ACT, FFCResnetBlock, FFCResNetGenerator, LamaGenerator
from fgi.methods.lama.resnet_pl import ResNetPL, load_encoder

RELEASE = os.environ.get("FGI_LAMA_RELEASE", "")
NEEDED = ("saicinpainting/training/modules/ffc.py", "saicinpainting/training/modules/pix2pixhd.py",
          "saicinpainting/training/losses/adversarial.py", "saicinpainting/training/losses/feature_matching.py",
          "saicinpainting/training/losses/perceptual.py", "models/ade20k/base.py",
          "models/ade20k/color150.mat", "models/ade20k/object150_info.csv")
RELEASE_MODULES = ("saicinpainting", "models")
TOLERANCE = 1e-5          # max |ours − released| / rms(released); see the docstring
SIZES = [64, 256]
TRAIN_STEPS = 2           # train-mode forwards before the eval comparison

# configs/training/generator/ffc_resnet_075.yaml, its interpolations resolved (kind: ffc_resnet).
FFC_RESNET_075 = dict(input_nc=4, output_nc=3, ngf=64, n_downsampling=3, n_blocks=9, add_out_act="sigmoid",
                      init_conv_kwargs=dict(ratio_gin=0, ratio_gout=0, enable_lfu=False),
                      downsample_conv_kwargs=dict(ratio_gin=0, ratio_gout=0, enable_lfu=False),
                      resnet_conv_kwargs=dict(ratio_gin=0.75, ratio_gout=0.75, enable_lfu=False))
# configs/training/discriminator/pix2pixhd_nlayer.yaml (kind: pix2pixhd_nlayer).
PIX2PIXHD_NLAYER = dict(input_nc=3, ndf=64, n_layers=4)
# configs/training/lama-fourier-celeba.yaml's losses, as LamaObjective uses them.
W_L1_KNOWN, W_L1_MISSING, W_ADV, GP_COEF, W_RESNET_PL = 10.0, 0.0, 10.0, 0.001, 30.0


def release_root(needed: tuple[str, ...] = NEEDED) -> Path:
    """The LaMa clone (FGI_LAMA_RELEASE) holding every path in `needed`, or a skip naming what is missing."""
    if not RELEASE:
        pytest.skip("the LaMa release is absent: set FGI_LAMA_RELEASE to a clone of "
                    "https://github.com/advimman/lama: the folder "
                    "holding saicinpainting/ and models/")
    root = Path(RELEASE)
    missing = [path for path in needed if not (root / path).is_file()]
    if missing:
        pytest.skip(f"FGI_LAMA_RELEASE={RELEASE} lacks {', '.join(missing)}: point it at a clone of "
                    "https://github.com/advimman/lama")
    return root


def is_release_module(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in RELEASE_MODULES)


@pytest.fixture(scope="module")
def release():
    """The release's modules, imported unchanged from the copy; sys.path and sys.modules restored after."""
    root = release_root()
    stubs = {name: types.ModuleType(name) for name in
             ("pytorch_lightning", "kornia", "kornia.geometry", "kornia.geometry.transform")}
    stubs["pytorch_lightning"].seed_everything = None        # imported by saicinpainting/utils.py, never called
    stubs["kornia.geometry.transform"].rotate = None         # imported by spatial_transform.py, never called
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        for name in [name for name in sys.modules if is_release_module(name)]:
            patch.delitem(sys.modules, name)   # e.g. another package called `models`: restored afterwards
        for name, stub in stubs.items():
            patch.setitem(sys.modules, name, stub)
        imported = {name: sys.modules.get(name) for name in list(sys.modules)}
        try:
            modules = types.SimpleNamespace(
                ffc=importlib.import_module("saicinpainting.training.modules.ffc"),
                pix2pixhd=importlib.import_module("saicinpainting.training.modules.pix2pixhd"),
                adversarial=importlib.import_module("saicinpainting.training.losses.adversarial"),
                feature_matching=importlib.import_module("saicinpainting.training.losses.feature_matching"),
                perceptual=importlib.import_module("saicinpainting.training.losses.perceptual"),
                ade20k=importlib.import_module("models.ade20k"))
        finally:
            for name in [name for name in sys.modules if is_release_module(name) and name not in imported]:
                del sys.modules[name]
    yield modules


def scale(tensor: torch.Tensor) -> float:
    """Root mean square: the size of a typical value (the FFC's global outputs have rare peaks up to ~200x it)."""
    return tensor.detach().double().pow(2).mean().sqrt().item()


def check(name: str, got: torch.Tensor, want: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    """max |got − want| / rms(want) < tolerance."""
    assert got.shape == want.shape, f"{name}: shapes differ, {tuple(got.shape)} vs {tuple(want.shape)}"
    difference = (got.detach() - want.detach()).abs().max().item()
    size = scale(want)
    relative = difference / size if size > 0 else float("inf")
    print(f"{name}: max |ours − released| {difference:.2e}, relative {relative:.2e}, rms {size:.3g}, "
          f"max {want.detach().abs().max().item():.3g}")  # the figures of the docstring (pytest -s)
    assert size > 0, f"{name}: the released values are all zeros"
    assert relative < tolerance, f"{name}: max |ours − released| {difference:.2e}, {relative:.2e} of its rms"


def randomise_batchnorm(module: nn.Module, seed: int) -> None:
    """BN affine parameters away from 1 and 0, so that they take part in the comparison."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.normal_(0, 0.1, generator=generator)


def copy_into(ours: nn.Module, released: nn.Module) -> None:
    """Ours -> the release's, strict: the same parameter and buffer names and shapes."""
    released.load_state_dict(ours.state_dict(), strict=True)
    assert set(ours.state_dict()) == set(released.state_dict())


def batch_size(size: int) -> int:
    """2 at 64², 1 at 256² (train-mode BatchNorm still sees >= 1024 values a channel), to keep the runtime down."""
    return 2 if size <= 64 else 1


def batch(size: int, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and holes (two rectangles; 1 = hole), (n, 3|1, size, size)."""
    generator = torch.Generator().manual_seed(seed + size)
    image = torch.rand(n, 3, size, size, generator=generator)
    hole = torch.zeros(n, 1, size, size)
    hole[:, :, size // 4: size // 2, size // 8: size // 2] = 1
    hole[:, :, 5 * size // 8: 7 * size // 8, size // 2: 3 * size // 4] = 1
    return image, hole


def compare_train_then_eval(name: str, ours: nn.Module, released: nn.Module, inputs: list, outputs) -> dict:
    """Train-mode forwards on each input (which also move both BN running stats identically), then
    eval mode with those statistics, on the first input. `outputs(module, x)` -> dict of named tensors;
    returns the release's in eval mode. BatchNorm keeps a cumulative average (momentum None) over the
    train steps, so that eval runs on the data's own statistics: with the default momentum 0.1 two
    steps leave the running statistics near (0, 1) and the eval outputs near constant (the
    generator's spread 0.003 instead of 0.08)."""
    for module in (ours, released):
        for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.momentum = None
    ours.train(), released.train()
    with torch.no_grad():
        for step, x in enumerate(inputs):
            got, want = outputs(ours, x), outputs(released, x)
            for key in want:
                check(f"{name} train step {step} {key}", got[key], want[key])
        released_state = released.state_dict()
        for key, got in ours.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                check(f"{name} {key}", got, released_state[key])
        released.load_state_dict(ours.state_dict())  # eval compares the computation alone, on identical stats
        ours.eval(), released.eval()
        got, want = outputs(ours, inputs[0]), outputs(released, inputs[0])
        for key in want:
            check(f"{name} eval {key}", got[key], want[key])
    return want


def split(x: torch.Tensor, ratio: float = 0.75) -> tuple[torch.Tensor, torch.Tensor]:
    global_channels = int(x.shape[1] * ratio)
    return x[:, :x.shape[1] - global_channels], x[:, x.shape[1] - global_channels:]


@pytest.mark.parametrize("size", SIZES)
def test_ffc_blocks_match_the_release(release, size):
    """FFC_BN_ACT (0.75 -> 0.75) and FFCResnetBlock on (batch_size(size), 64, size, size) feature maps."""
    dim = 64
    generator = torch.Generator().manual_seed(size)
    inputs = [split(torch.randn(batch_size(size), dim, size, size, generator=generator)) for _ in range(TRAIN_STEPS)]

    def parts(module, x):
        local, global_ = module(x)
        return {"local": local, "global": global_}

    torch.manual_seed(1)
    ours = FFC_BN_ACT(dim, dim, 3, 0.75, 0.75, padding=1, activation=nn.ReLU)
    randomise_batchnorm(ours, 2)
    released = release.ffc.FFC_BN_ACT(dim, dim, kernel_size=3, ratio_gin=0.75, ratio_gout=0.75, padding=1,
                                      activation_layer=nn.ReLU, enable_lfu=False)
    copy_into(ours, released)
    compare_train_then_eval(f"FFC_BN_ACT {size}²", ours, released, inputs, parts)

    torch.manual_seed(3)
    ours = FFCResnetBlock(dim, 0.75)
    randomise_batchnorm(ours, 4)
    released = release.ffc.FFCResnetBlock(dim, padding_type="reflect", norm_layer=nn.BatchNorm2d,
                                          activation_layer=nn.ReLU, **FFC_RESNET_075["resnet_conv_kwargs"])
    copy_into(ours, released)
    compare_train_then_eval(f"FFCResnetBlock {size}²", ours, released, inputs, parts)


def test_generator_kwargs_are_the_released_config():
    """FFC_RESNET_075 is ffc_resnet_075.yaml (where the copy has configs/)."""
    config = release_root() / "configs/training/generator/ffc_resnet_075.yaml"
    if not config.is_file():
        pytest.skip(f"{config} is absent (the clone's configs/)")
    import yaml

    loaded = yaml.safe_load(config.read_text())
    assert loaded.pop("kind") == "ffc_resnet"
    for key, value in loaded.items():
        if isinstance(value, dict):  # ${...} interpolations are resolved in FFC_RESNET_075
            for inner, inner_value in value.items():
                if not (isinstance(inner_value, str) and inner_value.startswith("${")):
                    assert FFC_RESNET_075[key][inner] == inner_value, f"{key}.{inner}"
        else:
            assert FFC_RESNET_075[key] == value, key
    assert set(loaded) == set(FFC_RESNET_075)


@pytest.mark.parametrize("size", SIZES)
def test_generator_matches_the_release(release, size):
    """Width 1.0 (ngf 64) at both sizes; 4-channel input: the image in [0, 1] with the hole zeroed, and the hole.
    Then LamaGenerator, holding the same weights, in the pipeline's convention ([-1, 1] in and out)."""
    torch.manual_seed(5)
    ours = FFCResNetGenerator(ngf=64, n_blocks=9, ratio_g=0.75, n_downsampling=3, input_nc=4, output_nc=3)
    randomise_batchnorm(ours, 6)
    released = release.ffc.FFCResNetGenerator(**FFC_RESNET_075)
    copy_into(ours, released)
    images = [batch(size, batch_size(size), seed=seed) for seed in range(TRAIN_STEPS)]
    inputs = [torch.cat((image * (1 - hole), hole), 1) for image, hole in images]
    released_eval = compare_train_then_eval(f"generator {size}²", ours, released, inputs,
                                            lambda module, x: {"output": module(x)})

    lama = LamaGenerator(size, 1.0)
    lama.net.load_state_dict(ours.state_dict(), strict=True)
    image01, hole = images[0]
    masked = (image01 * 2 - 1) * (1 - hole)   # the pipeline's masked image in [-1, 1]
    with torch.no_grad():
        got = lama.eval()(masked, hole)
    check(f"LamaGenerator {size}² eval", got, released_eval["output"] * 2 - 1)


@pytest.mark.parametrize("size", SIZES)
def test_discriminator_matches_the_release(release, size):
    torch.manual_seed(9)
    ours = NLayerDiscriminator(size, 1.0)
    randomise_batchnorm(ours, 10)
    released = release.pix2pixhd.NLayerDiscriminator(**PIX2PIXHD_NLAYER)
    copy_into(ours, released)
    inputs = [batch(size, seed=seed)[0] for seed in range(TRAIN_STEPS)]

    def outputs(module, x):
        logits, features = module(x)
        assert len(features) == PIX2PIXHD_NLAYER["n_layers"] + 1
        return {"logits": logits, **{f"feature {i}": feature for i, feature in enumerate(features)}}

    compare_train_then_eval(f"discriminator {size}²", ours, released, inputs, outputs)


@pytest.mark.parametrize("size", SIZES)
def test_losses_match_the_release(release, size):
    adversarial = release.adversarial.NonSaturatingWithR1(weight=W_ADV, gp_coef=GP_COEF, mask_as_fake_target=True,
                                                          allow_scale_mask=True)
    torch.manual_seed(11)
    ours_d = NLayerDiscriminator(size, 1.0)
    randomise_batchnorm(ours_d, 12)
    released_d = release.pix2pixhd.NLayerDiscriminator(**PIX2PIXHD_NLAYER)
    copy_into(ours_d, released_d)
    real, hole = batch(size, seed=4)
    fake = (batch(size, seed=5)[0] + real) / 2   # a "prediction", off the image in and out of the hole

    # Generator side: the same tensors into both loss functions.
    real_logits, real_features = ours_d(real)
    fake_logits, fake_features = ours_d(fake)
    assert fake_logits.shape[-2:] != hole.shape[-2:]   # the hole is interpolated to the logits
    check(f"masked_l1 {size}²", our_losses.masked_l1_loss(fake, real, hole, W_L1_KNOWN, W_L1_MISSING),
          release.feature_matching.masked_l1_loss(fake, real, hole, W_L1_KNOWN, W_L1_MISSING))
    check(f"feature_matching {size}²", our_losses.feature_matching_loss(fake_features, real_features),
          release.feature_matching.feature_matching_loss(fake_features, real_features))
    want, _ = adversarial.generator_loss(real_batch=real, fake_batch=fake, discr_real_pred=real_logits,
                                         discr_fake_pred=fake_logits, mask=hole)
    check(f"generator adversarial {size}²", our_losses.generator_adversarial_loss(fake_logits) * W_ADV, want)

    # Discriminator side, each through its own discriminator, as LamaObjective.step and the release's
    # DefaultInpaintingTrainingModule (pre_discriminator_step, then discriminator_loss with make_r1_gp).
    ours_real = real.clone().requires_grad_(True)
    ours_real_logits, _ = ours_d(ours_real)
    ours_fake_logits, _ = ours_d(fake)
    gp = our_losses.r1_penalty(ours_real_logits, ours_real)
    ours_loss = our_losses.discriminator_loss(ours_real_logits, ours_fake_logits, hole, gp, GP_COEF)

    released_real = real.clone()
    adversarial.pre_discriminator_step(released_real, fake, None, released_d)
    released_real_logits, _ = released_d(released_real)
    released_fake_logits, _ = released_d(fake)
    released_loss, metrics = adversarial.discriminator_loss(
        real_batch=released_real, fake_batch=fake, discr_real_pred=released_real_logits,
        discr_fake_pred=released_fake_logits, mask=hole)
    check(f"R1 {size}²", gp * GP_COEF, metrics["discr_real_gp"])
    check(f"discriminator loss {size}²", ours_loss, released_loss)

    ours_d.zero_grad(), released_d.zero_grad()
    ours_loss.backward()
    released_loss.backward()
    released_parameters = dict(released_d.named_parameters())
    assert set(released_parameters) == {name for name, _ in ours_d.named_parameters()}
    for name, parameter in ours_d.named_parameters():
        check(f"discriminator loss d/d {name} {size}²", parameter.grad, released_parameters[name].grad)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """Our seeded random encoder, where the release's ResNetPL looks for the ADE20k weights."""
    encoder, _ = load_encoder(None)
    root = tmp_path_factory.mktemp("lama-weights")
    path = root / "ade20k" / "ade20k-resnet50dilated-ppm_deepsup" / "encoder_epoch_20.pth"
    path.parent.mkdir(parents=True)
    torch.save(encoder.state_dict(), path)
    return encoder, root


@pytest.mark.parametrize("size", SIZES)
def test_resnet_pl_matches_the_release(release, encoder_file, size):
    encoder, weights_path = encoder_file
    ours = ResNetPL(encoder, W_RESNET_PL)
    released = release.perceptual.ResNetPL(weight=W_RESNET_PL, weights_path=str(weights_path),
                                           arch_encoder="resnet50dilated", segmentation=True)
    assert isinstance(released.impl, release.ade20k.ResnetDilated)
    # The release loads with strict=False: check that every tensor of ours arrived, and nothing else is there.
    released_state = released.impl.state_dict()
    assert set(released_state) == set(encoder.state_dict())
    for key, value in encoder.state_dict().items():
        assert torch.equal(released_state[key], value), key
    assert not released.impl.training and not any(p.requires_grad for p in released.impl.parameters())

    image, hole = batch(size, n=1, seed=6)
    prediction = batch(size, n=1, seed=7)[0] * hole + image * (1 - hole)
    with torch.no_grad():
        normalised = (prediction - ours.mean) / ours.std
        got = ours.impl(normalised)
        want = released.impl(normalised, return_feature_maps=True)
        for index, (got_map, want_map) in enumerate(zip(got, want, strict=True)):
            check(f"ResNetPL {size}² layer{index + 1} features", got_map, want_map)
        check(f"ResNetPL {size}² loss", ours(prediction, image), released(prediction, image))
