"""``vj live``, ``vj render``, ``vj scene``, ``vj presets check`` and ``vj effects``. ``render_show`` is the
function behind ``vj render`` (``vj demo`` calls it too); ``vj live`` runs ``vj.live.play_live``."""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from vj.core.config import arg_number

log = logging.getLogger("vj")
from vj.core.config import PRESETS, PROJECT as ROOT

LIVE_EPILOG = """\
examples:
  vj scene && vj live --web                                        # every genre you trained (./scene.toml)
  vj live presets/scenes/demo.toml --fullscreen --osc-port 9000 --web
  vj live scene.toml --headless --ndi reframe --seconds 3600      # an NDI-only rig, no window
  vj live scene.toml --render-scale 0.5 --midi nano                # a 2-core laptop with a controller
Keys act at once; h shows the key help; Esc quits. Ctrl-C ends the show (exit code 130).
"""

RENDER_EPILOG = """\
examples:
  vj render presets/scenes/demo.toml --cues presets/cues/demo.toml --out set.mp4   # to the last cue
  vj render scene.toml --audio track.wav --out set.mp4 --size 1920x1080            # to the end of the track
  vj render scene.toml --seconds 60 --out small.mp4 --preset veryfast
Ctrl-C stops the render and keeps the video so far (exit code 130).
"""

MAX_SECONDS = 24 * 3600  # a day: longer is a typo, and would schedule millions of frames


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vj.core.media import X264_PRESETS
    from vj.outputs.file import SHOW_PRESET

    fmt = argparse.RawDescriptionHelpFormatter
    live = sub.add_parser("live", help="play a scene in a window (or headless) with keys, OSC, MIDI and the web",
                          description="Play a scene live.", epilog=LIVE_EPILOG, formatter_class=fmt)
    _common(live)
    live.add_argument("--fullscreen", action="store_true", help="fullscreen window")
    live.add_argument("--display", type=arg_number(0, 16, int), default=0,
                      help="which display for fullscreen (default 0)")
    live.add_argument("--headless", action="store_true", help="no window (for NDI/Syphon-only rigs and tests)")
    live.add_argument("--seconds", type=arg_number(0.001, MAX_SECONDS), help="stop after S seconds of wall time "
                                                                             "(default: until closed)")
    live.add_argument("--record", type=Path, help="also record the output, with its true timing, to this file")
    live.add_argument("--audio-device", nargs="?", const="", metavar="NAME",
                      help="a live audio input drives the scene's [audio] routes (extra: audio; default: none)")
    from vj.cli.control import add_live_control_args

    add_live_control_args(live)
    live.set_defaults(func=cmd_live)

    render = sub.add_parser("render", help="render a scene and cue list frame-exact to a video file",
                            description="The same show as `vj live`, with a fixed clock: frame-exact, repeatable.",
                            epilog=RENDER_EPILOG, formatter_class=fmt)
    _common(render)
    render.add_argument("--seconds", type=arg_number(0.001, MAX_SECONDS),
                        help="length of the render (default: to the last cue plus its fade, or to the end of "
                             "--audio)")
    render.add_argument("--out", type=Path, required=True, help="output video (mp4); its folder is created")
    render.add_argument("--audio", type=Path, help="a track: drives the scene's [audio] routes, frame-exact, "
                                                   "and is muxed into the video (default: none)")
    render.add_argument("--preset", default=SHOW_PRESET, choices=X264_PRESETS, metavar="PRESET",
                        help="x264 speed/size trade at the same quality: ultrafast, superfast (default: keeps "
                             "ahead of real time at 1080p30 on 2 cores), veryfast (two thirds the file, 1.5x the "
                             "encoding CPU) ... veryslow")
    render.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a plain line every 10 s (the default when the output is a file)")
    render.set_defaults(func=cmd_render)

    scene = sub.add_parser(
        "scene", help="write a scene that plays your trained genres and mosaics",
        description="Write a scene TOML from a runs folder: every trained genre with its live generator, its "
                    "learning clips, walks and loops, and a mosaic (the one named after the genre, else --mosaic, "
                    "else the newest built), switched by the keys 1-9, with the demo scene's layers, effects, "
                    "audio routes and keys. Edit it as you like; vj live plays it.",
        epilog="examples:\n  vj scene                                   # runs/ -> scene.toml\n"
               "  vj scene ~/vj/runs --out friday.toml --mosaic perfume\n"
               "  vj scene --force && vj live scene.toml --web\n", formatter_class=fmt)
    scene.add_argument("runs", nargs="?", type=Path, default=Path("runs"),
                       help="the runs folder vj gan train and vj mosaic build wrote (default runs)")
    scene.add_argument("--out", type=Path, default=Path("scene.toml"), help="the scene file (default scene.toml)")
    scene.add_argument("--mosaic", help="the mosaic a genre without one of its own name shows (default: the newest)")
    scene.add_argument("--force", action="store_true", help="replace --out if it exists")
    scene.set_defaults(func=cmd_scene)

    presets = sub.add_parser("presets", help="check scenes, genres, cue lists and mappings",
                             description="Check preset files: each file's kind is read from its content "
                                         "(or an explicit kind = \"scene\" | \"genre\" | \"cues\" | \"mapping\").",
                             epilog="examples:\n  vj presets check\n  vj presets check my-show.toml cues.toml\n",
                             formatter_class=fmt)
    psub = presets.add_subparsers(dest="presets_cmd", required=True, metavar="{check}")
    check = psub.add_parser("check", help="validate every preset file (or the ones given)",
                            description="Validate preset files: every key, value, action, genre and cue name.",
                            epilog="examples:\n  vj presets check\n  vj presets check my-show.toml --cues cues.toml\n"
                                   "  vj presets check ~/shows/friday/           # every TOML in it\n",
                            formatter_class=fmt)
    check.add_argument("files", nargs="*", type=Path, help="TOML files or folders of them to check (default: every "
                       "file in presets/)")
    check.add_argument("--cues", type=Path, help="a cue list whose names the scenes' keys may fire (default: none)")
    check.set_defaults(func=cmd_presets_check)

    fx = sub.add_parser("effects", help="list effects and blend modes with their inputs",
                        description="Every effect with its inputs (range, default, what it does), and the blend "
                                    "modes. A scene's effects are set up in its [[effects]] or a layer's effects.",
                        epilog="examples:\n  vj effects\n  vj osc --list      # the same inputs as OSC addresses\n",
                        formatter_class=fmt)
    fx.set_defaults(func=cmd_effects)


def _common(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``vj live`` and ``vj render``."""
    p.add_argument("scene", type=Path, nargs="?", default=Path("scene.toml"),
                   help="scene TOML (default scene.toml, which vj scene writes; see presets/scenes/)")
    p.add_argument("--cues", type=Path, help="cue list TOML to follow (default: none)")
    p.add_argument("--size", help="output size WxH, at most 8K (default: the scene's)")
    p.add_argument("--fps", type=arg_number(1, 240), help="frames per second, 1-240 (default: the scene's)")
    p.add_argument("--log", type=Path, help="also write the show log (genre switches, cues, failures) here; "
                                            "its folder is created (default: none)")
    p.add_argument("--device", default="cpu", help="torch device for live generators (default cpu)")
    p.add_argument("--render-scale", type=arg_number(0.25, 1), help="render layers at this share of the size, then "
                                                                    "upscale once (e.g. 0.5 on a 2-core laptop; "
                                                                    "default: the scene's, 1)")


def build_engine(scene: Path, exact: bool, cues: Path | None = None, size: str | None = None,
                 fps: float | None = None, log_file: Path | None = None, device: str = "cpu",
                 render_scale: float | None = None):
    from vj.control.cues import load_cues
    from vj.engine import Engine, attach_log_file
    from vj.scene import load_scene, parse_size

    if device != "cpu":  # a machine without that device: one line now, not a black layer later (torch loads here)
        from gan.model import pick_device

        pick_device(device)
    if scene == Path("scene.toml") and not scene.exists():  # no scene given, and none here
        raise FileNotFoundError(f"no scene.toml in {Path.cwd()}: vj scene writes one from your runs, or give a "
                                f"scene (e.g. demo-out/scene.toml after vj demo)")
    loaded = load_scene(scene)
    cue_list = load_cues(cues, loaded.bpm) if cues else None
    if log_file:
        attach_log_file(log_file)
    return Engine(loaded, exact=exact, size=parse_size(size, "--size") if size else None, fps=fps, cues=cue_list,
                  device=device, render_scale=render_scale)


def show_length(engine, audio) -> float:
    """Where a render without --seconds ends: the end of the track, else the last cue plus its fade."""
    from vj.control.cues import cue_list_end

    if audio is not None:
        return audio.seconds
    if engine.cues.cues:
        return cue_list_end(engine.cues.cues) + engine.store.values["genre.fade"] + 1.0
    raise ValueError("give --seconds: there is no cue list or --audio track to end the render at")


def render_show(scene: Path, out: Path, seconds: float | None = None, cues: Path | None = None,
                audio: Path | None = None, size: str | None = None, fps: float | None = None,
                log_file: Path | None = None, preset: str | None = None, render_scale: float | None = None,
                device: str = "cpu", progress: bool = True) -> tuple[int, bool]:
    """Render a scene frame-exact to ``out``; returns (frames written, interrupted by Ctrl-C)."""
    from vj.clock import FixedClock
    from vj.core.progress import Progress
    from vj.outputs.file import SHOW_PRESET, FileOutput

    engine = build_engine(scene, True, cues, size, fps, log_file, device, render_scale)
    try:
        track = None
        if audio:
            from vj.audio import AudioFileInput

            track = AudioFileInput(audio, engine.fps, engine.scene.audio.gain)
            engine.attach_audio(track)
        seconds = seconds if seconds is not None else show_length(engine, track)
        total = max(1, math.ceil(seconds * engine.fps - 1e-9))
        bar = Progress(total, "render", "frame", bar=None if progress else False)
        writer = FileOutput(out, engine.fps, engine.size, audio, preset or SHOW_PRESET)

        def on_frame(i: int) -> None:
            bar.update(1)
            if writer.failed is not None:  # the file is the render: nothing to go on for
                raise writer.failed

        n = engine.run(FixedClock(engine.fps), [writer], frames=total, on_frame=on_frame)
        bar.close()
    finally:
        engine.close()
    log.info("wrote %s (%d frames, %dx%d at %g fps)", out, n, *engine.size, engine.fps)
    failed = engine.store.guard.parts
    if failed:  # an overnight render's log is long: its end says what the file lacks
        names = ", ".join(sorted(failed)[:8])
        log.warning("%s: %d part%s failed while rendering and showed black or passed the frame through: %s%s "
                    "(the lines above say why)", out, len(failed), "s" * (len(failed) != 1), names,
                    ", ..." if len(failed) > 8 else "")
    return n, engine.interrupted


def cmd_render(args) -> int:
    _, interrupted = render_show(args.scene, args.out, args.seconds, args.cues, args.audio, args.size, args.fps,
                                 args.log, args.preset, args.render_scale, args.device,
                                 progress=not getattr(args, "no_progress", False))
    return 130 if interrupted else 0


def cmd_live(args) -> int:
    from vj.live import LiveControl, play_live

    engine = build_engine(args.scene, False, args.cues, args.size, args.fps, args.log, args.device,
                          args.render_scale)
    return play_live(engine, args.headless, args.fullscreen, args.display, args.seconds, args.record,
                     args.audio_device, LiveControl.from_args(args))


# ---------------------------------------------------------------- presets check
KINDS = ("scene", "genre", "cues", "mapping")


def preset_kind(path: Path) -> str:
    """A preset's kind from its content: an explicit ``kind``, else the keys it has."""
    from vj.core.config import ConfigError, read_toml

    data = read_toml(path)
    kind = data.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise ConfigError(f"{path}: kind = {kind!r} is not one of {', '.join(KINDS)}")
        return kind
    keys = set(data)
    if "cue" in keys:
        return "cues"
    if keys & {"cc", "note", "clock"}:
        return "mapping"
    if keys & {"layers", "genres", "output", "effects", "keys"}:
        return "scene"
    if keys & {"videos", "genre", "epochs", "size", "arch", "profile"}:
        return "genre"
    raise ConfigError(f"{path}: cannot tell what this preset is; add kind = \"scene\", \"genre\", \"cues\" or "
                      f"\"mapping\"")


def cmd_scene(args) -> int:
    from vj.core.runs import atomic_write_text
    from vj.scene import MAX_KEYED, scene_from_runs

    out = args.out
    if not args.runs.is_dir():
        raise FileNotFoundError(f"{args.runs}: no runs folder (vj gan train writes one: runs/ by default)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give the scene's file name, e.g. {out / 'scene.toml'}")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists: give another --out, or --force to replace it")
    made = scene_from_runs(args.runs, out, args.mosaic)
    out.parent.mkdir(parents=True, exist_ok=True)
    trial = out.with_name(f".{out.name}.check.toml")  # checked beside where it goes (its root is relative)
    try:
        trial.write_text(made.text)
        check_preset(trial)
    finally:
        trial.unlink(missing_ok=True)
    atomic_write_text(out, made.text)
    keyed = made.genres[:MAX_KEYED]
    keys = "key 1" if len(keyed) == 1 else f"keys 1-{len(keyed)}"
    print(f"wrote {out}: {len(made.genres)} genre{'s' * (len(made.genres) != 1)} ({keys}: {', '.join(keyed)})")
    others = [g for g in made.genres if g not in made.own_mosaics]
    if made.own_mosaics:
        rest = f"; {', '.join(others)} show{'s' * (len(others) == 1)} {made.mosaic}" if others else ""
        print(f"  mosaics: {', '.join(made.own_mosaics)} {'its' if len(made.own_mosaics) == 1 else 'their'} own{rest}")
    elif made.mosaic:
        print(f"  mosaic: {made.mosaic}")
    else:
        print("  no mosaic built yet (vj mosaic build LOOPS --name NAME, then vj scene --force): no mosaic layer")
    for note in made.notes:
        print(f"  {note}")
    print(f"play it: vj live {out} --web")
    return 0


def cmd_presets_check(args) -> int:
    from vj.core.config import ConfigError

    files = [f for given in (args.files or [PRESETS])  # a folder: every TOML in it (a show's own folder)
             for f in (sorted(given.rglob("*.toml")) if given.is_dir() else [given])]
    bad = 0
    for f in files:
        shown = f.resolve().relative_to(ROOT) if f.resolve().is_relative_to(ROOT) else f
        try:
            note = check_preset(f, args.cues)
            print(f"ok    {shown}{note}")
        except (ConfigError, ValueError) as exc:
            bad += 1
            print(f"error {exc}")
    print(f"{len(files) - bad} ok, {bad} with errors")
    return 1 if bad else 0


def check_preset(path: Path, cues: Path | None = None) -> str:
    """Validate one preset by its kind; a scene is loaded into an engine (parameters, keys, audio routes,
    cue actions). Returns a note for the ``ok`` line (media not there yet, and what to do)."""
    kind = preset_kind(path)
    if kind == "genre":
        from gan.config import load_preset

        load_preset(path).validate()
        return ""
    if kind == "cues":
        from vj.control.cues import load_cues

        load_cues(path, 120)
        return ""
    if kind == "mapping":
        from vj.control.mapping import load_mapping

        load_mapping(path)
        return ""
    from vj.control.cues import load_cues
    from vj.engine import Engine
    from vj.scene import load_scene

    logging.getLogger("vj.scene").setLevel(logging.ERROR)
    scene = load_scene(path)
    show_log = logging.getLogger("vj.show")  # a check is not a show: no "genre: ..." line
    level = show_log.level
    show_log.setLevel(logging.WARNING)
    try:
        Engine(scene, exact=True, cues=load_cues(cues, scene.bpm) if cues else None).close()
    finally:
        show_log.setLevel(level)
    if not scene.missing:
        return ""
    demo = "demo-out" in str(scene.path.read_text()) or scene.path.name == "demo.toml"
    advice = "run vj demo to make them" if demo else "those layers will show black until the files are there"
    return (f"\n      {len(scene.missing)} media not there yet ({advice}):\n"
            + "\n".join(f"      - {line.split('] ', 1)[-1]}" for line in scene.missing))


def cmd_effects(args) -> int:
    from vj.effects import BLEND_MODES, EFFECTS

    for fx in EFFECTS.values():
        print(f"{fx.name:14} {fx.help}")
        for p in fx.inputs:
            print(f"{'':14}   {p.name} = {p.shown(p.coerce(p.default))}  ({p.describe()}) {p.help}")
    print("blend modes: " + ", ".join(BLEND_MODES))
    return 0
