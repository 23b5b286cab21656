"""Architecture table: parameter counts and a layer summary of every learned method's networks.

    python -m fgi.methods.summary                              # print it (256², width 1.0, paper profile)
    python -m fgi.methods.summary --write docs/fidelity.md     # rewrite the page's copy in place

docs/fidelity.md carries the table between `<!-- summary:begin -->` and `<!-- summary:end -->`;
`--write` replaces exactly that block (atomically) and nothing else, and
tests/test_summary_doc.py fails while the page's copy differs from what this prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections import Counter
from pathlib import Path

from torch import nn

from fgi import methods, records
from fgi.config import load_params, method_config
from fgi.errors import UserError, exits_cleanly
from fgi.files import write_text_atomic
from fgi.methods.base import parameter_count

LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d,
               nn.LayerNorm)
# What the page documents: the paper's size and width under its profile.
SIZE, WIDTH, PARAMS = 256, 1.0, "configs/paper.yaml"
PAGE = "docs/fidelity.md"
BEGIN, END = "<!-- summary:begin -->", "<!-- summary:end -->"
COMMAND = f"python -m fgi.methods.summary --write {PAGE}"


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


def table(size: int, width: float, params_file: str = PARAMS) -> str:
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


# ----------------------------------------------------------------------------- the page's copy


def _span(text: str, where: str) -> tuple[int, int]:
    """Start and end of the text strictly between the markers (each once, on its own line)."""
    lines = text.split("\n")
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise UserError(f"{where}: wants one line `{BEGIN}` followed by one line `{END}` around the "
                        f"architecture table, found {len(begins)} and {len(ends)}; put the markers back")
    start = sum(len(line) + 1 for line in lines[:begins[0] + 1])
    end = sum(len(line) + 1 for line in lines[:ends[0]])
    return start, end


def block(text: str, where: str = PAGE) -> str:
    """The table between the markers, without the newline before the end marker."""
    start, end = _span(text, where)
    return text[start:end].removesuffix("\n")


def replace_block(text: str, table_text: str, where: str = PAGE) -> str:
    """`text` with the lines between the markers replaced by `table_text`; all else byte for byte."""
    start, end = _span(text, where)
    return text[:start] + table_text.rstrip("\n") + "\n" + text[end:]


def difference(documented: str, generated: str) -> str:
    """A unified diff from the page's block to the generated table; empty when they are equal."""
    return "\n".join(difflib.unified_diff(documented.splitlines(), generated.splitlines(),
                                          f"{PAGE} (summary block)", "python -m fgi.methods.summary",
                                          lineterm=""))


def write(path: str | Path, table_text: str) -> bool:
    """Rewrite the block of `path` to `table_text`; False (and no write) when it already is."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; pass the page that carries the table, e.g. --write {PAGE}")
    text = path.read_text(encoding="utf-8")
    new = replace_block(text, table_text, str(path))
    if new == text:
        return False
    write_text_atomic(path, new)
    return True


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--width", type=float, default=WIDTH)
    parser.add_argument("--params", default=PARAMS, help="profile whose model sections are used")
    parser.add_argument("--write", metavar="PAGE",
                        help=f"replace the table between {BEGIN} and {END} of PAGE (e.g. {PAGE}) instead of printing")
    args = parser.parse_args(argv)
    text = table(args.size, args.width, args.params)
    if args.write is None:
        print(text)
    else:
        print(f"{args.write}: {'table rewritten' if write(args.write, text) else 'table already current'}")
        if Path(args.write).resolve() == Path(PAGE).resolve() and (args.size, args.width, args.params) == (SIZE, WIDTH, PARAMS):
            records.stamp(Path("."), "summary", [f"{PAGE}{records.SECTION}summary"], COMMAND,
                          {"modules": [__name__ if __name__ != "__main__" else "fgi.methods.summary"],
                           "methods": True, "paths": [PARAMS]}, params_file=PARAMS)


if __name__ == "__main__":
    main()
