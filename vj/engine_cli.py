"""``vj live``, ``vj render``, ``vj presets check`` and ``vj effects``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("vj")
ROOT = Path(__file__).resolve().parents[1]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vj.media import X264_PRESETS
    from vj.outputs.file import SHOW_PRESET

    live = sub.add_parser("live", help="play a scene in a window (or headless) with keys, OSC and MIDI",
                          description="Play a scene live. Keys act at once; h shows the key help; Esc quits.")
    _common(live)
    live.add_argument("--fullscreen", action="store_true", help="fullscreen window")
    live.add_argument("--display", type=int, default=0, help="which display for fullscreen (default 0)")
    live.add_argument("--headless", action="store_true", help="no window (for NDI/Syphon-only rigs and tests)")
    live.add_argument("--seconds", type=float, help="stop after S seconds (default: until closed)")
    live.add_argument("--record", type=Path, help="also record the output, with its true timing, to this file")
    live.add_argument("--audio-device", nargs="?", const="", metavar="NAME",
                      help="a live audio input drives the scene's [audio] routes (extra: audio)")
    from vj.control.cli import add_live_control_args

    add_live_control_args(live)
    live.set_defaults(func=cmd_live)

    render = sub.add_parser("render", help="render a scene and cue list frame-exact to a video file",
                            description="The same show as `vj live`, with a fixed clock: frame-exact, repeatable.")
    _common(render)
    render.add_argument("--seconds", type=float, required=True, help="length of the render")
    render.add_argument("--out", type=Path, required=True, help="output video (mp4)")
    render.add_argument("--audio", type=Path, help="a track: drives the scene's [audio] routes, frame-exact, "
                                                   "and is muxed into the video")
    render.add_argument("--preset", default=SHOW_PRESET, choices=X264_PRESETS, metavar="PRESET",
                        help="x264 speed/size trade at the same quality: ultrafast, superfast (default: keeps "
                             "ahead of real time at 1080p30 on 2 cores), veryfast (two thirds the file, 1.5x the "
                             "encoding CPU) ... veryslow")
    render.set_defaults(func=cmd_render)

    presets = sub.add_parser("presets", help="check scenes, genres, cue lists and mappings in presets/")
    psub = presets.add_subparsers(dest="presets_cmd", required=True)
    check = psub.add_parser("check", help="validate every preset file (or the ones given)")
    check.add_argument("files", nargs="*", type=Path)
    check.set_defaults(func=cmd_presets_check)

    fx = sub.add_parser("effects", help="list effects and blend modes with their inputs")
    fx.set_defaults(func=cmd_effects)


def _common(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``vj live`` and ``vj render``."""
    p.add_argument("scene", type=Path, help="scene TOML (see presets/scenes/)")
    p.add_argument("--cues", type=Path, help="cue list TOML to follow")
    p.add_argument("--size", help="output size WxH (default: the scene's)")
    p.add_argument("--fps", type=float, help="frames per second (default: the scene's)")
    p.add_argument("--log", type=Path, help="also write the show log (genre switches, cues, failures) here")
    p.add_argument("--device", default="cpu", help="torch device for live generators (default cpu)")
    p.add_argument("--render-scale", type=float, help="render layers at this share of the size, then upscale "
                                                      "once (e.g. 0.5 on a 2-core laptop; default: the scene's, 1)")


def build_engine(args, exact: bool):
    from vj.engine import Engine, attach_log_file
    from vj.scene import load_cues, load_scene, parse_size

    scene = load_scene(args.scene)
    size = parse_size(args.size, "--size") if args.size else None
    cues = load_cues(args.cues, scene.bpm) if args.cues else None
    if args.log:
        attach_log_file(args.log)
    return Engine(scene, exact=exact, size=size, fps=args.fps, cues=cues, device=args.device,
                  render_scale=getattr(args, "render_scale", None))


def cmd_render(args) -> int:
    from tqdm import tqdm

    from vj.clock import FixedClock
    from vj.outputs.file import SHOW_PRESET, FileOutput

    engine = build_engine(args, exact=True)
    audio = getattr(args, "audio", None)
    if audio:
        from vj.control.audio import AudioFileInput

        engine.attach_audio(AudioFileInput(audio, engine.fps, engine.scene.audio.gain))
    total = round(args.seconds * engine.fps)
    bar = tqdm(total=total, desc="render", unit="frame")
    try:
        out = FileOutput(args.out, engine.fps, engine.size, audio, getattr(args, "preset", SHOW_PRESET))
        n = engine.run(FixedClock(engine.fps), [out], frames=total, on_frame=lambda i: bar.update(1))
    finally:
        bar.close()
        engine.close()
    log.info("wrote %s (%d frames, %dx%d at %g fps)", args.out, n, *engine.size, engine.fps)
    return 0


def cmd_live(args) -> int:
    from vj.clock import RealtimeClock
    from vj.control.cli import start_live_control
    from vj.outputs.file import RecordOutput

    engine = build_engine(args, exact=False)
    outputs = []
    window = None
    if not args.headless:
        from vj.outputs.window import WindowOutput

        window = WindowOutput(engine.size, engine.store, engine.scene.keys, args.fullscreen, args.display)
        outputs.append(window)
    if args.record:
        outputs.append(RecordOutput(args.record, engine.fps, engine.size))
    controls = start_live_control(args, engine, outputs)
    if getattr(args, "audio_device", None) is not None:
        from vj.control.audio import AudioDeviceInput

        try:
            device = AudioDeviceInput(args.audio_device or None, engine.scene.audio.gain)
            engine.attach_audio(device)
            controls.append(device)
        except ValueError as exc:
            log.warning("audio: %s", exc)
    status_every = round(10 * engine.fps)

    def status(i: int) -> None:  # a status line every 10 s: what a headless rig shows instead of a window
        if i % status_every == 0:
            recent = sorted(list(engine.frame_ms)[-status_every:])
            log.info("status: %d frames, render p95 %.1f ms, genre %s, %s", i, recent[int(len(recent) * 0.95)],
                     engine.genre, engine.store.status())

    try:
        n = engine.run(RealtimeClock(engine.fps), outputs, seconds=args.seconds, on_frame=status)
    finally:
        for c in controls:
            c.close()
        engine.close()
    ms = sorted(engine.frame_ms) or [0.0]
    log.info("played %d frames; render median %.1f ms, p95 %.1f ms; control: %s", n, ms[len(ms) // 2],
             ms[int(len(ms) * 0.95)], engine.store.status())
    if args.record:
        log.info("recorded %s", args.record)
    return 0


def cmd_presets_check(args) -> int:
    from vj.config import ConfigError

    files = args.files or sorted((ROOT / "presets").rglob("*.toml"))
    bad = 0
    for f in files:
        try:
            note = check_preset(f)
            print(f"ok    {f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}{note}")
        except (ConfigError, ValueError) as exc:
            bad += 1
            print(f"error {exc}")
    print(f"{len(files) - bad} ok, {bad} with errors")
    return 1 if bad else 0


def check_preset(path: Path) -> str:
    """Validate one preset by its folder: scenes/, genres/, cues/ or mappings/."""
    kind = path.parent.name
    if kind == "genres":
        from gan.config import load_preset

        load_preset(path).validate()
        return ""
    if kind == "cues":
        from vj.scene import load_cues

        load_cues(path, 120)
        return ""
    if kind == "mappings":
        from vj.control.mapping import load_mapping

        load_mapping(path)
        return ""
    from vj.engine import Engine
    from vj.scene import load_scene

    logging.getLogger("vj.scene").setLevel(logging.ERROR)
    scene = load_scene(path)
    Engine(scene, exact=True).close()  # checks parameters named in [initial] and effect ids
    return f" ({len(scene.missing)} media files not there yet: run vj demo)" if scene.missing else ""


def cmd_effects(args) -> int:
    from vj.effects import BLEND_MODES, EFFECTS

    for fx in EFFECTS.values():
        print(f"{fx.name:14} {fx.help}")
        for i in fx.inputs:
            print(f"{'':14}   {i.name} = {i.default:g}  ({i.lo:g}..{i.hi:g}) {i.help}")
    print("blend modes: " + ", ".join(BLEND_MODES))
    return 0

