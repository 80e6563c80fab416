"""Shared fixtures: real videos made in a second (ffmpeg lavfi or the project's procedural genres)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from vj.media import ffmpeg_exe  # noqa: E402
from vj.procedural import write_genre_videos  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def lavfi_video(path: Path, src: str = "testsrc2", size: str = "160x90", rate: int = 30, seconds: float = 1.0,
                extra: tuple[str, ...] = (), pre: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(*pre, "-f", "lavfi", "-i", f"{src}=size={size}:rate={rate}", "-t", str(seconds), *extra, str(path))
    return path


@pytest.fixture(scope="session")
def genre_videos(tmp_path_factory) -> dict[str, Path]:
    """Two short procedural loops per genre, one folder each (session-wide, made once)."""
    root = tmp_path_factory.mktemp("genres")
    out = {}
    for genre in ("plasma", "tunnel", "particles", "typography"):
        write_genre_videos(root / genre, genre, count=2, seconds=1.5, fps=20, size=(128, 72))
        out[genre] = root / genre
    return out


def run_vj(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None,
           check: bool = False) -> subprocess.CompletedProcess:
    """Run the real ``vj`` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vj", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"vj {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
