"""Clips from a run: the learning process (one frame per recorded sample) and latent walks."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from gan.model import load_generator, pick_device
from gan.walk import walk_frames
from vj.core.media import MediaError, VideoWriter, read_image
from vj.core.progress import wrap
from vj.core.runs import GanRun

log = logging.getLogger("vj")


def sample_files(run: GanRun, latent: int | None = None) -> list[Path]:
    """The run's sample PNGs in time order (their names sort chronologically)."""
    files = run.sample_files(latent)
    if not files:
        what = "grid samples" if latent is None else f"samples of latent {latent}"
        raise FileNotFoundError(f"{run.sample_dir(latent)}: no {what} yet (train first: vj gan train ...)")
    return files


def readable(files: list[Path]) -> Iterator[tuple[Path, np.ndarray]]:
    """(file, image) for every sample that reads; an empty or damaged one (a kill mid-write, in a run made
    before samples were written atomically) is skipped and named."""
    for path in files:
        try:
            yield path, read_image(path)
        except MediaError as exc:
            log.warning("skipping sample %s: %s", path, exc)


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


def learning_frames(images: Iterator[np.ndarray], size: tuple[int, int], blend: int = 0) -> Iterator[np.ndarray]:
    """One frame per sample, plus ``blend`` crossfaded in-betweens between consecutive samples."""
    prev = None
    for img in images:
        cur = upscale(img, size)
        if prev is not None and blend:
            for i in range(1, blend + 1):
                a = i / (blend + 1)
                yield cv2.addWeighted(prev, 1 - a, cur, a, 0)
        yield cur
        prev = cur


def timed_frames(files: list[Path], size: tuple[int, int], total: int) -> Iterator[np.ndarray]:
    """Exactly ``total`` frames through the sample files in order: frame k sits at sample k (n - 1) / (total - 1),
    blended between the two samples around it (a short run's 16 samples become a clip of any length). Only the
    samples shown are read, two at a time: an overnight run's thousands of grids never sit in memory at once.
    A sample that does not read is skipped and named; the one before it stands in."""
    n = len(files)
    cache: dict[int, np.ndarray] = {}
    good: dict[int, np.ndarray] = {}  # the last readable sample, for one that is not

    def at(i: int) -> np.ndarray:
        if i not in cache:
            if len(cache) > 2:
                cache.clear()
            try:
                good[0] = upscale(read_image(files[i]), size)
            except MediaError as exc:
                log.warning("skipping sample %s: %s", files[i], exc)
            cache[i] = good[0]
        return cache[i]
    for k in range(total):
        pos = k * (n - 1) / max(1, total - 1)
        i = min(int(pos), n - 1)
        a = pos - i
        yield at(i) if a < 1e-6 or i + 1 >= n else cv2.addWeighted(at(i), 1 - a, at(i + 1), a, 0)


def _even(v: int) -> int:
    return v + v % 2


def learning_clip(run: GanRun | Path, out: Path, fps: float = 30, latent: int | None = None, height: int | None = None,
                  blend: int = 0, seconds: float | None = None, progress: bool | None = None) -> int:
    """Write the learning-process clip; returns its frame count. ``height`` upscales (1080 for 1080p);
    ``seconds`` spreads the samples over that long (blending between them) instead of ``blend``. The samples
    stream from disk: memory does not grow with the length of the run."""
    run = GanRun.at(run)
    files = sample_files(run, latent)
    first_good = next(readable(files), None)
    if first_good is None:
        raise MediaError(f"{run.sample_dir(latent)}: no readable sample")
    start, first = first_good
    files = files[files.index(start):]  # a damaged first sample: the clip starts at the first that reads
    h = height or first.shape[0]
    size = (_even(round(first.shape[1] * h / first.shape[0])), _even(h))
    if seconds:
        total = max(1, round(seconds * fps))
        frames = timed_frames(files, size, total)
    else:
        total = len(files) + max(0, len(files) - 1) * blend  # for the progress line (a damaged sample: fewer)
        frames = learning_frames((img for _, img in readable(files)), size, blend)
    with VideoWriter(out, fps, size) as writer:
        for frame in wrap(frames, total, "learning clip", "frame", progress):
            writer.write(frame)
    return writer.frames


def walk_clip(run: GanRun | Path, out: Path, seconds: float, fps: float = 30, height: int | None = None,
              keys: int = 8, seed: int = 0, device: str = "cpu", progress: bool | None = None) -> int:
    """Write a seamless looping latent walk; returns its frame count."""
    run = GanRun.at(run)
    generator, fixed_noise = load_generator(run.generator() or run.ckpt, pick_device(device))
    h = _even(height or generator.size)
    size = (h, h)
    n = max(1, int(round(seconds * fps)))
    with VideoWriter(out, fps, size) as writer:
        for frame in wrap(walk_frames(generator, seconds, fps, keys, seed, reference=fixed_noise), n, "latent walk",
                          "frame", progress):
            writer.write(upscale(frame, size) if frame.shape[0] != h else frame)
    return writer.frames
