"""Commented defaults, then a TOML file, then ``--set key=value``: one loader for every settings object.

Settings are frozen dataclasses whose field comments are the documentation. An unknown key is an error
that names the key and the file it came from; values are coerced to the field's type.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parents[2]   # the checkout: presets/ lives beside the packages
PRESETS = PROJECT / "presets"                   # scenes/, genres/, cues/, mappings/


class ConfigError(ValueError):
    """A bad setting; the message names the file, key and value."""


MAX_TOML_BYTES = 4 << 20  # a scene, preset, cue list or mapping is a few KB; anything this big is a mistake


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict, or one ConfigError line naming the file and what is wrong with it (missing,
    a folder, too big, not UTF-8 text, not TOML, nested too deep)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a TOML file")
        if path.stat().st_size > MAX_TOML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes is too big for a settings file")
        text = path.read_bytes().decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file, or saved as UTF-16?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a settings file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def check_keys(table: Mapping[str, Any], allowed: set[str] | Iterable[str], where: str) -> None:
    """Raise one line naming the first unknown key of ``table`` and the known ones."""
    allowed = set(allowed)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def number(value: Any, where: str, lo: float, hi: float) -> float:
    """``value`` as a float within [lo, hi], or one ConfigError line saying what was expected."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where} = {value!r}: expected a number from {lo:g} to {hi:g}")
    return float(value)


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
            if hint is not str and isinstance(value, bool):
                raise ValueError
            out = hint(value)
            if hint is float and not math.isfinite(out):
                raise ValueError
            return out
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
    check_keys(values, {f.name for f in dataclasses.fields(cls)}, where)
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
    last, column = "", -1  # the field whose comment a comment-only line at the same column continues
    for line in src:
        stripped = line.strip()
        if ":" in stripped and "#" in stripped and not stripped.startswith("#"):
            last, column = stripped.split(":", 1)[0].strip(), line.index("#")
            notes[last] = stripped.split("#", 1)[1].strip()
        elif stripped.startswith("#") and last and line.index("#") == column:
            notes[last] += " " + stripped[1:].strip()
        else:
            last = ""
    return "\n".join(f"  {f.name} = {f.default!r}  {notes.get(f.name, '')}" for f in dataclasses.fields(cls))


def arg_number(lo: float, hi: float, kind: type = float, what: str = "a number"):
    """An argparse ``type`` that accepts a finite number of ``kind`` within [lo, hi], and refuses anything
    else (nan, inf, 1e6 fps, a negative duration) in one line."""
    import argparse

    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if kind is int:
            if not value.is_integer():
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
            value = int(value)
        if not lo <= value <= hi:
            shown = (lambda v: str(int(v))) if kind is int else (lambda v: f"{v:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range ({shown(lo)} to {shown(hi)})")
        return value
    parse.__name__ = what  # argparse names the type in its message
    return parse
