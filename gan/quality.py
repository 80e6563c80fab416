"""The quality curve of a run: KID (kernel inception distance) in the project's ImageNet feature space.

KID (Binkowski et al. 2018) is the squared MMD between the genre's frames and generated images, with the
polynomial kernel k(x, y) = (x.y / d + 1)^3, estimated without bias: unlike FID it is fair on a few hundred
samples. It is computed on subsets and given with the spread of the subsets' estimates (its standard error).
0 is the real frames' own distribution; higher is further away. Features: EfficientNet-Lite0 (offline), the
space the mosaic already uses (``vj.core.features``).

``QualityWorker`` measures a snapshot of the generator on a thread of its own every few minutes (or epochs),
so training never waits for it; it touches no random state of the run (bit-exact resume holds).
``diagnose`` turns the log into one line of advice when a run stalls or collapses.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass

import numpy as np
import torch

from gan.config import load_run_config
from gan.data import build_cache
from gan.model import load_checkpoint, load_generator
from gan.walk import BatchStatsRenderer, to_uint8
from vj.core.priority import background_priority

log = logging.getLogger(__name__)
REAL_SAMPLES = 500     # genre frames the curve compares with (evenly spread over the cache)
FAKE_SAMPLES = 256     # generated images per measurement


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between feature sets ``x`` (m, d) and ``y`` (n, d), polynomial kernel of degree 3."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


@dataclass(frozen=True)
class Kid:
    value: float
    se: float          # the spread of the subset estimates

    def __str__(self) -> str:
        return f"{self.value:.4f} ± {self.se:.4f}"


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 200, seed: int = 0) -> Kid:
    """KID of ``fake`` features against ``real`` ones: the mean of ``subsets`` estimates on random subsets
    of ``subset_size`` (capped by the smaller set), with their standard deviation."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least two real and two generated samples")
    rng = np.random.default_rng(seed)
    vals = [polynomial_mmd(real[rng.choice(len(real), size, replace=False)],
                           fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return Kid(float(np.mean(vals)), float(np.std(vals)))


class Features:
    """The ImageNet features of images, one extractor per process (it takes a few seconds to load)."""

    _shared = None

    @classmethod
    def get(cls):
        if cls._shared is None:
            from vj.core.features import FeatureExtractor

            cls._shared = FeatureExtractor("efficientnet_lite0")
        return cls._shared

    @classmethod
    def of(cls, images_u8: np.ndarray, stop: threading.Event | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 1280) float32, in chunks; ``stop`` set: Stopped between two chunks."""
        out = []
        for i in range(0, len(images_u8), 32):
            if stop is not None and stop.is_set():
                raise Stopped
            out.append(cls.get()(np.asarray(images_u8[i:i + 32])))
        return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


class Stopped(Exception):
    """A measurement given up because its run ended."""


def real_features(frames: np.ndarray, active: np.ndarray, n: int = REAL_SAMPLES,
                  stop: threading.Event | None = None) -> np.ndarray:
    """Features of up to ``n`` frames spread evenly over the genre's cache."""
    pick = active[np.linspace(0, len(active) - 1, min(n, len(active))).astype(int)]
    return Features.of(np.asarray(frames[np.sort(pick)]), stop)


@torch.no_grad()
def generated(G, n: int = FAKE_SAMPLES, seed: int = 12345, batch: int = 32) -> np.ndarray:
    """``n`` images of generator ``G`` (a copy on the CPU, batch statistics as in training) as uint8, from
    latents of its own seeded generator (no global random state is touched)."""
    render = BatchStatsRenderer(G, size=0, runtime="torch")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), G.nz, generator=gen)
        out.append(to_uint8(render(z)))
    return np.concatenate(out)


def spread(features: np.ndarray) -> float:
    """Mean distance between unit feature vectors: a collapsed generator's samples sit on each other."""
    f = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-8)
    sims = f @ f.T
    return float(np.sqrt(np.maximum(0.0, 2 - 2 * sims[np.triu_indices(len(f), 1)])).mean())


class QualityWorker:
    """Measures KID on a thread while training goes on; ``take()`` returns finished measurements."""

    def __init__(self, frames: np.ndarray, active: np.ndarray, samples: int = FAKE_SAMPLES):
        self.frames, self.active, self.samples = frames, active, samples
        self.real: np.ndarray | None = None
        self.real_spread = 0.0
        self._thread: threading.Thread | None = None
        self._done: list[tuple[int, Kid, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: str | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, G: torch.nn.Module, epoch: int) -> bool:
        """Measure a snapshot of ``G`` (copied now, to the CPU); False while the last one is still running."""
        if self.busy:
            return False
        snapshot = copy.deepcopy(G).float().cpu()
        self._thread = threading.Thread(target=self._measure, args=(snapshot, epoch), name="kid", daemon=True)
        self._thread.start()
        return True

    def _measure(self, G, epoch: int) -> None:
        background_priority()  # training first: the curve takes what the step leaves (its threads inherit it)
        try:
            if self.real is None:
                self.real = real_features(self.frames, self.active, stop=self._stop)
                self.real_spread = spread(self.real)
            fake = Features.of(generated(G, self.samples), self._stop)
            result = (epoch, kid(self.real, fake), spread(fake))
            with self._lock:
                self._done.append(result)
        except Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - the curve is an aid: training goes on without it
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("quality: KID could not be measured (%s); training goes on", self.error)

    def take(self) -> list[tuple[int, Kid, float]]:
        """Finished measurements: (epoch of the snapshot, KID, sample spread)."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def wait(self, timeout: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Give up a measurement under way (at most one chunk of features later) and wait for the thread: a
        thread left inside ONNX Runtime at exit ends the process with ``terminate called``."""
        self._stop.set()
        self.wait(60)


def diagnose(history: list[dict], real_spread: float = 0.0) -> str | None:
    """One line of advice when the log shows a run going wrong, else None. ``history``: log rows (floats)
    with ``epoch``, ``d_g_z`` and, where measured, ``kid`` and ``spread``."""
    kids = [(r["epoch"], r["kid"]) for r in history if r.get("kid") is not None]
    if len(kids) >= 4:
        best = min(k for _, k in kids)
        last = [k for _, k in kids[-3:]]
        if all(b > a for a, b in zip(last, last[1:])) and last[-1] > 1.5 * best and last[-1] - best > 0.002:
            return (f"KID has risen for 3 measurements ({last[0]:.4f} -> {last[-1]:.4f}, best {best:.4f}): the run "
                    f"is getting worse; try --set lr= half of now, or more augmentation (--set augment=color,"
                    f"translation,cutout), or keep the checkpoint of the best epoch")
    recent = [r["d_g_z"] for r in history[-3:] if r.get("d_g_z") is not None]
    if len(recent) == 3 and max(recent) < 0.05:
        return ("D(G(z)) has stayed near 0 for 3 epochs: the discriminator wins outright and the generator learns "
                "nothing (grey noise); add --set augment=color,translation,cutout, lower the discriminator's width "
                "(--set ndf=), or use the profile's settings (--profile auto)")
    spreads = [r["spread"] for r in history if r.get("spread") is not None][-2:]  # the last two measurements
    if real_spread and len(spreads) == 2 and max(spreads) < 0.35 * real_spread:
        return (f"the samples are collapsing onto each other (feature spread {spreads[-1]:.2f} vs the frames' "
                f"{real_spread:.2f}): lower --set lr=, add augmentation, or resume from an earlier checkpoint")
    return None


def score_run(run, samples: int = FAKE_SAMPLES) -> dict:
    """KID of a run's generator (``vj.core.runs.GanRun``) against the genre's frame cache."""
    cfg = load_run_config(run.config)
    cache = build_cache(cfg.videos, run.frames, cfg.size, cfg.fps, cfg.crop, cfg.dedupe, progress=False,
                        skip=(run.root,))
    ckpt = load_checkpoint(run.generator())
    G, _ = load_generator(run.generator(), ckpt=ckpt)
    real = real_features(cache.frames, cache.active)
    fake = Features.of(generated(G, samples))
    return {"kid": kid(real, fake), "epoch": ckpt.get("epoch", "?"), "samples": samples, "frames": len(real),
            "spread": spread(fake), "real_spread": spread(real)}
