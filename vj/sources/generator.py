"""A genre's trained generator as a live latent walk (the generator layer)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from vj.params import Param
from vj.core.priority import background_priority
from vj.sources.base import Genre, NotInGenre, Source, SourceEnv, cover


class GeneratorSource(Source):
    """A genre's trained generator as a live latent walk.

    The generator makes ``rate`` images a second (in a worker when live, at fixed show times offline) and
    every frame in between blends the last two at the generator's own size before one smooth upscale:
    motion is as fluid as the show's frame rate while the network runs a fraction as often. Live, a network
    slower than ``rate`` (a 256 px FastGAN on one CPU core: 5 images a second) has each blend span the time
    it takes, so the picture keeps moving instead of jumping to each image and holding it.
    """

    kind = "generator"
    follows_genre = True
    params = (
        Param("speed", 1.0, 0, 8, help="walk speed"),
        Param("smooth", 1.0, 0, 1, help="ease in/out at key points"),
        Param("jitter", 0.0, 0, 1, help="per-frame latent noise"),
        Param("rate", 20, 1, 60, help="generator images per second; the frames between are blended"),
        Param("pulse", 0.0, 0, 1, help="a kick pushes the latent along its strongest direction (depth)"),
        Param("motion", 0.0, 0, 1, help="harmonic energy sets the walk's speed (depth)"),
        Param("chroma", 0.0, 0, 1, help="the music's pitch classes steer 12 latent directions (depth)"),
    )

    @classmethod
    def create(cls, env: SourceEnv, genre: Genre | None) -> "GeneratorSource":
        if genre is None or genre.generator is None:
            raise genre.lacks("generator") if genre else NotInGenre("no genre")
        return cls(env.size, genre.generator, env.exact, seed=env.seed, device=env.device)

    def __init__(self, size, ckpt: Path, exact=False, seed: int = 0, device: str = "cpu"):
        super().__init__(size, exact)
        # torch and gan/ load here, when a generator is made, not when vj.sources is imported: `vj --help`,
        # `vj osc --list` and scene checks would otherwise pay torch's 1-2 s start-up
        import torch

        from gan.model import load_generator
        from gan.walk import BatchStatsRenderer, LatentDance, LatentWalk, sefa_directions, to_uint8

        self.torch, self.to_uint8 = torch, to_uint8
        self.LatentDance, self.sefa, self.dance = LatentDance, sefa_directions, None
        if str(device) == "cpu":
            # one thread: the engine already runs layers side by side, and torch's idle OpenMP threads
            # spin for a while after each call, taking the cores the compositor needs
            torch.set_num_threads(1)
        self.G, fixed_noise = load_generator(ckpt, device)
        self.render_batch = BatchStatsRenderer(self.G, fixed_noise)
        self.walk = LatentWalk(self.G.nz, keys=8, seconds_per_key=2.0, seed=seed)
        self.walk_t = 0.0
        self.last_t: float | None = None
        self._black = np.zeros((size[1], size[0], 3), np.uint8)
        # (previous image, newest image, show time it arrived): small float32 images to blend
        self._pair: tuple[np.ndarray | None, np.ndarray | None, float] = (None, None, 0.0)
        self._shown: np.ndarray | None = None      # the small image the last frame showed
        self._slot: int | None = None              # offline: the slot whose two images _pair holds
        self._cache: tuple | None = None           # (small image, its upscale): a still frame costs nothing
        self._ahead = None                         # offline: the future image of the slot after next
        self._executor = None
        self._want: tuple | None = None
        self._render_s = 0.0                       # live: the worker's time per image (a running average)
        self._cv = threading.Condition()
        self._stop = False
        self._thread = None
        if not exact:
            self._thread = threading.Thread(target=self._work, name="generator", daemon=True)
            self._thread.start()

    def _render(self, walk_t: float, smooth: float, jitter: float, offset=None) -> np.ndarray:
        self.walk.smooth = smooth
        z = self.walk(walk_t, jitter=jitter)
        if offset is not None:
            z = z + offset
        return self.to_uint8(self.render_batch(z.unsqueeze(0)))[0].astype(np.float32)

    def _work(self) -> None:
        self.torch.set_num_threads(1)  # leave the other core to the render loop
        background_priority()
        next_at = 0.0
        while True:
            with self._cv:
                # at most `rate` images a second: a generator flat out would take a whole core from the mix
                self._cv.wait_for(lambda: self._stop or (self._want is not None and time.monotonic() >= next_at),
                                  timeout=max(0.0, next_at - time.monotonic()) or None)
                if self._stop:
                    return
                if self._want is None or time.monotonic() < next_at:
                    continue
                want, self._want = self._want, None
            started = time.monotonic()
            next_at = started + 1.0 / max(1.0, want[3])
            img = self._render(*want[:3], want[4])
            took = time.monotonic() - started
            self._render_s = took if not self._render_s else 0.8 * self._render_s + 0.2 * took
            # blend on from what is on screen now, so a new image never makes a jump
            self._pair = (self._shown, img, self.last_t or 0.0)

    def _dance(self, ctx, p, dt: float):
        """(walk speed factor, latent offset) from this frame's audio (1, None without audio or depth)."""
        a = ctx.audio
        if a is None or not (p["pulse"] or p["motion"] or p["chroma"]):
            return 1.0, None
        if self.dance is None:
            self.dance = self.LatentDance(self.sefa(self.G).cpu())
        hit = (0.5 + 0.5 * a.low) if a.onset_low else 0.0
        return self.dance.step(dt, hit, a.harmonic, a.chroma, p["pulse"], p["motion"], p["chroma"])

    def frame(self, ctx, p):
        dt = 0.0 if self.last_t is None else max(0.0, ctx.t - self.last_t)
        self.last_t = ctx.t
        factor, offset = self._dance(ctx, p, dt)
        self.walk_t += dt * p["speed"] * factor
        rate = max(1.0, p["rate"])
        want = (self.walk_t, p["smooth"], p["jitter"], rate, offset)
        if self.exact:  # images at fixed show times (slot starts): repeatable
            pos = ctx.t * rate + 1e-6
            slot = int(pos)
            if self._slot != slot:
                self._slot, self._pair = slot, self._slot_images(slot, want, p["speed"] * factor / rate)
            a = pos - slot
        else:
            with self._cv:
                self._want = want
                self._cv.notify()
            a = (ctx.t - self._pair[2]) / max(1.0 / rate, self._render_s)
        prev, new, _ = self._pair
        if new is None:
            return self._black
        small = new if prev is None or a >= 1 else cv2.addWeighted(prev, 1 - max(0.0, a), new, max(0.0, a), 0)
        self._shown = small
        if self._cache is None or self._cache[0] is not small:
            self._cache = (small, cover(np.clip(small, 0, 255).astype(np.uint8), self.size, cubic=True))
        return self._cache[1]

    def _slot_images(self, slot: int, want: tuple, step: float) -> tuple:
        """Offline, a slot's two end images; its start is the last slot's end when the slots follow each
        other. Without audio the walk is known ahead, so the image after next renders on a worker while this
        slot's frames are mixed; dancing to a track, the next image needs this frame's audio: it renders now."""
        walk_t, smooth, jitter, _, offset = want
        follows = self._slot == slot - 1 and self._pair[1] is not None
        ahead, self._ahead = self._ahead, None
        if offset is None and follows and ahead is not None:
            start, nxt = self._pair[1], ahead.result()
        else:  # the first slot, a jump in time, or a dance: the ends now
            if ahead is not None:
                ahead.result()
            start = self._pair[1] if follows else self._render(walk_t, smooth, jitter, offset)
            nxt = self._render(walk_t + step, smooth, jitter, offset)
        if offset is None:
            self._ahead = self._pool().submit(self._render, walk_t + 2 * step, smooth, jitter)
        return start, nxt, 0.0

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix="generator")
        return self._executor

    def close(self):
        """Stop the worker and wait for it: a daemon thread still inside ONNX Runtime or torch when the
        interpreter exits ends the process with ``terminate called without an active exception`` (134)."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
