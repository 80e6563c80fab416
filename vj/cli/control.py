"""Control and output flags of ``vj live``, and the ``vj osc`` / ``vj midi`` commands."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("vj")
from vj.core.config import PRESETS, arg_number

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
    g.add_argument("--mapping", type=Path, default=MAPPINGS / "generic.toml",
                   help="MIDI mapping TOML (default presets/mappings/generic.toml)")
    g.add_argument("--web", nargs="?", const="127.0.0.1:8080", metavar="[HOST:]PORT",
                   help="serve the control page, REST/WebSocket API and preview (default address with the flag "
                        "alone: 127.0.0.1:8080; beyond loopback it needs the printed token)")
    g.add_argument("--link", action="store_true",
                   help="join an Ableton Link session: follow its tempo and bar phase, send tempo changes to its "
                        "peers (extra: link)")
    o = p.add_argument_group("outputs (optional extras)")
    o.add_argument("--ndi", metavar="NAME", help="send as an NDI source (extra: ndi)")
    o.add_argument("--syphon", metavar="NAME", help="publish a Syphon server (macOS, extra: syphon)")
    o.add_argument("--spout", metavar="NAME", help="publish a Spout sender (Windows, extra: spout)")
    o.add_argument("--vcam", action="store_true", help="send to a virtual camera (extra: vcam)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    osc = sub.add_parser("osc", help="the OSC address space of a scene",
                         description="Every OSC address a scene understands, with range and default.",
                         epilog="examples:\n  vj osc --list\n  vj osc --scene my-show.toml --cues my-cues.toml   "
                                "# the scene's genres and cues as arguments\n  vj osc --markdown > table.md\n",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    osc.add_argument("--list", action="store_true", help="print every address (the default)")
    osc.add_argument("--scene", type=Path, help="scene TOML (default: presets/scenes/demo.toml)")
    osc.add_argument("--cues", type=Path, help="cue list TOML: its named cues are listed as /vj/cue's arguments")
    osc.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    osc.set_defaults(func=cmd_osc)

    midi = sub.add_parser("midi", help="list MIDI ports, or learn a mapping",
                          description="MIDI: list ports, or bind a parameter to the next control you move.",
                          epilog="examples:\n  vj midi --list\n  vj midi --learn master.crossfade --port nanoKONTROL\n"
                                 "  vj midi --learn genre:tunnel --mapping presets/mappings/my-controller.toml\n",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    midi.add_argument("--list", action="store_true", help="list input ports (the default)")
    midi.add_argument("--learn", metavar="PARAM", help="parameter (or genre:NAME, cue:NAME, tap) to bind")
    midi.add_argument("--port", default="", help="port name contains this (default: any)")
    midi.add_argument("--mapping", type=Path, default=MAPPINGS / "learned.toml", help="mapping file to update (default: %(default)s)")
    midi.add_argument("--timeout", type=arg_number(1, 3600), default=30.0,
                      help="seconds to wait for a control, 1-3600 (default 30)")
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
