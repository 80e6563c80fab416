"""Control and output flags of ``vj live``, and the ``vj osc`` / ``vj midi`` commands."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("vj")
MAPPINGS = Path(__file__).resolve().parents[2] / "presets" / "mappings"


def add_live_control_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("control")
    g.add_argument("--osc-port", type=int, help="listen for OSC on this UDP port (e.g. 9000)")
    g.add_argument("--osc-host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)")
    g.add_argument("--osc-allow", action="append", metavar="IP", help="accept OSC only from these senders")
    g.add_argument("--osc-feedback", metavar="HOST:PORT", help="send parameter changes back (e.g. to TouchOSC)")
    g.add_argument("--midi", metavar="PORT", nargs="?", const="",
                   help="listen to MIDI ports whose name contains PORT (all when empty)")
    g.add_argument("--mapping", type=Path, default=MAPPINGS / "generic.toml", help="MIDI mapping TOML")
    o = p.add_argument_group("outputs (optional extras)")
    o.add_argument("--ndi", metavar="NAME", help="send as an NDI source (extra: ndi)")
    o.add_argument("--syphon", metavar="NAME", help="publish a Syphon server (macOS, extra: syphon)")
    o.add_argument("--spout", metavar="NAME", help="publish a Spout sender (Windows, extra: spout)")
    o.add_argument("--vcam", action="store_true", help="send to a virtual camera (extra: vcam)")


def start_live_control(args, engine, outputs: list) -> list:
    """Start what the flags ask for; each piece that cannot run logs one line and the rest goes on."""
    from vj.outputs.platform import OutputUnavailable, open_output

    closers = []
    for kind in ("ndi", "syphon", "spout", "vcam"):
        name = getattr(args, kind)
        if name:
            try:
                outputs.append(open_output(kind, "reframe-vj" if name is True else name, engine.size, engine.fps))
                log.info("output: %s on", kind)
            except OutputUnavailable as exc:
                log.warning("output: %s", exc)
    if args.osc_port is not None:
        from vj.control.osc import OscFeedback, OscRouter, OscServer

        server = OscServer(OscRouter(engine.store), args.osc_host, args.osc_port, args.osc_allow)
        engine.before_frame.append(server.poll)
        closers.append(server)
        if args.osc_feedback:
            host, port = args.osc_feedback.rsplit(":", 1)
            fb = OscFeedback(host, int(port))
            engine.store.on_change(fb.param)
            engine.genre_listeners.append(fb.genre)
            closers.append(fb)
    if args.midi is not None:
        from vj.control.mapping import load_mapping
        from vj.control.midi import MidiControl, MidiUnavailable

        try:
            closers.append(MidiControl(engine.store, load_mapping(args.mapping), args.midi, args.mapping))
        except MidiUnavailable as exc:
            log.warning("midi: %s", exc)
    return closers


def add_parser(sub: argparse._SubParsersAction) -> None:
    osc = sub.add_parser("osc", help="the OSC address space of a scene",
                         description="Every OSC address a scene understands, with range and default.")
    osc.add_argument("--list", action="store_true", help="print every address (the default)")
    osc.add_argument("--scene", type=Path, help="scene TOML (default: presets/scenes/demo.toml)")
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
    from vj.control.osc import address_table
    from vj.engine import Engine
    from vj.scene import load_scene

    scene = load_scene(args.scene or Path(__file__).resolve().parents[2] / "presets" / "scenes" / "demo.toml")
    engine = Engine(scene, exact=True)
    rows = address_table(engine.store)
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
