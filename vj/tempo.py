"""Tempo: BPM, tap tempo and beat phase. Beats are a continuous count; the fraction is the phase."""
from __future__ import annotations


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
        self.bpm = min(300.0, max(20.0, float(bpm)))

    def tap(self, t: float) -> float:
        """Register a tap; from the second tap on, BPM is the median interval and the tap lands on a beat."""
        if self.taps and t - self.taps[-1] > 2.0:
            self.taps = []
        self.taps = (self.taps + [t])[-8:]
        if len(self.taps) >= 2:
            gaps = sorted(b - a for a, b in zip(self.taps, self.taps[1:]))
            self.set_bpm(60.0 / gaps[len(gaps) // 2], t)
            self.anchor_beat = float(round(self.anchor_beat))
        return self.bpm
