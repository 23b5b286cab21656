"""The model registry and the architecture table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fgi.config import load_params
from fgi.errors import UserError
from fgi.models import LEARNED, make_classical, make_discriminator, make_generator, parameter_count
from fgi.models.summary import table
from fgi.models.vgg import VGG16Features
from fgi.objectives import make_objective

MICRO = Path(__file__).parent / "micro_params.yaml"


@pytest.mark.parametrize("name", LEARNED)
def test_every_learned_model_builds_from_its_section_and_takes_one_step(name):
    params = load_params(MICRO)
    cfg = getattr(params.models, name)
    torch.manual_seed(0)
    objective = make_objective(name, cfg, params.data.size, vgg=lambda: VGG16Features(("pool1",)))
    size = params.data.size
    image = torch.rand(2, 3, size, size) * 2 - 1
    hole = torch.zeros(2, 1, size, size)
    hole[:, :, 8:20, 8:20] = 1
    before = [p.detach().clone() for p in objective.generator.parameters()]
    terms = objective.step(image, hole, torch.ones_like(hole))
    assert "g/total" in terms and all(torch.isfinite(v) for v in terms.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.generator.parameters()))
    assert (objective.discriminator is None) == (name == "pconv")


def test_unknown_names_are_clear_errors():
    params = load_params(MICRO)
    with pytest.raises(UserError, match="unknown model 'unet'; known learned models: ours, ce, pconv, gc"):
        make_generator("unet", params.models.ours, 32)
    with pytest.raises(UserError, match="unknown model 'biharmonic'"):
        make_discriminator("biharmonic", params.models.biharmonic, 32)
    assert make_classical("biharmonic", params.models.biharmonic).split_into_regions is True


def test_architecture_table_counts_the_built_networks():
    rows = table(64, 0.25, str(MICRO)).splitlines()
    assert len(rows) == 2 + len(LEARNED)
    params = load_params(MICRO)
    for name, row in zip(LEARNED, rows[2:]):
        cfg = type(getattr(params.models, name))(**{**getattr(params.models, name).__dict__, "width": 0.25})
        assert f"{parameter_count(make_generator(name, cfg, 64)) / 1e6:.2f} M" in row
    assert "PartialConv2d" in rows[4] and "spectral norm" in rows[5]
