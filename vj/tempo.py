"""Tempo: BPM, tap tempo and beat phase. Beats are a continuous count; the fraction is the phase.

The BPM's range and clamp live in one place, the store's ``tempo.bpm`` parameter; this clock takes what
it is given.
"""
from __future__ import annotations

MIN_TAP_GAP = 0.12   # seconds: taps closer than this are one tap (a button's press and release, a bounce);
                     # 0.12 s between taps would be 500 BPM, far above the tempo's range


class Tempo:
    def __init__(self, bpm: float = 120.0):
        self.bpm = bpm
        self.anchor_t = 0.0       # at time anchor_t the beat count was anchor_beat
        self.anchor_beat = 0.0
        self.taps: list[float] = []

    def beat(self, t: float) -> float:
        return self.anchor_beat + (t - self.anchor_t) * self.bpm / 60.0

    def set_bpm(self, bpm: float, t: float) -> None:
        """Change tempo without a jump in beat position."""
        self.anchor_beat, self.anchor_t = self.beat(t), t
        self.bpm = float(bpm)

    def tap(self, t: float) -> float | None:
        """Register a tap at ``t``; from the second tap on, the tempo is the median interval of the recent
        taps (returned, for the store to set) and the tap lands on a beat. None when the tap changes no
        tempo (the first tap, or one within ``MIN_TAP_GAP`` of the last)."""
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
        self.anchor_beat = float(round(self.anchor_beat))
        return bpm
