"""Clocks: the live show and the offline render are the same loop with a different clock."""
from __future__ import annotations

import time


class FixedClock:
    """Frame i is at exactly i / fps seconds: offline renders, tests, frame-exact output."""

    realtime = False

    def __init__(self, fps: float):
        self.fps = fps
        self.index = 0

    def tick(self) -> float:
        t = self.index / self.fps
        self.index += 1
        return t


class RealtimeClock:
    """Paces the loop to ``fps`` against the wall clock; a late frame is not made up for, time moves on."""

    realtime = True

    def __init__(self, fps: float):
        self.fps = fps
        self.index = 0
        self.start: float | None = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        target = self.start + self.index / self.fps
        if target > now:
            time.sleep(target - now)
            now = time.perf_counter()
        elif now - target > 2 / self.fps:  # fell behind: resync instead of racing to catch up
            self.index = int((now - self.start) * self.fps)
        self.index += 1
        return now - self.start
