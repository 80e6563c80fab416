"""MIDI mappings: TOML files in presets/mappings/, and the pure function from a mido message to events.

    name = "generic"
    [[cc]]                # control change -> parameter, scaled into [min, max] with a curve
    control = 1
    channel = 0           # optional: any channel when left out
    param = "master.fader"
    min = 0.0             # optional: the parameter's range by default
    max = 1.0
    curve = "linear"      # linear, exp (fine control at the low end) or log
    [[note]]              # note on -> genre, cue, tap, jump, or a parameter value
    note = 36
    genre = "plasma"
    [clock]
    follow = true         # MIDI clock sets the BPM
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vj.commands import COMMANDS
from vj.core.config import ConfigError, check_keys, read_toml
from vj.core.runs import atomic_write_text

CURVES = ("linear", "exp", "log")
ACTIONS = tuple(c for c in COMMANDS if c != "learn")  # what a button or pad may fire: genre, cue, tap, jump


@dataclass
class CCRule:
    control: int
    param: str                 # a parameter, or "" for a button rule (action below)
    channel: int | None = None
    min: float | None = None
    max: float | None = None
    curve: str = "linear"
    action: str = ""           # button CCs: a command (genre, cue, tap, jump), fired when the value goes >= 64
    value: Any = None


@dataclass
class NoteRule:
    note: int
    channel: int | None = None
    action: str = "genre"   # a command (genre, cue, tap, jump), or param
    value: Any = None       # genre/cue name, or the parameter value
    param: str = ""


@dataclass
class Mapping:
    name: str = "mapping"
    cc: list[CCRule] = field(default_factory=list)
    notes: list[NoteRule] = field(default_factory=list)
    follow_clock: bool = True


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    data = read_toml(path)
    check_keys(data, {"name", "cc", "note", "clock", "kind"}, str(path))
    if data.get("kind", "mapping") != "mapping":
        raise ConfigError(f"{path}: kind = {data['kind']!r}, expected \"mapping\"")
    m = Mapping(name=str(data.get("name", path.stem)))
    for i, r in enumerate(_tables(data, "cc", path)):
        w = f"{path} [[cc]][{i}]"
        check_keys(r, {"control", "channel", "param", "min", "max", "curve", *ACTIONS}, w)
        actions = [k for k in ("param", *ACTIONS) if k in r]
        if "control" not in r or len(actions) != 1:
            raise ConfigError(f"{w}: needs control and exactly one of param, {', '.join(ACTIONS)}")
        if r.get("curve", "linear") not in CURVES:
            raise ConfigError(f"{w}: curve = {r['curve']!r} is not one of {', '.join(CURVES)}")
        action = "" if actions[0] == "param" else actions[0]
        m.cc.append(CCRule(_int(r["control"], w, 0, 127), str(r.get("param", "")), _channel(r, w), r.get("min"),
                           r.get("max"), r.get("curve", "linear"), action, r.get(action) if action else None))
    for i, r in enumerate(_tables(data, "note", path)):
        w = f"{path} [[note]][{i}]"
        check_keys(r, {"note", "channel", "param", "value", *ACTIONS}, w)
        actions = [k for k in (*ACTIONS, "param") if k in r]
        if "note" not in r or len(actions) != 1:
            raise ConfigError(f"{w}: needs note and exactly one of {', '.join(ACTIONS)}, param")
        action = actions[0]
        value = r.get("value", "toggle") if action == "param" else r.get(action)
        m.notes.append(NoteRule(_int(r["note"], w, 0, 127), _channel(r, w), action, value, r.get("param", "")))
    clock = data.get("clock", {})
    check_keys(clock, {"follow"}, f"{path} [clock]")
    m.follow_clock = bool(clock.get("follow", True))
    return m


def _tables(data: dict, key: str, path: Path) -> list[dict]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise ConfigError(f"{path}: {key} must be an array of tables ([[{key}]])")
    return items


def _int(value, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {value!r} is not a MIDI number ({lo}-{hi})")
    return value


def _channel(r: dict, where: str) -> int | None:
    return None if r.get("channel") is None else _int(r["channel"], where + " channel", 0, 15)


def save_mapping(m: Mapping, path: str | Path) -> None:
    import tomli_w

    def clean(d: dict) -> dict:
        return {k: v for k, v in d.items() if v is not None}

    data: dict[str, Any] = {"name": m.name, "clock": {"follow": m.follow_clock}}
    data["cc"] = [clean({"control": r.control, "channel": r.channel, "param": r.param or None, "min": r.min,
                         "max": r.max, "curve": r.curve, **({r.action: r.value if r.value is not None else True}
                                                             if r.action else {})}) for r in m.cc]
    notes = []
    for r in m.notes:
        d = {"note": r.note, "channel": r.channel}
        if r.action == "param":
            d.update(param=r.param, value=r.value)
        else:
            d[r.action] = r.value if r.value is not None else True
        notes.append(clean(d))
    data["note"] = notes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, tomli_w.dumps(data))


def _curve(x: float, curve: str) -> float:
    if curve == "exp":
        return x * x
    if curve == "log":
        return x ** 0.5
    return x


def map_message(m: Mapping, msg, params: dict | None = None) -> list[tuple[str, Any]]:
    """Events for one ``mido.Message`` under mapping ``m``. ``params`` (name -> Param) gives default ranges."""
    out: list[tuple[str, Any]] = []
    channel = getattr(msg, "channel", None)
    if msg.type == "control_change":
        for r in m.cc:
            if r.control == msg.control and (r.channel is None or r.channel == channel):
                if r.action:
                    if msg.value >= 64:
                        out.append((r.action, r.value if COMMANDS[r.action].arg else None))
                    continue
                p = (params or {}).get(r.param)
                lo = r.min if r.min is not None else (p.lo if p else 0.0)
                hi = r.max if r.max is not None else (p.hi if p else 1.0)
                out.append((r.param, lo + (hi - lo) * _curve(msg.value / 127.0, r.curve)))
    elif msg.type == "note_on" and msg.velocity > 0:
        for r in m.notes:
            if r.note == msg.note and (r.channel is None or r.channel == channel):
                if r.action == "param":
                    out.append((r.param, r.value))
                elif not COMMANDS[r.action].arg:
                    out.append((r.action, None))
                else:
                    out.append((r.action, r.value))
    return out


def learn(m: Mapping, param: str, msg) -> Mapping:
    """Bind ``param`` (a parameter name, or ``genre:NAME`` / ``cue:NAME`` / ``tap``) to the control in ``msg``."""
    channel = getattr(msg, "channel", None)
    if msg.type == "control_change":
        if ":" in param or param in ACTIONS:
            raise ValueError(f"{param!r} needs a note or pad, not a knob/fader")
        m.cc = [r for r in m.cc if not (r.control == msg.control and r.channel == channel)]
        m.cc.append(CCRule(msg.control, param, channel))
    elif msg.type == "note_on":
        m.notes = [r for r in m.notes if not (r.note == msg.note and r.channel == channel)]
        if ":" in param:
            action, value = param.split(":", 1)
            m.notes.append(NoteRule(msg.note, channel, action, value))
        elif param in ACTIONS:
            m.notes.append(NoteRule(msg.note, channel, param, None))
        else:
            m.notes.append(NoteRule(msg.note, channel, "param", "toggle", param))
    else:
        raise ValueError(f"cannot learn from a {msg.type} message")
    return m
