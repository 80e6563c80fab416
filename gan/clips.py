"""Clips from a run: the learning process (one frame per recorded sample) and latent walks."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from gan.model import load_generator
from gan.walk import walk_frames
from vj.media import VideoWriter, read_image


def sample_files(run_dir: Path, latent: int | None = None) -> list[Path]:
    """The run's sample PNGs in time order (their names sort chronologically)."""
    folder = run_dir / "samples" if latent is None else run_dir / "samples" / f"z{latent:02d}"
    files = sorted(folder.glob("epoch_*.png"))
    if not files:
        what = "grid samples" if latent is None else f"samples of latent {latent}"
        raise FileNotFoundError(f"{folder}: no {what} yet (train first: vj gan train ...)")
    return files


def upscale(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit a frame into ``size`` (w, h), letterboxed, with smooth (Lanczos) upscaling."""
    w, h = size
    fh, fw = frame.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = max(2, int(fw * s)), max(2, int(fh * s))
    interp = cv2.INTER_LANCZOS4 if s > 1 else cv2.INTER_AREA
    inner = cv2.resize(frame, (nw, nh), interpolation=interp)
    if (nw, nh) == (w, h):
        return inner
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = inner
    return out


def learning_frames(files: list[Path], size: tuple[int, int], blend: int = 0) -> Iterator[np.ndarray]:
    """One frame per sample, plus ``blend`` crossfaded in-betweens between consecutive samples."""
    prev = None
    for path in files:
        cur = upscale(read_image(path), size)
        if prev is not None and blend:
            for i in range(1, blend + 1):
                a = i / (blend + 1)
                yield cv2.addWeighted(prev, 1 - a, cur, a, 0)
        yield cur
        prev = cur


def _even(v: int) -> int:
    return v + v % 2


def learning_clip(run_dir: Path, out: Path, fps: float = 30, latent: int | None = None, height: int | None = None,
                  blend: int = 0, progress: bool = True) -> int:
    """Write the learning-process clip; returns its frame count. ``height`` upscales (1080 for 1080p)."""
    files = sample_files(run_dir, latent)
    first = read_image(files[0])
    h = height or first.shape[0]
    size = (_even(round(first.shape[1] * h / first.shape[0])), _even(h))
    total = len(files) + max(0, len(files) - 1) * blend
    with VideoWriter(out, fps, size) as writer:
        for frame in tqdm(learning_frames(files, size, blend), total=total, desc="learning clip", unit="frame",
                          disable=not progress):
            writer.write(frame)
    return writer.frames


def walk_clip(run_dir: Path, out: Path, seconds: float, fps: float = 30, height: int | None = None,
              keys: int = 8, seed: int = 0, device: str = "cpu", progress: bool = True) -> int:
    """Write a seamless looping latent walk; returns its frame count."""
    generator, fixed_noise = load_generator(run_dir / "ckpt.pt", device)
    h = _even(height or generator.size)
    size = (h, h)
    n = max(1, int(round(seconds * fps)))
    with VideoWriter(out, fps, size) as writer:
        for frame in tqdm(walk_frames(generator, seconds, fps, keys, seed, reference=fixed_noise), total=n, desc="latent walk",
                          unit="frame", disable=not progress):
            writer.write(upscale(frame, size) if frame.shape[0] != h else frame)
    return writer.frames
