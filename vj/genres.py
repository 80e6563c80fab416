"""Genres: which one plays, the switch to another (waiting for its sources, then a crossfade), autopilot.

Live, every genre's sources are made on a background thread from the start (loading a generator,
exporting it to ONNX Runtime and opening a mosaic took 0.3-0.4 s: made on the frame loop at the first
switch, the show froze that long). A switch to a genre still being made waits for it while the current
genre plays on, then fades. Offline, sources are made when first shown (frame-exact).

Every switch is announced through the store (``genre``), so OSC feedback, the web and the log see it; a
switch to an unknown genre is answered with the known names.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from vj.params import ParamStore

log = logging.getLogger("vj.show")


class Genres:
    def __init__(self, names: list[str], initial: str | None, store: ParamStore,
                 prepare: Callable[[str], None] | None = None):
        """``prepare(genre)``: make a genre's sources (live: called on the preparer thread for every genre)."""
        self.names = list(names)
        self.current = initial or None
        self.store = store
        self.fade_from: str | None = None
        self.fade_start = 0.0
        self.pending: tuple[str, str] | None = None   # (genre, who asked): a switch waiting for its sources
        self.last_autopilot_bar = 0
        self._prepared: dict[str, Future] = {}
        self._preparer: ThreadPoolExecutor | None = None
        if prepare is not None and self.names:
            self._preparer = ThreadPoolExecutor(1, thread_name_prefix="genre-prep")
            order = sorted(self.names, key=lambda g: g != self.current)  # the first genre first
            self._prepared = {g: self._preparer.submit(prepare, g) for g in order}
        if self.current:
            store.notify("genre", self.current)
            log.info("genre: %s", self.current)

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the preparer thread (after the genres queued before it)."""
        if self._preparer is not None:
            self._preparer.submit(job)

    def ready(self, genre: str) -> bool:
        f = self._prepared.get(genre)
        return f is None or f.done()

    def request(self, genre: str, t: float, source: str = "") -> None:
        """Switch to ``genre`` at time ``t``: now when its sources are ready, else as soon as they are."""
        if genre not in self.names:
            self.store.reject("unknown genre", f"unknown genre {genre!r} (known: {', '.join(self.names) or 'none'})",
                              source, genre)
            return
        if genre == self.current:
            self.pending = None
            return
        if not self.ready(genre):
            if self.pending is None or self.pending[0] != genre:
                log.info("genre: %s requested at %.2fs, its sources are still loading", genre, t)
            self.pending = (genre, source)
            return
        self.pending = None
        self.fade_from, self.current, self.fade_start = self.current, genre, t
        log.info("genre: %s -> %s at %.2fs%s", self.fade_from, genre, t, f" ({source})" if source else "")
        self.store.notify("genre", genre)

    def poll(self, t: float) -> None:
        """A switch that waited for its sources starts once they are ready."""
        if self.pending is not None and self.ready(self.pending[0]):
            self.request(self.pending[0], t, self.pending[1])

    def fade(self, t: float, seconds: float) -> float:
        """How far the current switch has come at ``t`` (1.0 when none is under way)."""
        if self.fade_from is None:
            return 1.0
        a = 1.0 if seconds <= 0 else (t - self.fade_start) / seconds
        if a >= 1.0:
            self.fade_from = None
            return 1.0
        return max(0.0, a)

    def autopilot(self, beat: float, bars: int, t: float) -> None:
        """Every ``bars`` bars (0: off), the next genre."""
        if bars <= 0 or len(self.names) < 2:
            return
        bar = int(beat // (4 * bars))
        if bar != self.last_autopilot_bar:
            self.last_autopilot_bar = bar
            i = self.names.index(self.current) if self.current in self.names else -1
            self.request(self.names[(i + 1) % len(self.names)], t, "autopilot")

    def close(self) -> None:
        if self._preparer is not None:  # a source made after its layer closed would keep its threads
            self._preparer.shutdown(wait=True, cancel_futures=True)
