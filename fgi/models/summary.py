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


def layer_summary(module: nn.Module | None) -> str:
    """`12 Conv2d, 5 ConvTranspose2d, …`: the leaf layers with parameters, by type."""
    if module is None:
        return "none"
    kinds = Counter(type(m).__name__ for m in module.modules()
                    if not list(m.children()) and any(True for _ in m.parameters(recurse=False)))
    return ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())


def table(size: int, width: float, params_file: str = "configs/paper.yaml") -> str:
    params = load_params(params_file)
    lines = ["| model | paper | generator params | generator layers | discriminator params | discriminator layers |",
             "| --- | --- | ---: | --- | ---: | --- |"]
    for name in LEARNED:
        cfg = getattr(params.models, name)
        cfg = type(cfg)(**{**cfg.__dict__, "width": width})
        generator = make_generator(name, cfg, size)
        discriminator = make_discriminator(name, cfg, size)
        lines.append(f"| {name} | {PAPERS[name]} | {parameter_count(generator) / 1e6:.2f} M | "
                     f"{layer_summary(generator)} | "
                     f"{parameter_count(discriminator) / 1e6:.2f} M | {layer_summary(discriminator)} |")
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
