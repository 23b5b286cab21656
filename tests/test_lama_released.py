"""Importing LaMa's released CelebA-HQ checkpoint (fgi/methods/lama/released.py).

Always: a random LamaGenerator written in the release's layout (tests/released_fixtures.py) comes
back with the same weights and the same outputs; a truncated file, a config of other settings and a
checkpoint of another architecture are UserErrors naming what is wrong; nothing the checkpoint names
besides tensors is run; the split is 28,000 + 2,000 of CelebA-HQ's 30,000.

With the release (FGI_LAMA_RELEASE, as tests/test_lama_release.py): the release's own `make_generator`
builds its generator from its ffc_resnet_075 config (shrunk: ngf 16, 2 residual blocks), its
state_dict is saved as the release saves it, and our import computes bit for bit what the release's
generator computes (the same input, eval mode, float32 on the CPU; the same operations on the same
kernels, as tests/test_lama_release.py measured, so no tolerance is needed).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from released_fixtures import generator_section, lama_cfg, release_config, write_lama_release
from test_lama_release import batch, is_release_module, randomise_batchnorm, release_root

from fgi.errors import UserError
from fgi.methods.lama import METHOD
from fgi.methods.lama.ffc import LamaGenerator
from fgi.methods.lama.released import HELD_OUT, held_out, load

SIZE = 32


def random_generator(cfg, size: int = SIZE, seed: int = 0) -> LamaGenerator:
    """Random weights, BatchNorm affine parameters and running statistics included."""
    torch.manual_seed(seed)
    generator = LamaGenerator(size, cfg.width, cfg.n_blocks, cfg.ratio_g)
    randomise_statistics(generator, seed + 1)
    return generator.eval()


def randomise_statistics(module: torch.nn.Module, seed: int) -> None:
    """BatchNorm affine parameters and running statistics away from their initial values."""
    randomise_batchnorm(module, seed)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)


def masked_batch(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    image01, hole = batch(size, n=2, seed=3)
    return (image01 * 2 - 1) * (1 - hole), hole


@pytest.fixture
def release_folder(tmp_path):
    cfg = lama_cfg()
    generator = random_generator(cfg)
    return write_lama_release(tmp_path / "lama-fourier", generator, cfg), generator, cfg


@pytest.mark.parametrize("given", ["folder", "checkpoint"])
def test_import_gives_the_same_generator(release_folder, given):
    folder, generator, cfg = release_folder
    imported = load(folder if given == "folder" else folder / "models" / "best.ckpt", cfg, SIZE)
    assert not imported.generator.training
    ours, want = imported.generator.state_dict(), generator.state_dict()
    assert list(ours) == list(want)
    assert all(torch.equal(ours[key], want[key]) for key in want)
    with torch.no_grad():
        assert torch.equal(imported.generator(*masked_batch()), generator(*masked_batch()))
    notes = " ".join(imported.notes)
    for prefix in ("discriminator (3)", "loss_resnet_pl (1)", "val_evaluator (1)"):
        assert prefix in notes
    assert "released_fixtures.ModelCheckpoint" in notes   # the class key of callbacks, stood in for
    assert imported.format == "PyTorch Lightning checkpoint (advimman/lama)"


def test_the_method_declares_the_importer(release_folder):
    folder, generator, cfg = release_folder
    imported = METHOD.importer.load(folder, cfg, SIZE)
    assert imported.training_split.startswith("advimman/lama's CelebA-HQ training split")


def test_checkpoint_beside_config_one_folder_up(tmp_path):
    cfg = lama_cfg()
    folder = write_lama_release(tmp_path / "release", random_generator(cfg), cfg, extra_prefixes=False)
    moved = folder / "best.ckpt"
    (folder / "models" / "best.ckpt").rename(moved)
    assert "0 tensors" in load(moved, cfg, SIZE).notes[0]


def test_truncated_checkpoint_is_named(release_folder):
    folder, _, cfg = release_folder
    checkpoint = folder / "models" / "best.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    with pytest.raises(UserError, match=r"best\.ckpt: not a readable checkpoint .*download it again"):
        load(folder, cfg, SIZE)


def test_missing_files_are_named(release_folder):
    folder, _, cfg = release_folder
    with pytest.raises(UserError, match=r"elsewhere: no such file or folder"):
        load(folder.parent / "elsewhere", cfg, SIZE)
    (folder / "config.yaml").unlink()
    with pytest.raises(UserError, match=r"lama-fourier/config\.yaml: the release's config\.yaml is missing"):
        load(folder, cfg, SIZE)
    (folder / "models" / "best.ckpt").unlink()
    with pytest.raises(UserError, match=r"lama-fourier: no \.ckpt file there"):
        load(folder, cfg, SIZE)


def test_the_archive_folder_above_is_searched(tmp_path):
    """The weights stage extracts lama-celeba-hq.zip whole: lama-fourier/ beside lama-regular/."""
    cfg = lama_cfg()
    for name in ("lama-fourier", "lama-regular"):
        write_lama_release(tmp_path / "lama-celeba-hq" / name, random_generator(cfg), cfg)
    (tmp_path / "lama-celeba-hq" / "lama-fourier" / "models" / "last.ckpt").write_bytes(b"")
    assert load(tmp_path, cfg, SIZE).generator is not None
    (tmp_path / "lama-celeba-hq" / "lama-fourier").rename(tmp_path / "lama-celeba-hq" / "other")
    with pytest.raises(UserError, match=r"lama-celeba-hq/lama-regular/models/best\.ckpt, lama-celeba-hq/other/"):
        load(tmp_path, cfg, SIZE)


def test_config_of_other_settings_is_named(release_folder):
    folder, _, cfg = release_folder
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["generator"]["n_blocks"] = 18
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match=r"generator\.n_blocks is 18, models\.lama\.n_blocks is 1"):
        load(folder, cfg, SIZE)
    config["generator"] |= {"n_blocks": 1, "add_out_act": "tanh"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match=r"generator\.add_out_act is 'tanh', our LamaGenerator builds 'sigmoid'"):
        load(folder, cfg, SIZE)
    with pytest.raises(UserError, match=r"generator\.ngf is 16, models\.lama\.width 0\.5 gives 32"):
        load(folder, lama_cfg(width=0.5), SIZE)


def test_checkpoint_of_another_architecture_is_named(tmp_path):
    cfg = lama_cfg(n_blocks=1)
    other = random_generator(lama_cfg(n_blocks=2))   # one residual block more than cfg builds
    folder = write_lama_release(tmp_path / "other", other, cfg)   # config.yaml says cfg's
    with pytest.raises(UserError, match=r"another architecture \(its generator has ngf 16, 2 FFC residual blocks, "
                                        r"models\.lama builds ngf 16, 1 FFC residual blocks\): "
                                        r"generator\.model\.6\.conv1\.ffc\.convl2l\.weight \(the concatenation\)"):
        load(folder, cfg, SIZE)


def test_nothing_the_checkpoint_names_is_run(tmp_path):
    """OmegaConf's DictConfig, as the release's hyper_parameters, and a reduce that would write a file."""
    omegaconf = pytest.importorskip("omegaconf")
    marker = tmp_path / "ran"

    class Tripwire:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    cfg = lama_cfg()
    hyper_parameters = omegaconf.OmegaConf.create(release_config(generator_section(cfg)))
    folder = write_lama_release(tmp_path / "release", random_generator(cfg), cfg,
                                hyper_parameters={"config": hyper_parameters, "trap": Tripwire()})
    imported = load(folder, cfg, SIZE)
    assert not marker.exists()
    assert "omegaconf.dictconfig.DictConfig" in imported.notes[1] and "pathlib" in imported.notes[1]


def test_training_split(release_folder):
    folder, _, cfg = release_folder
    imported = load(folder, cfg, SIZE)
    assert HELD_OUT.read_text().splitlines()[0].startswith("# advimman/lama fetch_data/val_shuffled.flist")
    assert len(held_out()) == 2000 and len(imported.training_images) == 28000
    assert not imported.training_images & held_out()
    assert imported.training_images | held_out() == set(range(30000))
    assert "train_shuffled.flist, 28,000 faces" in imported.training_split


# -- against the release ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def release_modules():
    """The release's `saicinpainting.training.modules` (make_generator), imported as test_lama_release does."""
    root = release_root()
    stubs = {name: types.ModuleType(name) for name in
             ("pytorch_lightning", "kornia", "kornia.geometry", "kornia.geometry.transform")}
    stubs["pytorch_lightning"].seed_everything = None
    stubs["kornia.geometry.transform"].rotate = None
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        for name in [name for name in sys.modules if is_release_module(name)]:
            patch.delitem(sys.modules, name)
        for name, stub in stubs.items():
            patch.setitem(sys.modules, name, stub)
        imported = set(sys.modules)
        try:
            modules = importlib.import_module("saicinpainting.training.modules")
        finally:
            for name in [name for name in sys.modules if is_release_module(name) and name not in imported]:
                del sys.modules[name]
    yield root, modules


def test_release_split_is_the_committed_one(release_modules):
    root, _ = release_modules
    names = lambda flist: {int(line.removesuffix(".jpg")) for line in (root / "fetch_data" / flist).read_text().split()}
    assert names("val_shuffled.flist") == held_out()
    assert names("train_shuffled.flist") == frozenset(range(30000)) - held_out()


@pytest.mark.parametrize("size", [32, 64])
def test_release_generator_imports_bit_for_bit(release_modules, tmp_path, size):
    root, modules = release_modules
    omegaconf = pytest.importorskip("omegaconf")   # resolves the release's ${...} references as the release does
    raw = yaml.safe_load((root / "configs/training/generator/ffc_resnet_075.yaml").read_text())
    raw |= {"ngf": 16, "n_blocks": 2}   # width 0.25, two residual blocks: small enough for a test
    resolved = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.create({"generator": raw}), resolve=True)
    torch.manual_seed(size)
    released = modules.make_generator(None, **resolved["generator"])
    randomise_statistics(released, size)
    holder = types.SimpleNamespace(net=released)   # write_lama_release reads generator.net
    cfg = lama_cfg(width=0.25, n_blocks=2, ratio_g=0.75)
    folder = write_lama_release(tmp_path / "lama-fourier", holder, cfg, config=release_config(raw))
    imported = load(folder, cfg, size)
    masked, hole = masked_batch(size)
    released.eval()
    with torch.no_grad():
        image01 = (masked + 1) / 2 * (1 - hole)   # what LamaGenerator feeds its network
        want = released(torch.cat((image01, hole), 1)) * 2 - 1
        got = imported.generator(masked, hole)
    assert want.std() > 0.01   # not a constant output
    assert torch.equal(got, want)
