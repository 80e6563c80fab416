"""The show follows the music: the audio analysis into the store, the scene's audio routes, and which leader
the tempo clock follows.

Every frame the audio input (a track, frame-exact, or a live input) is read once: its features become
read-only parameters (``audio.level``, ``audio.low``, ``audio.onset_low``, ``audio.percussive``,
``audio.chroma.0``..``11``, ``audio.bpm``...), so scenes can route them, OSC feedback sends them and the
web page shows them. Then the tempo clock (``vj.tempo``) follows the leader ``tempo.source`` names: the
``tempo.bpm`` parameter (fixed), taps, MIDI clock, an Ableton Link session or the beat tracker. The leader's
tempo is shown in ``tempo.bpm``; a tempo set by hand goes to the Link session when Link leads.
"""
from __future__ import annotations

import logging
from typing import Any

from vj.audio import FEATURES, ONSETS, AudioRoute, Frame
from vj.commands import parse_action
from vj.params import Param, ParamStore
from vj.tempo import LEADERS, Tempo

log = logging.getLogger("vj.show")

HELP = {"level": "the audio input's loudness", "low": "bass energy (20-200 Hz), against its recent range",
        "mid": "mid energy (200 Hz-2 kHz)", "high": "treble energy (2-11 kHz)",
        "percussive": "percussive energy (drums, hits)", "harmonic": "harmonic energy (pads, chords)",
        "onset": "1 on an onset anywhere", "onset_low": "1 on a bass onset (a kick)", "onset_mid": "1 on a mid onset",
        "onset_high": "1 on a treble onset (a hat)"}


def define(store: ParamStore, source: str = "fixed") -> None:
    """The music's parameters: every feature read-only, and the tempo's leader."""
    for name in FEATURES:
        store.define(Param(f"audio.{name}", 0.0, readonly=True, help=HELP[name]))
    for name in ONSETS:
        store.define(Param(f"audio.{name}", 0, kind="bool", readonly=True, help=HELP[name]))
    for i, note in enumerate("C C# D D# E F F# G G# A A# B".split()):
        store.define(Param(f"audio.chroma.{i}", 0.0, readonly=True, help=f"pitch class {note}"))
    store.define(Param("audio.bpm", 0.0, 0, 300, readonly=True, help="the beat tracker's tempo, 0 until it locks"))
    store.define(Param("tempo.source", source, kind="choice", choices=LEADERS,
                       help="who leads the tempo: fixed (tempo.bpm), tap, midi clock, link or audio"))


class Music:
    def __init__(self, store: ParamStore, tempo: Tempo, route: AudioRoute):
        self.store, self.tempo, self.route = store, tempo, route
        self.audio = None        # AudioFileInput / AudioDeviceInput
        self.link = None         # vj.control.link.LinkSession
        self.frame = Frame()
        self._actions = {kind: parse_action(action) for kind, action in route.fire.items()}
        self._shown_bpm = tempo.bpm

    @property
    def leader(self) -> str:
        return self.store.choice("tempo.source")

    # -- each frame
    def step(self, t: float, index: int) -> Frame:
        """Read the audio (when there is an input), route it, and move the tempo clock toward its leader."""
        if self.audio is not None:
            self.frame = f = self.audio.read(index)
            s = self.store
            for name in FEATURES:
                s.set(f"audio.{name}", getattr(f, name), "audio")
            for name in ONSETS:
                s.set(f"audio.{name}", float(getattr(f, name)), "audio")
            for i, c in enumerate(f.chroma):
                s.set(f"audio.chroma.{i}", c, "audio")
            s.set("audio.bpm", f.bpm if f.locked else 0.0, "audio")
            for feature, param in self.route.follow.items():
                p = s.params[param]
                s.push(param, p.lo + getattr(f, feature) * (p.hi - p.lo), "audio")
            for kind, (name, value) in self._actions.items():
                if getattr(f, kind):
                    s.push(name, value, "audio")
        self._lead(t)
        return self.frame

    def _lead(self, t: float) -> None:
        leader, tempo = self.leader, self.tempo
        if leader == "link" and self.link is not None:
            bpm, beat = self.link.read()
            tempo.follow(bpm, t, (t, beat), quantum=self.link.quantum)
        elif leader == "audio" and self.audio is not None and self.frame.locked:
            # the tracker's beat is on the input's time line; the input's "now" is this frame's time
            offset = t - self.audio.now()
            tempo.follow(self.frame.bpm, t, (self.frame.beat_time + offset, 0.0))
        elif leader == "tap" and tempo.target is not None:
            tempo.follow(tempo.bpm, t, tempo.target)
        else:  # fixed, midi (which sets tempo.bpm), or a leader that is not there: the parameter's tempo
            tempo.follow(self.store.values["tempo.bpm"], t, None)
        if abs(tempo.bpm - self._shown_bpm) > 0.05:  # the leader's tempo, shown (and fed back) in tempo.bpm
            self._shown_bpm = self.store.set("tempo.bpm", tempo.bpm, leader)

    # -- what controls do to the tempo
    def bpm_set(self, bpm: float, source: str) -> None:
        """``tempo.bpm`` set by a control or a cue: with Link, to the session (its peers follow); with the
        audio leading, the tracker keeps the tempo (and says so); else it is the tempo from the next frame."""
        if abs(bpm - self._shown_bpm) < 1e-6:
            return
        self._shown_bpm = bpm
        if self.leader == "link" and self.link is not None:
            self.link.set_bpm(bpm)
        elif self.leader == "audio" and self.audio is not None and self.frame.locked:
            self.store.reject("tempo", "the tempo follows the audio (tempo.source audio): set tempo.source to "
                                       "fixed to set it by hand", source, "tempo.bpm")
        elif self.leader == "tap":
            self.tempo.set_bpm(bpm, self.tempo.anchor_t)

    def tap(self, t: float, source: str) -> None:
        """A tap leads the tempo from now on (unless Link leads: then the tapped tempo goes to the session)."""
        bpm = self.tempo.tap(t)
        if bpm is None:
            return
        if self.leader == "link" and self.link is not None:
            self.link.set_bpm(bpm)
            return
        if self.leader != "tap":
            self.store.set("tempo.source", "tap", source)
        self._shown_bpm = self.store.set("tempo.bpm", bpm, source or "tap")

    def status(self) -> dict[str, Any]:
        return {"bpm": self.tempo.bpm, "source": self.leader, "locked": self.frame.locked,
                "peers": self.link.peers() if self.link is not None else None}
