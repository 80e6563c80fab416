"""Commented defaults, then a TOML file, then ``--set key=value``: one loader for every settings object.

Settings are frozen dataclasses whose field comments are the documentation. An unknown key is an error
that names the key and the file it came from; values are coerced to the field's type.
"""
from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad setting; the message names the file, key and value."""


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or value == "none":
            return None
        hint = args[0]
        origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        if origin in (tuple, list):
            items = value.split(",") if isinstance(value, str) else list(value)
            (inner, *_) = typing.get_args(hint) or (str,)
            return tuple(_coerce(v, inner, where, key) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} = {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None
    return value


def build(cls: type[T], values: Mapping[str, Any], where: str = "settings", base: T | None = None) -> T:
    """Make ``cls`` from ``values`` (over ``base`` or the defaults), rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")
    coerced = {k: _coerce(v, hints[k], where, k) for k, v in values.items()}
    base = base if base is not None else cls()
    return dataclasses.replace(base, **coerced)


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` for ``--set`` flags."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def describe(cls: type) -> str:
    """One line per field: name, default and the comment above it in the source (for --help)."""
    import inspect

    src = inspect.getsource(cls).splitlines()
    notes: dict[str, str] = {}
    for line in src:
        stripped = line.strip()
        if ":" in stripped and "#" in stripped and not stripped.startswith("#"):
            name = stripped.split(":", 1)[0].strip()
            notes[name] = stripped.split("#", 1)[1].strip()
    return "\n".join(f"  {f.name} = {f.default!r}  {notes.get(f.name, '')}" for f in dataclasses.fields(cls))
