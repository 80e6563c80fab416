"""Progress that reads well on a terminal and in a log file: one rule for every long command.

On a terminal: a tqdm bar. Otherwise (output redirected to a file, or ``--no-progress``): a plain line
every ``every`` seconds and one at the end, never a carriage return. ``Progress.line`` writes a line that
stays (an epoch's summary) above a bar, or as a plain log line.
"""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

log = logging.getLogger("vj")


def on_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    def __init__(self, total: int | None, desc: str, unit: str = "it", bar: bool | None = None, every: float = 10.0,
                 initial: int = 0):
        """``bar``: None shows a bar only on a terminal; False never (lines only)."""
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = initial
        self.start = self.last = time.monotonic()
        self._bar = None
        if bar is None:
            bar = on_terminal()
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            extra = " ".join(f"{k} {v}" for k, v in postfix.items())
            log.info("%s: %s%s", self.desc, self.summary(), f" {extra}" if extra else "")

    def summary(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.start)
        rate = self.n / elapsed
        text = f"{self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}s"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {rate:.1f} {self.unit}/s"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {timedelta(seconds=int((self.total - self.n) / rate))}"
        return text

    def line(self, text: str) -> None:
        """A line that stays: above the bar on a terminal, a log line otherwise."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            log.info("%s", text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def wrap(items, total: int | None, desc: str, unit: str = "it", bar: bool | None = None):
    """Iterate ``items`` with progress (the tqdm-style wrapper for loops)."""
    p = Progress(total, desc, unit, bar)
    try:
        for item in items:
            yield item
            p.update(1)
    finally:
        p.close()
