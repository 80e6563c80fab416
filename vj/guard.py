"""The show's one guard: a failure logs once, then at most every few seconds, naming the culprit.

Every edge of the live loop (control input, a source, an effect, an output) runs under it: the part that
failed shows black or is dropped for that frame, the show goes on, and the log does not flood (a source
that fails at 60 fps writes a line when it starts failing, then one line per ``every`` seconds saying
how often it failed since).
"""
from __future__ import annotations

import logging
import threading
import time

show_log = logging.getLogger("vj.show")


class Guard:
    def __init__(self, log: logging.Logger = show_log, every: float = 10.0, clock=time.monotonic):
        self.log = log
        self.every = every
        self.clock = clock
        self._seen: dict[str, list] = {}  # key -> [last logged at, suppressed since]
        self._lock = threading.Lock()
        self.failures = 0                 # every failure, logged or not (the status line and the web show it)
        self.parts: dict[str, int] = {}   # each part that ever failed -> its failures (a render's closing line)

    def warn(self, key: str, message: str, *args) -> bool:
        """Log ``message`` for ``key`` now unless it was logged less than ``every`` seconds ago (then count
        it). Returns whether a line was written."""
        now = self.clock()
        with self._lock:
            self.failures += 1
            if key in self.parts or len(self.parts) < 256:  # keys made of hostile input stay bounded
                self.parts[key] = self.parts.get(key, 0) + 1
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.every:
                seen[1] += 1
                return False
            suppressed = seen[1] if seen else 0
            self._seen[key] = [now, 0]
            if len(self._seen) > 4096:  # keys made of hostile input must not grow without bound
                self._seen.clear()
        self.log.warning(message + (f" ({suppressed} more since)" if suppressed else ""), *args)
        return True

    def recovered(self, key: str) -> bool:
        """Forget ``key`` (its part works again); True when it had failed."""
        with self._lock:
            return self._seen.pop(key, None) is not None

