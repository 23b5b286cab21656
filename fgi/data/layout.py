"""The prepared data's small conventions, shared by the data stages, the datasets and the evaluation.

Kept apart from the stages that write the data (prepare, holes), so that what
only reads it (training, predict, evaluate) imports no data source or renderer.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from fgi import files
from fgi.errors import UserError


def worker_count(workers: int) -> int:
    """`0` means every core."""
    return workers or os.cpu_count() or 1


def read_ids(path: Path) -> list[str]:
    """The ids of a split file (`train.txt` / `test.txt`), as 5-digit strings."""
    if not path.is_file():
        raise UserError(f"{path}: split file not found; run `dvc repro prepare`")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro holes`")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text_atomic(path, text.getvalue())


def foreground_available(foreground: Path) -> bool:
    """Whether the foreground stage wrote a mask per face. A folder source without foreground masks
    has none: its `summary.json` says `"available": false`, and the foreground region is unknown."""
    summary = Path(foreground) / "summary.json"
    return not summary.is_file() or json.loads(summary.read_text()).get("available", True)
