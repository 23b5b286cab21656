"""The params schema machinery: a dataclass per section, each field's range or choices in its metadata.

`spec(...)` declares a required field; `build_section(raw, cls, path, problems)` checks a
mapping against dataclass `cls`, appending one line per problem (the key path and what is
allowed) instead of stopping at the first. `fgi.config` declares the sections; a method's
module declares its own (`models.<name>`) with the same `spec`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any, Literal

from fgi.errors import UserError


def spec(*, ge=None, gt=None, le=None, lt=None, choices=None) -> Any:
    """A required field with its allowed range or choices (for list items too)."""
    return field(metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices})


class ParamsError(UserError):
    """Every problem of a params file, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _type_name(value: Any) -> str:
    return type(value).__name__


def _range_text(meta: dict) -> str:
    parts = []
    if meta.get("gt") is not None:
        parts.append(f"> {meta['gt']}")
    if meta.get("ge") is not None:
        parts.append(f">= {meta['ge']}")
    if meta.get("le") is not None:
        parts.append(f"<= {meta['le']}")
    if meta.get("lt") is not None:
        parts.append(f"< {meta['lt']}")
    return " and ".join(parts)


def _check_range(value: float, meta: dict, path: str, problems: list[str]) -> None:
    low_ok = (meta.get("ge") is None or value >= meta["ge"]) and (
        meta.get("gt") is None or value > meta["gt"])
    high_ok = (meta.get("le") is None or value <= meta["le"]) and (
        meta.get("lt") is None or value < meta["lt"])
    if not (low_ok and high_ok):
        problems.append(f"{path}: {value!r} is out of range; allowed: {_range_text(meta)}")


def _scalar(value: Any, tp: Any, meta: dict, path: str, problems: list[str]) -> Any:
    """Check one scalar against its type and metadata; return it (ints become floats)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and set(typing.get_args(tp)) == {int, float}:
        # `int | float`: a count or a fraction (split.train), so the kind the user wrote is kept.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a whole number or a fraction, got {value!r} ({_type_name(value)})")
            return value
        _check_range(value, meta, path, problems)
        return value
    if typing.get_origin(tp) is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append(f"{path}: {value!r} is not allowed; choose one of: {', '.join(allowed)}")
        return value
    # bool is an int in Python: never let `true` pass as a number or 1 as a flag.
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {value!r} ({_type_name(value)})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r} ({_type_name(value)})")
            return value
        _check_range(value, meta, path, problems)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a number, got {value!r} ({_type_name(value)})")
            return value
        _check_range(float(value), meta, path, problems)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r} ({_type_name(value)})")
            return value
        choices = meta.get("choices")
        if choices and value not in choices:
            problems.append(f"{path}: {value!r} is not allowed; choose from: {', '.join(choices)}")
        return value
    raise TypeError(f"unsupported params type {tp!r} at {path}")  # a bug in this module


def _convert(value: Any, tp: Any, meta: dict, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_section(value, tp, path, problems)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r} ({_type_name(value)})")
            return value
        return [_scalar(item, item_tp, meta, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if origin is dict:
        key_tp, item_tp = typing.get_args(tp)
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {value!r} ({_type_name(value)})")
            return value
        if item_tp is dict:  # method sections: checked against their method's dataclass (method_section)
            return {_scalar(k, key_tp, {}, f"{path} key", problems): v for k, v in value.items()}
        return {_scalar(k, key_tp, {}, f"{path} key", problems):
                _convert(v, item_tp, meta, f"{path}.{k}", problems) for k, v in value.items()}
    return _scalar(value, tp, meta, path, problems)


def build_section(raw: Any, cls: type, path: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from the mapping `raw` found at `path`."""
    where = path or "the top level"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping of keys, got {raw!r} ({_type_name(raw)})")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in raw:
        if key not in fields:
            problems.append(f"{prefix}{key}: unknown key; allowed keys in {where}: {', '.join(fields)}")
    values = {}
    for name, spec in fields.items():
        key_path = f"{prefix}{name}"
        if name not in raw:
            kind = "section" if dataclasses.is_dataclass(hints[name]) else "key"
            problems.append(f"{key_path}: missing {kind}; add it (configs/paper.yaml shows every key)")
            continue
        values[name] = _convert(raw[name], hints[name], dict(spec.metadata), key_path, problems)
    if len(values) != len(fields) or any(v is None for v in values.values()):
        return None
    try:
        return cls(**values)
    except TypeError:
        return None
