"""The one parameter store: named, ranged values that every control writes through.

Control threads (keys, cue lists, OSC, MIDI) only ``push`` ``(name, value)`` events onto a queue;
the engine ``drain``s it once at the start of each frame, so all state changes happen on the render
thread, in order, and the last value for a parameter within a frame wins. Unknown names and bad
values are dropped and counted, never raised: control input is untrusted.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

COMMANDS = ("genre", "cue", "tap", "bpm", "jump")  # events that are actions, not stored values


@dataclass(frozen=True)
class Param:
    name: str                      # dotted path: layer.clips.opacity, fx.split.amount, master.fader
    default: float
    lo: float = 0.0
    hi: float = 1.0
    kind: str = "float"            # float, int, bool or choice
    choices: tuple[str, ...] = ()  # for kind == "choice": the value is an index, names accepted too
    help: str = ""

    def coerce(self, value: Any) -> float:
        """Clamp ``value`` into range; raise ValueError for a value that is not a number (or choice name)."""
        if self.kind == "choice" and isinstance(value, str):
            if value not in self.choices:
                raise ValueError(f"{value!r} is not one of {self.choices}")
            return float(self.choices.index(value))
        if isinstance(value, str):
            value = float(value)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        v = min(self.hi, max(self.lo, float(value)))
        return float(round(v)) if self.kind in ("int", "choice", "bool") else v

    def describe(self) -> str:
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "bool":
            return "0|1"
        return f"{self.lo:g}..{self.hi:g}"


@dataclass
class Event:
    name: str
    value: Any
    source: str = ""


@dataclass
class Drained:
    changed: dict[str, float] = field(default_factory=dict)
    commands: list[Event] = field(default_factory=list)


class ParamStore:
    def __init__(self) -> None:
        self.params: dict[str, Param] = {}
        self.values: dict[str, float] = {}
        self.dropped: Counter[str] = Counter()  # reason -> count, shown in the status line
        self.received = 0
        self.superseded = 0  # parameter messages replaced by a later one of the same burst (never applied)
        self._queue: deque[Event] = deque()  # append/popleft are atomic: no lock per event
        self._listeners: list[Callable[[str, float], None]] = []
        self._lock = threading.Lock()

    # -- definition (engine thread, at scene load)
    def define(self, param: Param) -> Param:
        self.params[param.name] = param
        self.values.setdefault(param.name, param.coerce(param.default))
        return param

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def get(self, name: str, default: float = 0.0) -> float:
        return self.values.get(name, default)

    def choice(self, name: str) -> str:
        p = self.params[name]
        return p.choices[int(self.values[name])]

    def on_change(self, listener: Callable[[str, float], None]) -> None:
        """Called on the engine thread after each applied change (OSC feedback, logs)."""
        self._listeners.append(listener)

    # -- from any thread
    def push(self, name: str, value: Any = None, source: str = "") -> None:
        self._queue.append(Event(name, value, source))

    def drop(self, reason: str) -> None:
        """Count input rejected before it became an event (e.g. a malformed datagram)."""
        with self._lock:
            self.dropped[reason] += 1

    def supersede(self, n: int) -> None:
        """Count ``n`` inputs replaced by a later value for the same parameter before they were queued."""
        with self._lock:
            self.superseded += n

    # -- engine thread, once per frame
    def drain(self, limit: int = 100_000) -> Drained:
        out = Drained()
        for _ in range(limit):
            try:
                ev = self._queue.popleft()
            except IndexError:
                break
            self.received += 1
            if ev.name in COMMANDS:
                out.commands.append(ev)
                continue
            param = self.params.get(ev.name)
            if param is None:
                self.drop("unknown")
                continue
            try:
                value = self._resolve(param, ev.value)
            except (TypeError, ValueError):
                self.drop("bad value")
                continue
            out.changed[ev.name] = value  # last value within a frame wins
        for name, value in out.changed.items():
            self.values[name] = value
            for listener in self._listeners:
                listener(name, value)
        return out

    def _resolve(self, param: Param, value: Any) -> float:
        """An absolute value, ``("add", delta)`` for relative moves (keys, encoders), or ``"toggle"``."""
        if isinstance(value, str) and value == "toggle":
            return param.coerce(param.hi if self.values[param.name] <= param.lo else param.lo)
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "add":
            return param.coerce(self.values[param.name] + float(value[1]))
        return param.coerce(value)

    def status(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()))
        return (f"events {self.received}" + (f", {self.superseded} superseded in bursts" if self.superseded else "")
                + (f", dropped {sum(self.dropped.values())} ({drops})" if drops else ""))


def parse_action(action: str):
    """An action (a key's, an audio onset's) -> (event name, value). Forms: ``genre NAME``, ``cue NAME``, ``tap``, ``jump``,
    ``PARAM=VALUE``, ``PARAM+=STEP``, ``PARAM-=STEP``, ``PARAM toggle``."""
    action = action.strip()
    for op, sign in (("+=", 1), ("-=", -1)):
        if op in action:
            name, step = action.split(op, 1)
            return name.strip(), ("add", sign * float(step))
    if "=" in action:
        name, value = action.split("=", 1)
        return name.strip(), value.strip()
    parts = action.split(None, 1)
    if len(parts) == 2:
        name, value = parts
        return (name, "toggle") if value == "toggle" else (name, value)
    return parts[0], None
