"""Progress bars: tqdm on a terminal, silent in CI logs and pipes (docs/design.md §8)."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(iterable=None, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)`, disabled unless stderr is a terminal and `CI` is unset."""
    kwargs.setdefault("disable", not enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
