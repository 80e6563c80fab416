"""Layer sources: one protocol, ``frame(ctx, p) -> (H, W, 3) uint8`` at the output size (or the same as
:class:`vj.mix.Rows`, an upscale the engine finishes while it mixes).

``ctx`` is the frame's time, beat and index (``vj.effects.FrameContext``); ``p`` holds the source's own parameters (already drained from the store this frame). Sources that do
slow work (decoding clips, running a generator) do it in a worker thread and return their latest frame
at once when ``exact`` is False (live); with ``exact`` True (offline render) they compute the exact
frame for ``t`` and may block, so a render is frame-for-frame repeatable.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vj.mix import Rows, scale_rows
from vj.params import Param

log = logging.getLogger(__name__)


def background_priority(nice: int = 19) -> None:
    """Lower this thread's CPU priority (Linux) to the least share the scheduler gives: workers that run
    ahead (decoding, a live generator) get what the frame loop leaves, and a waking mix thread preempts
    them at once. Not ``SCHED_IDLE``: a show that overloads the machine must still see a new generator
    image now and then, not a frozen layer. Children started from this thread (ffmpeg) inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass


def cover(frame: np.ndarray, size: tuple[int, int], cubic: bool = False) -> Rows:
    """``frame`` scaled to fill ``size`` (w, h), cropping the overflow, as :class:`vj.mix.Rows` (the mix
    finishes the upscale in its row bands). Smooth, never blocky, upscaling."""
    from vj.media import center_crop

    return scale_rows(center_crop(frame, size[0] / size[1]), size, cubic)


class Source:
    """Base class; ``params`` are declared relative to the layer (``speed`` -> ``layer.<name>.speed``)."""

    params: tuple[Param, ...] = ()

    def __init__(self, size: tuple[int, int], exact: bool = False):
        self.size = size
        self.exact = exact

    def frame(self, ctx, p: dict[str, float]) -> np.ndarray | Rows:
        raise NotImplementedError

    def command(self, name: str, value=None) -> None:
        """Actions such as ``jump``; sources ignore what they do not know."""

    def close(self) -> None:
        pass


class SolidSource(Source):
    params = (Param("r", 0.0, 0, 1), Param("g", 0.0, 0, 1), Param("b", 0.0, 0, 1))

    def frame(self, ctx, p):
        color = np.array([p.get("r", 0), p.get("g", 0), p.get("b", 0)]) * 255
        return np.broadcast_to(color.astype(np.uint8), (self.size[1], self.size[0], 3)).copy()


class GradientSource(Source):
    """A slowly turning two-colour gradient (a background that is never flat)."""

    params = (Param("speed", 0.1, 0, 2, help="turns per 10 s"), Param("hue", 0.6, 0, 1))

    def __init__(self, size, exact=False):
        super().__init__(size, exact)
        w, h = size
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        self._x, self._y = (x - w / 2) / h, (y - h / 2) / h

    def frame(self, ctx, p):
        a = ctx.t * p.get("speed", 0.1) * 0.628
        v = 0.5 + 0.5 * np.tanh((self._x * np.cos(a) + self._y * np.sin(a)) * 3)
        hue = p.get("hue", 0.6) * 2 * np.pi
        c1 = 0.5 + 0.5 * np.cos(hue + np.array([0, 2.1, 4.2]))
        c2 = 0.5 + 0.5 * np.cos(hue + np.pi + np.array([0, 2.1, 4.2]))
        rgb = v[..., None] * c1 * 0.6 + (1 - v[..., None]) * c2 * 0.6
        return (rgb * 255).astype(np.uint8)


# ---------------------------------------------------------------- clips
class ClipLibrary:
    """Decodes clips in one worker thread, ahead of need; keeps the last few decoded clips in memory.

    Clips are decoded at a reduced height (``decode_height``) and upscaled when shown: VJ loops and GAN
    clips are soft anyway, and it keeps a clip of a minute well under a few hundred MB.
    """

    def __init__(self, size: tuple[int, int], decode_height: int = 360, keep: int = 4, max_fps: float = 30,
                 background: bool = True):
        """``background``: decode on CPU the frame loop leaves (live); off for offline renders, which
        wait for their frames."""
        w, h = size
        self.background = background
        dh = min(h, decode_height)
        self.decode_size = (max(2, round(w * dh / h / 2) * 2), dh - dh % 2)
        self.max_fps = max_fps
        self.keep = keep
        self._clips: OrderedDict[Path, dict] = OrderedDict()
        self._lock = threading.Condition()
        self._todo: list[Path] = []
        self._thread = threading.Thread(target=self._work, name="clip-decoder", daemon=True)
        self._closed = False
        self._thread.start()

    def request(self, path: Path) -> dict:
        """The clip's entry (frames decoded so far, fps, done, error); starts decoding if needed."""
        with self._lock:
            entry = self._clips.get(path)
            if entry is None:
                entry = {"frames": [], "fps": 30.0, "done": False, "error": None}
                self._clips[path] = entry
                self._todo.append(path)
                self._lock.notify_all()
                while len(self._clips) > self.keep:
                    old, old_entry = next(iter(self._clips.items()))
                    if not old_entry["done"]:
                        break
                    self._clips.pop(old)
            else:
                self._clips.move_to_end(path)
            return entry

    def wait(self, path: Path, timeout: float = 120.0) -> dict:
        entry = self.request(path)
        with self._lock:
            self._lock.wait_for(lambda: entry["done"], timeout)
        return entry

    def _work(self) -> None:
        from vj.media import MediaError, probe, read_frames

        if self.background:
            background_priority()  # ffmpeg, started from this thread, inherits it

        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._todo or self._closed)
                if self._closed:
                    return
                path = self._todo.pop(0)
                entry = self._clips.get(path)
            if entry is None:
                continue
            try:
                fps = min(self.max_fps, probe(path).fps)
                entry["fps"] = fps
                for frame in read_frames(path, fps=fps, size=self.decode_size, crop="center"):
                    entry["frames"].append(frame)
                    if self._closed:
                        return
            except (MediaError, OSError) as exc:
                entry["error"] = str(exc)
            with self._lock:
                entry["done"] = True
                self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()


class ClipSource(Source):
    """Plays a genre's clips: loop or ping-pong, speed, reverse, jumps to a random clip/position on the beat."""

    params = (
        Param("speed", 1.0, 0, 4, help="playback speed"),
        Param("mode", 0, kind="choice", choices=("loop", "pingpong"), lo=0, hi=1, help="loop or ping-pong"),
        Param("reverse", 0, kind="bool", help="play backwards"),
        Param("jump_beats", 0, 0, 64, kind="int", help="jump to a random clip and position every N beats (0: off)"),
    )

    def __init__(self, size, clips: Sequence[Path], exact=False, library: ClipLibrary | None = None, seed: int = 0):
        super().__init__(size, exact)
        if not clips:
            raise FileNotFoundError("no clips to play")
        self.clips = [Path(c) for c in clips]
        self.library = library or ClipLibrary(size, background=not exact)
        self._own_library = library is None
        self.current = 0
        self.pos = 0.0            # frames into the current clip
        self.last_t: float | None = None
        self.last_jump_beat = 0
        self.seed = seed
        self._last = np.zeros((size[1], size[0], 3), np.uint8)
        self._shown: tuple | None = None  # (clip, frame index) that _last shows
        self.library.request(self.clips[0])
        for c in self.clips[1:3]:
            self.library.request(c)

    def command(self, name, value=None):
        if name == "jump":
            self._jump(int(value) if isinstance(value, (int, float)) else self.last_jump_beat + 1)

    def _jump(self, salt: int) -> None:
        rng = np.random.default_rng((self.seed, salt))
        self.current = int(rng.integers(len(self.clips)))
        self.pos = float(rng.random()) * 1e6  # wrapped by the clip length when shown

    def frame(self, ctx, p):
        t, beat = ctx.t, ctx.beat
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        every = int(p.get("jump_beats", 0))
        if every > 0 and int(beat // every) != self.last_jump_beat:
            self.last_jump_beat = int(beat // every)
            self._jump(self.last_jump_beat)
        path = self.clips[self.current]
        entry = self.library.wait(path) if self.exact else self.library.request(path)
        if entry["error"]:
            raise RuntimeError(f"{path.name}: {entry['error']}")
        frames = entry["frames"]
        self.pos += dt * entry["fps"] * p.get("speed", 1.0)
        n = len(frames) if entry["done"] else 0
        if n == 0:
            if frames:  # still decoding: play what is there, never wait
                idx = min(int(self.pos), len(frames) - 1)
                self._last, self._shown = cover(frames[idx], self.size), None
            return self._last
        i = int(self.pos)
        if int(p.get("mode", 0)) == 1 and n > 1:
            period = 2 * n - 2
            i %= period
            i = i if i < n else period - i
        else:
            i %= n
        if p.get("reverse", 0) >= 0.5:
            i = n - 1 - i
        if self._shown != (path, i):  # a 30 fps clip on a 60 fps show: every other frame costs nothing
            self._shown = (path, i)
            self._last = cover(frames[i], self.size)
        return self._last

    def close(self):
        if self._own_library:
            self.library.close()


# ---------------------------------------------------------------- live generator
class GeneratorSource(Source):
    """A genre's trained generator as a live latent walk.

    The generator makes ``rate`` images a second (in a worker when live, at fixed show times offline) and
    every frame in between blends the last two at the generator's own size before one smooth upscale:
    motion is as fluid as the show's frame rate while the network runs a fraction as often.
    """

    params = (
        Param("speed", 1.0, 0, 8, help="walk speed"),
        Param("smooth", 1.0, 0, 1, help="ease in/out at key points"),
        Param("jitter", 0.0, 0, 1, help="per-frame latent noise"),
        Param("rate", 20, 1, 60, help="generator images per second; the frames between are blended"),
    )

    def __init__(self, size, ckpt: Path, exact=False, seed: int = 0, device: str = "cpu"):
        super().__init__(size, exact)
        import torch

        from gan.model import load_generator
        from gan.walk import BatchStatsRenderer, LatentWalk

        self.torch = torch
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
        self._cv = threading.Condition()
        self._stop = False
        self._thread = None
        if not exact:
            self._thread = threading.Thread(target=self._work, name="generator", daemon=True)
            self._thread.start()

    def _render(self, walk_t: float, smooth: float, jitter: float) -> np.ndarray:
        from gan.walk import to_uint8

        self.walk.smooth = smooth
        return to_uint8(self.render_batch(self.walk(walk_t, jitter=jitter).unsqueeze(0)))[0].astype(np.float32)

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
            next_at = time.monotonic() + 1.0 / max(1.0, want[3])
            img = self._render(*want[:3])
            # blend on from what is on screen now, so a new image never makes a jump
            self._pair = (self._shown, img, self.last_t or 0.0)

    def frame(self, ctx, p):
        dt = 0.0 if self.last_t is None else max(0.0, ctx.t - self.last_t)
        self.last_t = ctx.t
        self.walk_t += dt * p.get("speed", 1.0)
        rate = max(1.0, p.get("rate", 20))
        want = (self.walk_t, p.get("smooth", 1.0), p.get("jitter", 0.0), rate)
        if self.exact:  # images at fixed show times (slot starts), the walk predicted ahead: repeatable
            pos = ctx.t * rate + 1e-6
            slot = int(pos)
            if self._slot != slot:
                step = p.get("speed", 1.0) / rate
                if self._slot == slot - 1 and self._ahead is not None:
                    start, nxt = self._pair[1], self._ahead.result()
                else:  # the first slot (or a jump in time): both ends now
                    if self._ahead is not None:
                        self._ahead.result()
                    start, nxt = self._render(*want[:3]), self._render(self.walk_t + step, *want[1:3])
                # the image after next renders on a worker while this slot's frames are mixed
                self._ahead = self._pool().submit(self._render, self.walk_t + 2 * step, *want[1:3])
                self._slot, self._pair = slot, (start, nxt, 0.0)
            a = pos - slot
        else:
            with self._cv:
                self._want = want
                self._cv.notify()
            a = (ctx.t - self._pair[2]) * rate
        prev, new, _ = self._pair
        if new is None:
            return self._black
        small = new if prev is None or a >= 1 else cv2.addWeighted(prev, 1 - max(0.0, a), new, max(0.0, a), 0)
        self._shown = small
        if self._cache is None or self._cache[0] is not small:
            self._cache = (small, cover(np.clip(small, 0, 255).astype(np.uint8), self.size, cubic=True))
        return self._cache[1]

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix="generator")
        return self._executor

    def close(self):
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


SOURCE_KINDS = ("clip", "generator", "mosaic", "solid", "gradient")
GENRE_KINDS = ("clip", "generator", "mosaic")  # these follow the current genre
