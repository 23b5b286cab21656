"""Architecture table: parameter counts and a layer summary of every network.

    python -m fgi.models.summary --size 256 --width 1.0

prints the Markdown table the README carries (at the paper's 256², width 1.0).
"""

from __future__ import annotations

import argparse
from collections import Counter

from torch import nn

from fgi.config import load_params
from fgi.models import LEARNED, make_discriminator, make_generator, parameter_count

PAPERS = {"ours": "Jam et al. (this paper)", "ce": "Pathak et al. 2016", "pconv": "Liu et al. 2018",
          "gc": "Yu et al. 2019"}


LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm)


def _kind(layer: nn.Module) -> str:
    name = type(layer).__name__
    # torch renames a layer's class when a parametrisation (spectral norm) is registered on it
    return f"{name.removeprefix('Parametrized')} (spectral norm)" if name.startswith("Parametrized") else name


def layer_summary(module: nn.Module | None) -> str:
    """`22 Conv2d, 6 ConvTranspose2d, …`: the weight layers by type (subclasses by their own name)."""
    if module is None:
        return "—"
    kinds = Counter(_kind(m) for m in module.modules() if isinstance(m, LAYER_TYPES))
    return ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())


def millions(module: nn.Module | None) -> str:
    return "—" if module is None else f"{parameter_count(module) / 1e6:.2f} M"


def table(size: int, width: float, params_file: str = "configs/paper.yaml") -> str:
    params = load_params(params_file)
    lines = ["| model | paper | generator params | generator layers | discriminator params | discriminator layers |",
             "| --- | --- | ---: | --- | ---: | --- |"]
    for name in LEARNED:
        cfg = getattr(params.models, name)
        cfg = type(cfg)(**{**cfg.__dict__, "width": width})
        generator = make_generator(name, cfg, size)
        discriminator = make_discriminator(name, cfg, size)
        lines.append(f"| {name} | {PAPERS[name]} | {millions(generator)} | {layer_summary(generator)} | "
                     f"{millions(discriminator)} | {layer_summary(discriminator)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--params", default="configs/paper.yaml", help="profile whose model sections are used")
    args = parser.parse_args(argv)
    print(table(args.size, args.width, args.params))


if __name__ == "__main__":
    main()
