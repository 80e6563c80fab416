"""Clips: a genre's loops, decoded ahead of need by one shared library, played by the clip source.

A clip that cannot be read (deleted mid-show, truncated, unreadable) is skipped and named once in the
show log; the layer plays the genre's other clips and tries the bad one again a while later (it may be
restored). Only a genre with no readable clip at all shows black.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from vj.core.media import MediaError, probe, read_frames
from vj.params import Param
from vj.core.priority import background_priority
from vj.sources.base import Genre, NotInGenre, Source, SourceEnv, cover

log = logging.getLogger("vj.show")

RETRY_SECONDS = 10.0  # a clip that failed is tried again after this long (it may have been restored)


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
        """The clip's entry (frames decoded so far, fps, done, error); starts decoding if needed. A failed
        entry is forgotten after ``RETRY_SECONDS``, so the next request reads the file again."""
        with self._lock:
            entry = self._clips.get(path)
            if entry is not None and entry["error"] and time.monotonic() - entry["failed_at"] > RETRY_SECONDS:
                self._clips.pop(path)
                entry = None
            if entry is None:
                entry = {"frames": [], "fps": 30.0, "done": False, "error": None, "failed_at": 0.0}
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
                entry["error"] = str(exc) or type(exc).__name__
                entry["failed_at"] = time.monotonic()
            with self._lock:
                entry["done"] = True
                self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()


class ClipSource(Source):
    """Plays a genre's clips: loop or ping-pong, speed, reverse, jumps to a random clip/position on the beat."""

    kind = "clip"
    follows_genre = True
    params = (
        Param("speed", 1.0, 0, 4, help="playback speed"),
        Param("mode", 0, kind="choice", choices=("loop", "pingpong"), help="loop or ping-pong"),
        Param("reverse", 0, kind="bool", help="play backwards"),
        Param("jump_beats", 0, 0, 64, kind="int", help="jump to a random clip and position every N beats (0: off)"),
    )

    @classmethod
    def create(cls, env: SourceEnv, genre: Genre | None) -> "ClipSource":
        if not (genre and genre.clips):
            raise genre.lacks("clips") if genre else NotInGenre("no genre")
        return cls(env.size, genre.clips if genre else (), env.exact, env.library, seed=env.seed)

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
        self.bad: dict[Path, str] = {}    # clips that failed, and why (named once in the log)
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

    def _entry(self) -> dict:
        """The current clip's entry; a clip that fails is named once and the next one takes its place."""
        for _ in range(len(self.clips)):
            path = self.clips[self.current]
            entry = self.library.wait(path) if self.exact else self.library.request(path)
            if not entry["error"]:
                if path in self.bad:
                    log.info("clip %s is readable again", path.name)
                    del self.bad[path]
                return entry
            if path not in self.bad:
                self.bad[path] = entry["error"]
                log.warning("clip %s cannot be played (%s): skipping it", path.name, entry["error"])
            self.current = (self.current + 1) % len(self.clips)
            self.pos = 0.0
        raise RuntimeError(f"none of the genre's {len(self.clips)} clips can be played "
                           f"(first: {self.clips[0].name}: {self.bad.get(self.clips[0], '?')})")

    def frame(self, ctx, p):
        t, beat = ctx.t, ctx.beat
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        every = int(p["jump_beats"])
        if every > 0 and int(beat // every) != self.last_jump_beat:
            self.last_jump_beat = int(beat // every)
            self._jump(self.last_jump_beat)
        entry = self._entry()
        path = self.clips[self.current]
        frames = entry["frames"]
        self.pos += dt * entry["fps"] * p["speed"]
        n = len(frames) if entry["done"] else 0
        if n == 0:
            if frames:  # still decoding: play what is there, never wait
                idx = min(int(self.pos), len(frames) - 1)
                self._last, self._shown = cover(frames[idx], self.size), None
            return self._last
        i = int(self.pos)
        if int(p["mode"]) == 1 and n > 1:
            period = 2 * n - 2
            i %= period
            i = i if i < n else period - i
        else:
            i %= n
        if p["reverse"] >= 0.5:
            i = n - 1 - i
        if self._shown != (path, i):  # a 30 fps clip on a 60 fps show: every other frame costs nothing
            self._shown = (path, i)
            self._last = cover(frames[i], self.size)
        return self._last

    def close(self):
        if self._own_library:
            self.library.close()
