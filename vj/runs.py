"""The one run-directory layout shared by the pipelines (writers) and the engine (reader).

    runs/gan/<genre>/     config.toml  ckpt.pt  log.csv  loss.png  samples/  clips/  frames/
    runs/mosaic/<name>/   settings.json  atlas.npy  index.csv  features.npy  coords.npy  grid.csv ...
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_RUNS = Path(os.environ.get("VJ_RUNS", "runs"))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must be letters, digits, '_', '-' or '.', at most 64 characters")
    return name


def gan_dir(runs: str | Path, genre: str) -> Path:
    return Path(runs) / "gan" / check_name(genre, "genre")


def mosaic_dir(runs: str | Path, name: str) -> Path:
    return Path(runs) / "mosaic" / check_name(name, "mosaic name")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
