"""Shared fixtures: real videos made in a second (ffmpeg lavfi or the project's procedural genres)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from vj.core.media import VideoWriter, ffmpeg_exe  # noqa: E402
from vj.procedural import write_genre_videos  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true", help="run the tests in reverse order: order must not matter")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()


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


# ---------------------------------------------------------------- media and a small show, shared by the tests
def solid_video(path: Path, color, seconds=1.0, fps=10, size=(64, 36)) -> Path:
    with VideoWriter(path, fps, size) as w:
        for i in range(int(seconds * fps)):
            f = np.zeros((size[1], size[0], 3), np.uint8)
            f[:] = color
            f[: 1 + i % size[1]] //= 2  # a moving band: frames differ
            w.write(f)
    return path


def make_generator_ckpt(path: Path, seed: int) -> Path:
    """A real (untrained) generator checkpoint in the run format."""
    import torch

    from gan.config import TrainConfig
    from gan.model import Generator, init_weights

    torch.manual_seed(seed)
    g = Generator(64, 16, 8)
    g.apply(init_weights)
    cfg = TrainConfig(size=64, nz=16, ngf=8).to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"G": g.state_dict(), "cfg": cfg, "fixed_noise": torch.randn(8, 16)}, path)
    return path


def click_track(path: Path, seconds: float = 3.0, every: float = 0.5, rate: int = 22050) -> Path:
    """A WAV with a short loud click every ``every`` seconds over quiet noise."""
    import wave

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.003, int(seconds * rate))
    for k in range(int(seconds / every)):
        a = int((k * every + 0.25) * rate)
        x[a:a + 400] += np.sin(np.arange(400) * 0.3) * 0.8 * np.exp(-np.arange(400) / 120)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    d = tmp_path_factory.mktemp("show")
    solid_video(d / "red.mp4", (220, 30, 30))
    solid_video(d / "blue.mp4", (30, 30, 220))
    make_generator_ckpt(d / "g_red.pt", 1)
    make_generator_ckpt(d / "g_blue.pt", 2)
    scene = d / "scene.toml"
    scene.write_text(textwrap.dedent("""
        [output]
        size = "96x64"
        fps = 10
        [tempo]
        bpm = 120
        [genre]
        initial = "red"
        fade = 0.5
        [genres.red]
        clips = ["red.mp4"]
        generator = "g_red.pt"
        [genres.blue]
        clips = ["blue.mp4"]
        generator = "g_blue.pt"
        [[layers]]
        name = "clips"
        source = "clip"
        [[layers]]
        name = "gan"
        source = "generator"
        blend = "add"
        opacity = 0.0
        [[effects]]
        type = "invert"
        id = "inv"
        amount = 0
        [keys]
        "i" = "fx.inv.amount=1"
        "b" = "genre blue"
    """))
    cues = d / "cues.toml"
    cues.write_text(textwrap.dedent("""
        [[cue]]
        at = 1.0
        genre = "blue"
        [[cue]]
        beat = 4
        name = "invert"
        set = { "fx.inv.amount" = 1 }
    """))
    return d, scene, cues


