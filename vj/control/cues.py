"""Cue lists: TOML files of timed events, and the player that fires them as the show's clock passes them.

    [[cue]]
    beat = 32            # or at = 12.5 (seconds); beats are converted with the scene's BPM
    name = "drop"        # optional: fire it from OSC (/vj/cue drop), a key, MIDI or the web
    genre = "particles"  # any of: genre, set, jump, bpm
    set = { "fx.strobe.on" = 1, "layer.clips.speed" = 2 }
    jump = true
    bpm = 128

A cue is a list of events for the parameter store, so a cue does exactly what the same OSC messages do.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vj.core.config import ConfigError, check_keys, number, read_toml

log = logging.getLogger("vj.show")


@dataclass
class Cue:
    time: float                  # seconds (beats are converted with the scene's BPM)
    name: str = ""
    events: list[tuple[str, Any]] = field(default_factory=list)  # (parameter or command, value), in order
    index: int = 0               # position in its file, for cues without a name

    @property
    def label(self) -> str:
        """The name, or the index and first event: what the log and the web show."""
        if self.name:
            return self.name
        first = ""
        if self.events:
            name, value = self.events[0]
            first = f": {name}" + ("" if value is None else f" {value}")
        return f"#{self.index}{first}"


def load_cues(path: str | Path, bpm: float) -> list[Cue]:
    """``[[cue]]`` tables with ``at`` (seconds) or ``beat``, and ``genre``, ``set``, ``jump``, ``bpm``, ``name``."""
    path = Path(path)
    data = read_toml(path)
    check_keys(data, {"cue", "kind"}, str(path))
    if data.get("kind", "cues") != "cues":
        raise ConfigError(f"{path}: kind = {data['kind']!r}, expected \"cues\"")
    cues = []
    if not isinstance(data.get("cue", []), list):
        raise ConfigError(f"{path}: cue must be an array of tables ([[cue]])")
    for i, c in enumerate(data.get("cue", [])):
        w = f"{path} [[cue]][{i}]"
        if not isinstance(c, dict):
            raise ConfigError(f"{w}: expected a table")
        check_keys(c, {"at", "beat", "name", "genre", "set", "jump", "bpm"}, w)
        if ("at" in c) == ("beat" in c):
            raise ConfigError(f"{w}: give exactly one of at (seconds) or beat")
        t = number(c["at"], f"{w} at", 0, 1e7) if "at" in c else number(c["beat"], f"{w} beat", 0, 1e7) * 60 / bpm
        if not isinstance(c.get("set", {}), dict):
            raise ConfigError(f"{w}: set must be a table of parameter = value")
        events: list[tuple[str, Any]] = list(c.get("set", {}).items())
        if "bpm" in c:
            events.append(("tempo.bpm", number(c["bpm"], f"{w} bpm", 20, 300)))
        if c.get("jump"):
            events.append(("jump", None))
        if "genre" in c:
            events.append(("genre", str(c["genre"])))
        cues.append(Cue(t, str(c.get("name", "")), events, i))
    return sorted(cues, key=lambda c: c.time)


def cue_list_end(cues: list[Cue]) -> float:
    """When the last cue fires (0 for none)."""
    return max((c.time for c in cues), default=0.0)


class CuePlayer:
    """Fires each cue once, when the show's time reaches it; named cues can also be fired on demand."""

    def __init__(self, cues: list[Cue], push: Callable[[str, Any, str], None]):
        self.cues = sorted(cues, key=lambda c: c.time)
        self.named = {c.name: c for c in self.cues if c.name}
        self.push = push
        self.next = 0

    def due(self, t: float) -> None:
        while self.next < len(self.cues) and self.cues[self.next].time <= t + 1e-9:
            self.fire(self.cues[self.next], t)
            self.next += 1

    def fire(self, cue: Cue, t: float) -> None:
        log.info("cue %s at %.2fs", cue.label, t)
        for name, value in cue.events:
            self.push(name, value, "cue")
