"""Errors a user can cause and fix: bad params, missing or corrupt files.

A `UserError` carries a one-line message naming the file or key and the fix.
Entry points (`fgi` and the stage scripts) print it without a traceback and
exit with code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """Something the user can fix; the message says what and how."""


def exits_cleanly(main: F) -> F:
    """Wrap an entry point so a `UserError` prints one line and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]
