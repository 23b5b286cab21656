"""The method registry: every method builds from its section, unknown names are clear errors, and a
method from another package registers itself through the `fgi.methods` entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fgi import methods
from fgi.config import load_params, method_config
from fgi.errors import UserError
from fgi.methods.base import make_objective, parameter_count
from fgi.methods.summary import table
from fgi.methods.vgg import VGG16Features

from conftest import install_plugin

MICRO = Path(__file__).parent / "micro_params.yaml"
LEARNED = [name for name in load_params(MICRO).methods if methods.get(name).learned]


@pytest.fixture
def on_path(monkeypatch):
    """Put a folder on sys.path for one test; the registry and the import system forget it after."""
    def add(folder: Path) -> Path:
        monkeypatch.syspath_prepend(str(folder))
        methods.get.cache_clear()
        return folder
    yield add
    sys.modules.pop("toy_method", None)
    methods.get.cache_clear()


@pytest.mark.parametrize("name", LEARNED)
def test_every_learned_method_builds_from_its_section_and_takes_one_step(name):
    params = load_params(MICRO)
    torch.manual_seed(0)
    objective = make_objective(name, method_config(params, name), params.data.size,
                               vgg=lambda: VGG16Features(("pool1",)))
    size = params.data.size
    image = torch.rand(2, 3, size, size) * 2 - 1
    hole = torch.zeros(2, 1, size, size)
    hole[:, :, 8:20, 8:20] = 1
    before = [p.detach().clone() for p in objective.generator.parameters()]
    terms = objective.step(image, hole, torch.ones_like(hole))
    assert "g/total" in terms and all(torch.isfinite(v) for v in terms.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.generator.parameters()))
    assert (objective.discriminator is None) == (methods.get(name).discriminator is None)


def test_a_classical_method_has_nothing_to_train_and_fills_the_hole():
    params = load_params(MICRO)
    method, cfg = methods.get("biharmonic"), method_config(params, "biharmonic")
    assert not method.learned and method.role == "reference"
    with pytest.raises(UserError, match="'biharmonic' is a classical method: it has nothing to train"):
        make_objective(method, cfg, 32)
    image = torch.zeros(1, 3, 32, 32)
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 10:14, 10:14] = 1
    filled = method.generator(cfg, 32)(image * (1 - hole), hole)
    assert filled.shape == image.shape


def test_unknown_names_are_clear_errors():
    with pytest.raises(UserError, match="unknown method 'unet'; known methods: biharmonic, ce, gc, lama, ours, pconv"):
        methods.get("unet")
    with pytest.raises(UserError, match="methods: 'unet' is not listed"):
        method_config(load_params(MICRO), "unet")


def test_every_built_in_method_has_a_card_and_cites_its_paper():
    cards = {name: methods.get(name).card() for name in methods.names()}
    assert [name for name, card in cards.items() if card["role"] == "proposed"] == ["ours"]
    assert all(card["display"] and card["citation"] for card in cards.values())
    assert cards["pconv"]["published"]["full"][3] == 28.82  # Jam et al., Table 1, PSNR


def test_a_method_from_another_package_registers_through_the_entry_point(tmp_path, on_path):
    folder = on_path(install_plugin(tmp_path / "site"))
    assert "toy" in methods.names()
    toy = methods.get("toy")
    assert (toy.display, toy.learned, toy.discriminator) == ("Toy", True, None)
    assert methods.module_name("toy") == "toy_method"
    assert methods.default_code("toy") == str((folder / "toy_method.py").resolve())
    methods.check_code("toy", str(folder))  # the folder of its code, or the file itself
    methods.check_code("toy", str(folder / "toy_method.py"))
    with pytest.raises(UserError, match="methods.toy: fgi/methods/ours does not hold the method's module"):
        methods.check_code("toy", "fgi/methods/ours", root=Path(__file__).parents[1])
    with pytest.raises(UserError, match="methods.toy: nowhere does not exist"):
        methods.check_code("toy", "nowhere", root=tmp_path)
    objective = make_objective("toy", toy.params(width=0.25, lr_g=1e-3, beta1=0.9, beta2=0.999, w_hole=6.0), 16)
    image, hole = torch.rand(2, 3, 16, 16) * 2 - 1, torch.zeros(2, 1, 16, 16)
    hole[..., 4:9, 4:9] = 1
    assert torch.isfinite(objective.step(image, hole, hole)["g/total"])


def test_a_plugin_under_a_built_in_name_or_without_a_method_is_refused(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "clash", entry="ours = toy_method:METHOD"))
    with pytest.raises(UserError, match="entry point fgi.methods:ours .* has the name of a built-in method"):
        methods.names()


def test_a_plugin_whose_object_is_no_method_is_refused(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "wrong", entry="toy = toy_method:ToyParams"))
    with pytest.raises(UserError, match="method 'toy': toy_method does not define a fgi.methods.Method"):
        methods.get("toy")


def test_architecture_table_counts_the_built_networks():
    rows = table(64, 0.25, str(MICRO)).splitlines()
    assert len(rows) == 2 + len(LEARNED)
    params = load_params(MICRO)
    for name, row in zip(LEARNED, rows[2:]):
        cfg = method_config(params, name)
        cfg = type(cfg)(**{**cfg.__dict__, "width": 0.25})
        assert f"{parameter_count(methods.get(name).generator(cfg, 64)) / 1e6:.2f} M" in row
    assert "PartialConv2d" in rows[3] and "spectral norm" in rows[4]
