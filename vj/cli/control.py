"""Control and output flags of ``vj live``, and the ``vj osc`` / ``vj midi`` commands."""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, fields
from pathlib import Path

log = logging.getLogger("vj")
from vj.core.config import PRESETS

MAPPINGS = PRESETS / "mappings"


def port(text: str) -> int:
    """A UDP/TCP port for argparse: 1-65535, one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return value


def add_live_control_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("control")
    g.add_argument("--osc-port", type=port, help="listen for OSC on this UDP port (e.g. 9000)")
    g.add_argument("--osc-host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)")
    g.add_argument("--osc-allow", action="append", metavar="IP", help="accept OSC only from these senders")
    g.add_argument("--osc-feedback", metavar="HOST:PORT",
                   help="send every change (parameters, genre, errors) to this address, e.g. TouchOSC's")
    g.add_argument("--midi", metavar="PORT", nargs="?", const="",
                   help="listen to MIDI ports whose name contains PORT (all when empty)")
    g.add_argument("--mapping", type=Path, default=MAPPINGS / "generic.toml", help="MIDI mapping TOML")
    o = p.add_argument_group("outputs (optional extras)")
    o.add_argument("--ndi", metavar="NAME", help="send as an NDI source (extra: ndi)")
    o.add_argument("--syphon", metavar="NAME", help="publish a Syphon server (macOS, extra: syphon)")
    o.add_argument("--spout", metavar="NAME", help="publish a Spout sender (Windows, extra: spout)")
    o.add_argument("--vcam", action="store_true", help="send to a virtual camera (extra: vcam)")


@dataclass
class LiveControl:
    """What ``vj live`` listens to and sends to, besides its window (the control and output flags)."""
    osc_port: int | None = None
    osc_host: str = "127.0.0.1"
    osc_allow: list[str] | None = None
    osc_feedback: str | None = None
    midi: str | None = None
    mapping: Path = MAPPINGS / "generic.toml"
    ndi: str | None = None
    syphon: str | None = None
    spout: str | None = None
    vcam: bool = False
    web: str | None = None        # [HOST:]PORT of the control page and API

    @classmethod
    def from_args(cls, args) -> "LiveControl":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def start_live_control(args: LiveControl, engine, outputs: list) -> list:
    """Start what the flags ask for; each piece that cannot run logs one line and the rest goes on (a
    port that is in use, or a bad --osc-feedback, is an error before the show starts)."""
    from vj.outputs.platform import OutputUnavailable, open_output

    closers = []
    for kind in ("ndi", "syphon", "spout", "vcam"):
        name = getattr(args, kind, None)
        if name:
            try:
                outputs.append(open_output(kind, "reframe-vj" if name is True else name, engine.size, engine.fps))
                log.info("output: %s on", kind)
            except OutputUnavailable as exc:
                log.warning("output: %s", exc)
    if getattr(args, "osc_feedback", None):
        from vj.control.osc import OscFeedback, parse_host_port

        fb = OscFeedback(*parse_host_port(args.osc_feedback))
        engine.store.on_change(fb)
        closers.append(fb)
    if getattr(args, "osc_port", None) is not None:
        from vj.control.osc import OscRouter, OscServer

        server = OscServer(OscRouter(engine.store), args.osc_host, args.osc_port, args.osc_allow)
        engine.before_frame.append(server.poll)
        closers.append(server)
    if getattr(args, "midi", None) is not None:
        from vj.control.mapping import load_mapping
        from vj.control.midi import MidiControl, MidiUnavailable

        try:
            midi = MidiControl(engine.store, load_mapping(args.mapping), args.midi, args.mapping)
            engine.learners.append(midi.arm)
            closers.append(midi)
        except MidiUnavailable as exc:
            log.warning("midi: %s", exc)
    return closers


def add_parser(sub: argparse._SubParsersAction) -> None:
    osc = sub.add_parser("osc", help="the OSC address space of a scene",
                         description="Every OSC address a scene understands, with range and default.")
    osc.add_argument("--list", action="store_true", help="print every address (the default)")
    osc.add_argument("--scene", type=Path, help="scene TOML (default: presets/scenes/demo.toml)")
    osc.add_argument("--cues", type=Path, help="cue list TOML: its named cues are listed as /vj/cue's arguments")
    osc.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    osc.set_defaults(func=cmd_osc)

    midi = sub.add_parser("midi", help="list MIDI ports, or learn a mapping",
                          description="MIDI: list ports, or bind a parameter to the next control you move.")
    midi.add_argument("--list", action="store_true", help="list input ports (the default)")
    midi.add_argument("--learn", metavar="PARAM", help="parameter (or genre:NAME, cue:NAME, tap) to bind")
    midi.add_argument("--port", default="", help="port name contains this (default: any)")
    midi.add_argument("--mapping", type=Path, default=MAPPINGS / "learned.toml", help="mapping file to update")
    midi.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a control (default 30)")
    midi.set_defaults(func=cmd_midi)


def cmd_osc(args) -> int:
    from vj.control.cues import load_cues
    from vj.control.osc import address_table
    from vj.engine import Engine
    from vj.scene import load_scene

    logging.getLogger("vj.scene").setLevel(logging.ERROR)  # a listing, not a show: missing media do not matter
    logging.getLogger("vj.show").setLevel(logging.WARNING)
    scene = load_scene(args.scene or PRESETS / "scenes" / "demo.toml")
    cues = load_cues(args.cues, scene.bpm) if getattr(args, "cues", None) else []
    engine = Engine(scene, exact=True, cues=cues)
    rows = address_table(engine.store, scene.genres, engine.cues.named)
    engine.close()
    if args.markdown:
        print("| address | range | default | what |\n|---|---|---|---|")
        for addr, rng, default, help in rows:
            cells = [rng, default, help]
            print(f"| `{addr}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    else:
        for addr, rng, default, help in rows:
            print(f"{addr:40} {rng:28} {default:>8}  {help}")
    return 0


def cmd_midi(args) -> int:
    import queue

    from vj.control.mapping import Mapping, learn, load_mapping, save_mapping
    from vj.control.midi import MidiUnavailable, backend

    try:
        be = backend()
    except MidiUnavailable as exc:
        raise ValueError(str(exc)) from None
    names = be.get_input_names()
    if not args.learn:
        print("\n".join(names) if names else "no MIDI input ports")
        return 0
    ports = [n for n in names if args.port.lower() in n.lower()]
    if not ports:
        raise ValueError(f"no MIDI input port matches {args.port!r} (ports: {', '.join(names) or 'none'})")
    got: queue.Queue = queue.Queue()
    opened = [be.open_input(n, callback=got.put) for n in ports]
    print(f"move a control for {args.learn} ...")
    try:
        while True:
            msg = got.get(timeout=args.timeout)
            if msg.type in ("control_change", "note_on"):
                break
    except queue.Empty:
        raise ValueError(f"no control moved within {args.timeout:g} s") from None
    finally:
        for p in opened:
            p.close()
    mapping = load_mapping(args.mapping) if args.mapping.exists() else Mapping(name=args.mapping.stem)
    save_mapping(learn(mapping, args.learn, msg), args.mapping)
    print(f"{msg} -> {args.learn}; saved {args.mapping}")
    return 0
