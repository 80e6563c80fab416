"""The one table of commands: the verbs a show understands besides setting a parameter.

OSC (``/vj/<command>``), MIDI mappings, keys, cue lists, audio routes, ``vj osc --list`` and the web API
all take their vocabulary from here. A command has a name, the kind of argument it takes and a help line;
the engine has one handler per command (a test checks that every command has one).

Everything else is a parameter of the store (``vj.params``). BPM is one parameter, ``tempo.bpm``; the
command-like ``/vj/bpm 128`` is an alias of it (``ALIASES``).

Actions are the one text form of an event, used by keys, audio onsets and mapping files:
``genre NAME``, ``cue NAME``, ``tap``, ``jump``, ``PARAM=VALUE``, ``PARAM+=STEP``, ``PARAM-=STEP``,
``PARAM toggle``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""       # "": none; "genre": a genre's name; "cue": a cue's name; "param": a parameter's name
    help: str = ""


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("genre", "genre", "switch genre (clips, generator, mosaic) with a crossfade"),
    Command("cue", "cue", "fire a named cue from the cue list"),
    Command("tap", "", "tap tempo: from the second tap the BPM follows the taps, and the tap lands on a beat"),
    Command("jump", "", "jump clip layers to a random clip and position"),
    Command("learn", "param", "MIDI learn: the next control moved on a MIDI controller is bound to this "
                              "parameter (or genre:NAME, cue:NAME, tap, jump) and saved to the mapping"),
)}

# names that are another parameter's: /vj/bpm 128 is tempo.bpm = 128
ALIASES: dict[str, str] = {"bpm": "tempo.bpm"}


def resolve(name: str) -> str:
    return ALIASES.get(name, name)


def parse_action(action: str) -> tuple[str, Any]:
    """An action (a key's, an audio onset's, a mapping's) -> (event name, value). Forms: ``genre NAME``,
    ``cue NAME``, ``tap``, ``jump``, ``PARAM=VALUE``, ``PARAM+=STEP``, ``PARAM-=STEP``, ``PARAM toggle``."""
    action = action.strip()
    if not action:
        raise ValueError("empty action")
    for op, sign in (("+=", 1), ("-=", -1)):
        if op in action:
            name, step = action.split(op, 1)
            try:
                return resolve(name.strip()), ("add", sign * float(step))
            except ValueError:
                raise ValueError(f"{action!r}: {step.strip()!r} is not a number") from None
    if "=" in action:
        name, value = action.split("=", 1)
        return resolve(name.strip()), value.strip()
    parts = action.split(None, 1)
    if len(parts) == 2:
        name, value = parts
        return (resolve(name), "toggle") if value == "toggle" else (resolve(name), value)
    return resolve(parts[0]), None


def check_action(name: str, value: Any, params: Mapping[str, Any], genres: Iterable[str] = (),
                 cues: Iterable[str] = ()) -> str | None:
    """Why the event ``(name, value)`` cannot act in a show with these parameters, genres and cues, or None.
    ``params`` maps names to ``vj.params.Param``."""
    command = COMMANDS.get(name)
    if command is not None:
        known = {"genre": list(genres), "cue": list(cues), "param": list(params)}.get(command.arg)
        if known is None:
            return None
        if value is None or str(value) not in known and command.arg != "param":
            shown = ", ".join(known) or "none"
            return f"unknown {command.arg} {value!r} (known: {shown})"
        return None
    param = params.get(name)
    if param is None:
        return f"{name!r} is neither a command ({', '.join(COMMANDS)}) nor a parameter (see vj osc --list)"
    if value is None:
        return f"{name}: needs a value (e.g. {name}=1 or {name} toggle)"
    if value == "toggle" or isinstance(value, tuple):
        return None
    try:
        param.coerce(value)
    except (TypeError, ValueError) as exc:
        return f"{name}: {exc}"
    return None
