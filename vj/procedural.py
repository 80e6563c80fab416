"""The project's own procedural VJ loops: the embedded demo's genres and the tests' real videos.

Each genre is a pure function ``(t, width, height, rng_seed) -> (H, W, 3) uint8`` so a loop is the
same on every machine; ``write_genre_videos`` turns them into short mp4 loops through the media module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from vj.core.media import VideoWriter


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return (x - width / 2) / height, (y - height / 2) / height  # centred, height-normalised


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def plasma(t: float, width: int, height: int, seed: int = 0) -> np.ndarray:
    x, y = _grid(width, height)
    k = 1 + seed % 3
    v = (np.sin(x * 6 * k + t * 1.7) + np.sin(y * 5 + t * 1.3) + np.sin((x + y) * 4 + t)
         + np.sin(np.hypot(x * 5 + np.sin(t * 0.5) * 2, y * 5) - t * 2))
    phase = v * np.pi / 2
    return _to_u8(np.stack([0.5 + 0.5 * np.sin(phase), 0.5 + 0.5 * np.sin(phase + 2.1 + seed),
                            0.5 + 0.5 * np.sin(phase + 4.2)], -1))


def tunnel(t: float, width: int, height: int, seed: int = 0) -> np.ndarray:
    x, y = _grid(width, height)
    r = np.hypot(x, y) + 1e-3
    a = np.arctan2(y, x)
    depth = 0.3 / r + t * (1.5 + 0.3 * seed)
    rings = 0.5 + 0.5 * np.sign(np.sin(depth * 6)) * np.sign(np.sin(a * (4 + seed) + t))
    fog = np.clip(r * 2.2, 0, 1)
    hue = 0.5 + 0.5 * np.sin(depth + np.array([0.0, 2.0, 4.0])[:, None, None])
    return _to_u8((rings * fog)[None] * hue).transpose(1, 2, 0).copy()


def particles(t: float, width: int, height: int, seed: int = 0, n: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pos0 = rng.random((n, 2))
    vel = (rng.random((n, 2)) - 0.5) * 0.4
    color = rng.random((n, 3)) * 0.7 + 0.3
    pos = (pos0 + vel * t + 0.05 * np.sin(t * 2 + pos0[:, ::-1] * 9)) % 1.0
    img = np.zeros((height, width, 3), np.float32)
    px = (pos[:, 0] * (width - 1)).astype(int)
    py = (pos[:, 1] * (height - 1)).astype(int)
    np.add.at(img, (py, px), color)
    import cv2

    glow = cv2.GaussianBlur(img, (0, 0), sigmaX=max(1.0, height / 60)) * 12 + cv2.GaussianBlur(img, (0, 0), 0.7) * 2
    return _to_u8(glow)


_WORDS = ["REFRAME", "VJ", "LOOP", "BASS", "NOISE", "GLITCH", "DREAM", "LIGHT", "WAVE", "ECHO"]


def typography(t: float, width: int, height: int, seed: int = 0) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    beat = int(t * 2)
    rng = np.random.default_rng(seed * 1000 + beat)
    bg = rng.random(3) * 0.25
    img = Image.new("RGB", (width, height), tuple(int(c * 255) for c in bg))
    draw = ImageDraw.Draw(img)
    size = int(height * (0.35 + 0.25 * (t * 2 % 1)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    word = _WORDS[(beat + seed) % len(_WORDS)]
    fg = tuple(int(c) for c in (rng.random(3) * 155 + 100))
    box = draw.textbbox((0, 0), word, font=font)
    x = (width - (box[2] - box[0])) / 2 + np.sin(t * 3) * width * 0.05
    y = (height - (box[3] - box[1])) / 2 - box[1]
    draw.text((x, y), word, fill=fg, font=font)
    return np.asarray(img)


GENRES: dict[str, Callable[..., np.ndarray]] = {
    "plasma": plasma, "tunnel": tunnel, "particles": particles, "typography": typography,
}


def write_genre_videos(out_dir: str | Path, genre: str, count: int = 2, seconds: float = 3.0, fps: int = 30,
                       size: tuple[int, int] = (256, 144)) -> list[Path]:
    """Write ``count`` loops of one procedural genre as mp4 files; returns their paths."""
    draw = GENRES[genre]
    out_dir = Path(out_dir)
    paths = []
    for i in range(count):
        path = out_dir / f"{genre}_{i:02d}.mp4"
        if not path.exists():
            with VideoWriter(path, fps, size) as writer:
                for f in range(int(seconds * fps)):
                    writer.write(draw(f / fps, size[0], size[1], seed=i))
        paths.append(path)
    return paths


def beat_track(bpm: float = 124.0, seconds: float = 20.0, rate: int = 44100, swing: float = 0.0,
               change_at: float | None = None, bpm2: float | None = None, pad: bool = True,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthesised track with known beats: a kick on every beat, a hat off the beat (``swing``: the hat
    that much of a beat late), a bass pulse and a pad; the tempo may change to ``bpm2`` at ``change_at``.
    Returns (mono float32 samples in [-1, 1], the beat times in seconds)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    beats, t = [], 0.0
    while t < seconds:
        beats.append(t)
        t += 60.0 / (bpm2 if bpm2 and change_at is not None and t >= change_at else bpm)
    beats = np.array(beats)
    x = np.zeros(n)
    k = np.arange(int(0.25 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 120 * np.exp(-k * 30)) * k) * np.exp(-k * 12)
    h = np.arange(int(0.05 * rate)) / rate
    for i, b in enumerate(beats):
        a = int(b * rate)
        m = min(len(kick), n - a)
        x[a:a + m] += 0.8 * kick[:m]
        nxt = beats[i + 1] if i + 1 < len(beats) else b + 60.0 / bpm
        a2 = int((b + (nxt - b) * (0.5 + swing)) * rate)
        if a2 < n:
            m2 = min(len(h), n - a2)
            x[a2:a2 + m2] += 0.3 * rng.normal(0, 1, m2) * np.exp(-h[:m2] * 80)
        root = 55.0 if (i // 2) % 2 == 0 else 65.4                      # A1, then C2, every two beats
        m3 = min(int(0.3 * rate), n - a)
        tt = np.arange(m3) / rate
        x[a:a + m3] += 0.2 * np.sin(2 * np.pi * root * tt) * np.exp(-tt * 6)
    if pad:
        tt = np.arange(n) / rate
        x += 0.06 * sum(np.sin(2 * np.pi * f * tt) for f in (220.0, 277.2, 329.6))  # an A major chord
    return np.clip(x, -1, 1).astype(np.float32), beats


def write_beat_track(path: str | Path, seconds: float = 20.0, bpm: float = 124.0, rate: int = 44100, **kw) -> Path:
    """``beat_track`` as a 16-bit WAV (the demo's showcase runs over one)."""
    import wave

    x, _ = beat_track(bpm, seconds, rate, **kw)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path
