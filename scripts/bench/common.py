"""Helpers shared by the benchmarks: timing statistics, memory, machine description, test media."""
from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_times() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far (Linux /proc/stat; zeros elsewhere). Stolen
    time is what the hypervisor gave other machines: a soak with a lot of it says more about the host."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick, (v[7] if len(v) > 7 else 0) / tick
    except (OSError, ValueError):
        return 0.0, 0.0


def steal_note(before: tuple[float, float], after: tuple[float, float]) -> str:
    busy, stolen = after[0] - before[0], after[1] - before[1]
    return f"CPU stolen by the host meanwhile: {stolen:.1f} s ({100 * stolen / max(1e-9, busy + stolen):.0f}% of busy time)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stats_ms(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000
    return f"median {np.median(a):.2f} ms, p95 {np.percentile(a, 95):.2f} ms"


def timed(fn, *args, repeat: int = 1, **kw):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


def procedural_videos(out: Path, per_genre: int = 3, seconds: float = 4.0) -> dict[str, Path]:
    from vj.procedural import GENRES, write_genre_videos

    return {g: write_genre_videos(out / g, g, count=per_genre, seconds=seconds, fps=24, size=(256, 144))[0].parent
            for g in GENRES}


def cores_busy(seconds: float = 1.0) -> float:
    """How many cores the whole machine kept busy over ``seconds`` (Linux /proc/stat; 0 elsewhere)."""
    before, t0 = cpu_times()[0], time.monotonic()
    time.sleep(seconds)
    return (cpu_times()[0] - before) / (time.monotonic() - t0)


def header(title: str) -> None:
    print(f"== {title}\n   machine: {machine()}")
    busy = cores_busy()
    if busy > 0.3:  # a test run or another bench beside this one takes its share of the 2 cores
        print(f"   WARNING: {busy:.1f} of {os.cpu_count()} cores already busy before this bench started: its "
              f"timings, and what a run learns in its minutes, will read low; stop the other work first")
