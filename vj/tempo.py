"""One tempo clock for the show, following one leader at a time.

The beat is a continuous count (its fraction is the phase) that only ever moves forward. Leaders: ``fixed``
(the ``tempo.bpm`` parameter), ``tap``, ``midi`` (MIDI clock), ``link`` (an Ableton Link session) and
``audio`` (the beat tracker). A leader gives a tempo and, when it knows one, where the beat is (a phase).
The clock does not jump to it: it runs a little faster or slower (at most ``MAX_NUDGE`` of the tempo) until
its phase matches, within about a beat, so no beat is skipped or doubled and the picture never stutters.

The tempo's range and clamp live in one place, the store's ``tempo.bpm`` parameter.
"""
from __future__ import annotations

import math

LEADERS = ("fixed", "tap", "midi", "link", "audio")
MIN_TAP_GAP = 0.12   # seconds: taps closer than this are one tap (a button's press and release, a bounce);
                     # 0.12 s between taps would be 500 BPM, far above the tempo's range
MAX_NUDGE = 0.08     # the clock runs at most 8% off the leader's tempo while it corrects its phase
CATCH_UP_BEATS = 1.5 # a phase error is corrected over about this many beats


class Tempo:
    def __init__(self, bpm: float = 120.0):
        self.bpm = bpm                 # the leader's tempo
        self.rate = bpm                # the tempo the clock runs at now (the leader's, nudged for phase)
        self.anchor_t = 0.0            # at time anchor_t the beat count was anchor_beat
        self.anchor_beat = 0.0
        self.taps: list[float] = []
        self.target: tuple[float, float] | None = None  # (time, beat) where the leader says a beat is
        self.quantum = 1.0             # the phase is matched modulo this many beats (4: bars, for Link)

    def beat(self, t: float) -> float:
        return self.anchor_beat + (t - self.anchor_t) * self.rate / 60.0

    def _rerate(self, rate: float, t: float) -> None:
        self.anchor_beat, self.anchor_t = self.beat(t), t
        self.rate = rate

    def set_bpm(self, bpm: float, t: float) -> None:
        """A new tempo from the leader, without a jump in beat position."""
        self.bpm = float(bpm)
        self._rerate(self.bpm, t)

    def follow(self, bpm: float, t: float, beat_at: tuple[float, float] | None = None, quantum: float = 1.0) -> None:
        """The leader's tempo, and where it says a beat is: ``beat_at`` = (time, beat count), its phase
        matched modulo ``quantum`` beats. Called every frame; the phase is reached gradually (``update``)."""
        if abs(bpm - self.bpm) > 1e-6:
            self.bpm = float(bpm)
        self.target = beat_at
        self.quantum = quantum
        self.update(t)

    def phase_error(self, t: float) -> float:
        """The leader's beat minus ours at ``t``, in beats, wrapped to half a quantum either way (0: none)."""
        if self.target is None:
            return 0.0
        tt, bb = self.target
        theirs = bb + (t - tt) * self.bpm / 60.0
        q = self.quantum
        return (theirs - self.beat(t) + q / 2) % q - q / 2

    def update(self, t: float) -> None:
        """Run at the leader's tempo, nudged to close the phase error over ``CATCH_UP_BEATS``."""
        err = self.phase_error(t)
        nudge = max(-MAX_NUDGE, min(MAX_NUDGE, err / CATCH_UP_BEATS))
        rate = self.bpm * (1 + nudge)
        if abs(rate - self.rate) > 1e-9:
            self._rerate(rate, t)

    def tap(self, t: float) -> float | None:
        """Register a tap at ``t``; from the second tap on, the tempo is the median interval of the recent
        taps (returned, for the store to set) and the tap lands on a beat (the phase target). None when the
        tap changes no tempo (the first tap, or one within ``MIN_TAP_GAP`` of the last)."""
        if self.taps and t - self.taps[-1] < MIN_TAP_GAP:
            return None
        if self.taps and t - self.taps[-1] > 2.0:
            self.taps = []
        self.taps = (self.taps + [t])[-8:]
        if len(self.taps) < 2:
            return None
        gaps = sorted(b - a for a, b in zip(self.taps, self.taps[1:]))
        bpm = 60.0 / gaps[len(gaps) // 2]
        self.set_bpm(bpm, t)
        self.target = (t, float(math.floor(self.beat(t) + 0.5)))  # this tap is on a beat
        self.quantum = 1.0
        return bpm
