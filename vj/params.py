"""The one parameter store: named, ranged values that every control writes through.

Control threads (keys, cue lists, OSC, MIDI, the web, audio) only ``push`` ``(name, value)`` events onto a
queue; the engine ``drain``s it once at the start of each frame, so all state changes happen on the render
thread, in order, and the last value for a parameter within a frame wins. Unknown names and bad values
are dropped and counted, never raised: control input is untrusted. Commands (``vj.commands``) pass
through the drain in order for the engine to act on.

Every change of state reaches the listeners (OSC feedback, web clients, the log): parameter changes from
the drain, the engine's own changes through ``set`` (a tapped tempo), and state that is not a number
through ``notify`` (the genre, a control error).
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from vj.commands import COMMANDS, resolve
from vj.guard import Guard

KINDS = ("float", "int", "bool", "choice")


@dataclass(frozen=True)
class Param:
    name: str                      # dotted path: layer.clips.opacity, fx.split.amount, master.fader
    default: float | str
    lo: float = 0.0
    hi: float = 1.0
    kind: str = "float"            # float, int, bool or choice
    choices: tuple[str, ...] = ()  # for kind == "choice": the value is an index, names accepted too
    help: str = ""
    readonly: bool = False         # set by the engine (audio analysis), not by controls

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "bool":
            object.__setattr__(self, "lo", 0.0)
            object.__setattr__(self, "hi", 1.0)
        if self.kind == "choice":
            object.__setattr__(self, "lo", 0.0)
            object.__setattr__(self, "hi", float(len(self.choices) - 1))

    def coerce(self, value: Any) -> float:
        """Clamp ``value`` into range; raise ValueError for a value that is not a number (or choice name)."""
        if self.kind == "choice" and isinstance(value, str):
            if value in self.choices:
                return float(self.choices.index(value))
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}") from None
        if self.kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false", "on", "off"):
            return float(value.lower() in ("true", "on"))
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a number") from None
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        v = float(min(self.hi, max(self.lo, float(value))))
        return float(round(v)) if self.kind in ("int", "choice", "bool") else v

    def under(self, prefix: str, default: Any = None) -> "Param":
        """This parameter named ``prefix + name`` (a layer's or an effect's), with another default."""
        return replace(self, name=prefix + self.name,
                       default=self.coerce(self.default if default is None else default))

    def describe(self) -> str:
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "bool":
            return "0|1"
        return f"{self.lo:g}..{self.hi:g}"

    def shown(self, value: float) -> str:
        """A value as a person reads it: a choice's name, an int without decimals."""
        if self.kind == "choice":
            return self.choices[int(value)]
        return f"{value:g}"

    def schema(self) -> dict:
        """The parameter as JSON for the web API and its page."""
        out = {"name": self.name, "kind": self.kind, "min": self.lo, "max": self.hi,
               "default": self.coerce(self.default), "help": self.help, "readonly": self.readonly}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        return out


@dataclass
class Event:
    name: str
    value: Any
    source: str = ""
    at: float | None = None   # a command held for a beat: the show time it belongs to

@dataclass
class Drained:
    changed: dict[str, float] = field(default_factory=dict)
    commands: list[Event] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> who set it last


Listener = Callable[[str, Any], None]


class ParamStore:
    def __init__(self) -> None:
        self.params: dict[str, Param] = {}
        self.values: dict[str, float] = {}   # read freely; written only by the store (define, drain, set)
        self.state: dict[str, Any] = {}      # what is not a parameter but is shown: genre, tempo source...
        self.dropped: Counter[str] = Counter()  # reason -> count, shown in the status line
        self.received = 0
        self.superseded = 0  # parameter messages replaced by a later one of the same burst (never applied)
        self.errors: deque[str] = deque(maxlen=20)  # the last control mistakes, for the web's status
        self._queue: deque[Event] = deque()  # append/popleft are atomic: no lock per event
        self._rejected: deque[tuple[str, str]] = deque(maxlen=256)  # (key, mistake) seen on other threads
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.guard = Guard()  # the show's one guard: every failure of this show is logged through it

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

    def on_change(self, listener: Listener) -> None:
        """``listener(name, value)`` on the engine thread after each change: a parameter (float), or state
        (``genre``, ``error``... with a str value)."""
        self._listeners.append(listener)

    # -- from any thread
    def push(self, name: str, value: Any = None, source: str = "") -> None:
        self._queue.append(Event(resolve(name), value, source))

    def drop(self, reason: str, detail: str = "", subject: str = "") -> None:
        """Count input rejected before it became an event (e.g. a malformed datagram); ``detail`` (one line
        naming the mistake) is reported on the engine thread at the next drain, rate-limited per ``reason``
        and ``subject`` (the address or name it concerns)."""
        with self._lock:
            self.dropped[reason] += 1
        if detail:
            self._rejected.append((f"{reason}:{subject[:60]}", detail))

    def supersede(self, n: int) -> None:
        """Count ``n`` inputs replaced by a later value for the same parameter before they were queued."""
        with self._lock:
            self.superseded += n

    # -- engine thread
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
            if param is None or param.readonly:
                self.reject("unknown" if param is None else "read-only",
                            f"{ev.name!r} is not a parameter (see vj osc --list)" if param is None
                            else f"{ev.name} is read-only", ev.source, str(ev.name))
                continue
            try:
                value = self._resolve(param, ev.value)
            except (TypeError, ValueError) as exc:
                self.reject("bad value", f"{ev.name}: {exc}", ev.source, ev.name)
                continue
            out.changed[ev.name] = value  # last value within a frame wins
            out.sources[ev.name] = ev.source
        while self._rejected:
            self._error(*self._rejected.popleft())
        for name, value in out.changed.items():
            self._apply(name, value)
        return out

    def set(self, name: str, value: Any, source: str = "") -> float:
        """Apply a change now (the engine's own: a tapped tempo, a genre's fade); listeners see it."""
        value = self.params[name].coerce(value)
        if self.values.get(name) != value:
            self._apply(name, value)
        return value

    def notify(self, name: str, value: Any) -> None:
        """State that is not a parameter changed (the genre, the tempo's leader): tell the listeners."""
        self.state[name] = value
        for listener in self._listeners:
            listener(name, value)

    def reject(self, reason: str, message: str, source: str = "", subject: str = "") -> None:
        """A control mistake: counted; logged at once, kept for the web and sent to the listeners as
        ``error`` (OSC feedback answers ``/vj/error``), at most once every few seconds per ``reason`` and
        ``subject`` (the name it concerns): a flood of one mistake is counted, not echoed."""
        with self._lock:
            self.dropped[reason] += 1
        self._error(f"{reason}:{subject[:60]}", message + (f" (from {source})" if source else ""))

    def _error(self, key: str, message: str) -> None:
        message = message if len(message) <= 240 else message[:237] + "..."  # hostile input can be long
        if not self.guard.warn("control:" + key, "control: %s", message):
            return
        self.errors.append(message)
        for listener in self._listeners:
            listener("error", message)

    def _apply(self, name: str, value: float) -> None:
        self.values[name] = value
        for listener in self._listeners:
            listener(name, value)

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
