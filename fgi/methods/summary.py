"""Architecture table: parameter counts and a layer summary of every learned method's networks.

    python -m fgi.methods.summary --size 256 --width 1.0

prints the Markdown table docs/fidelity.md carries (at the paper's 256², width 1.0).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

from torch import nn

from fgi import methods
from fgi.config import load_params, method_config
from fgi.methods.base import parameter_count

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
    for name in params.methods:
        method = methods.get(name)
        if not method.learned:
            continue
        cfg = dataclasses.replace(method_config(params, name), width=width)
        generator = method.generator(cfg, size)
        discriminator = method.discriminator(cfg, size) if method.discriminator else None
        lines.append(f"| {name} | {method.citation} | {millions(generator)} | {layer_summary(generator)} | "
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
