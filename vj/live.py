"""A live show: the engine wired to its window, controls (OSC, MIDI, web, audio), extra outputs and status.

``play_live`` is what ``vj live`` and ``vj demo --live`` run; ``ShowAPI`` is what the web surface sees of
the engine (the state, the parameter schema, validated changes and commands); ``StatusLine`` is the
headless rig's pulse in the log.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vj.clock import RealtimeClock
from vj.commands import COMMANDS, check_action, resolve
from vj.audio import AudioDeviceInput
from vj.control import parse_host_port
from vj.control.link import LinkSession, LinkUnavailable
from vj.control.mapping import load_mapping
from vj.control.midi import MidiControl, MidiUnavailable
from vj.control.osc import OscFeedback, OscRouter, OscServer
from vj.control.web import WebServer, encode_jpeg, parse_address, print_address
from vj.core.config import PRESETS
from vj.core.media import MediaError, fit, probe, read_frames, read_image
from vj.core.runs import GanRun
from vj.engine import Engine
from vj.guard import show_log
from vj.outputs.file import RecordOutput
from vj.outputs.platform import OutputUnavailable, open_output
from vj.outputs.window import NoDisplay, WindowOutput
from vj.sources.mosaic import shared_built

log = logging.getLogger("vj")


@dataclass
class LiveControl:
    """What ``vj live`` listens to and sends to, besides its window (the control and output flags)."""
    osc_port: int | None = None
    osc_host: str = "127.0.0.1"
    osc_allow: list[str] | None = None
    osc_feedback: str | None = None
    midi: str | None = None
    mapping: Path = PRESETS / "mappings" / "generic.toml"
    ndi: str | None = None
    syphon: str | None = None
    spout: str | None = None
    vcam: bool = False
    web: str | None = None        # [HOST:]PORT of the control page and API ("off" or None: no web)
    link: bool = False            # join an Ableton Link session and follow it

    @classmethod
    def from_args(cls, args) -> "LiveControl":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def start_live_control(control: LiveControl, engine: Engine, outputs: list) -> list:
    """Start what the flags ask for; each optional piece that cannot run logs one line and the rest goes on
    (a port that is in use, or a bad address, is an error before the show starts). Returns what to close."""
    closers = []
    try:
        for kind in ("ndi", "syphon", "spout", "vcam"):
            name = getattr(control, kind)
            if name:
                try:
                    outputs.append(open_output(kind, "reframe-vj" if name is True else name, engine.size, engine.fps))
                    log.info("output: %s on", kind)
                except OutputUnavailable as exc:
                    log.warning("output: %s", exc)
        if control.osc_feedback:
            fb = OscFeedback(*parse_host_port(control.osc_feedback, "--osc-feedback"))
            engine.store.on_change(fb)
            fb.send_state(engine.store)  # the controller's faders start where the show is
            closers.append(fb)
        if control.osc_port is not None:
            server = OscServer(OscRouter(engine.store), control.osc_host, control.osc_port, control.osc_allow)
            engine.before_frame.append(server.poll)
            closers.append(server)
        if control.midi is not None:
            try:
                midi = MidiControl(engine.store, load_mapping(control.mapping), control.midi, control.mapping)
                engine.learners.append(midi.arm)
                closers.append(midi)
            except MidiUnavailable as exc:
                log.warning("midi: %s", exc)
        if control.link:
            try:
                session = LinkSession(engine.store.values["tempo.bpm"])
                engine.attach_link(session)
                engine.store.set("tempo.source", "link", "link")
                closers.append(session)
            except LinkUnavailable as exc:
                log.warning("link: %s", exc)
        if control.web and control.web != "off":
            closers.append(start_web(engine, control.web))
    except BaseException:
        for c in closers:
            c.close()
        raise
    return closers


def start_web(engine: Engine, address: str, runs: Path | None = None):
    host, port = parse_address(address)
    server = WebServer(ShowAPI(engine), host, port, runs=runs)
    engine.store.on_change(server.on_change)
    engine.after_frame.append(server.frame)
    print_address(server)
    return server


class ShowAPI:
    """The engine as the web surface sees it. Reads come from the web's thread (values are read, never
    changed there); every change goes through the store's queue, validated here first so a bad request is
    answered at once with the problem."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self._thumbs: dict[str, bytes | None] = {}
        self._frames: deque[tuple[float, int]] = deque(maxlen=8)  # (time, frame) of the last 2 s of status reads

    # -- reads
    def state(self) -> dict:
        e = self.engine
        return {"genre": e.genres.current, "genres": list(e.scene.genres), "params": dict(self.store.values),
                "state": dict(self.store.state), "tempo": self._tempo(), "cues": list(e.cues.named),
                "fade": self._fade(), "midi": bool(e.learners), "keys": e.keys.for_browser()}

    def schema(self) -> dict:
        e = self.engine
        commands = []
        for c in COMMANDS.values():
            choices = {"genre": list(e.scene.genres), "cue": list(e.cues.named)}.get(c.arg)
            commands.append({"name": c.name, "argument": c.arg, "help": c.help, "choices": choices})
        return {"params": [p.schema() for p in self.store.params.values()], "commands": commands,
                "layers": [{"name": layer.spec.name, "source": layer.spec.source, "deck": layer.spec.deck,
                            "effects": [fx.spec.id for fx in layer.effects]} for layer in e.layers],
                "effects": [{"id": fx.spec.id, "type": fx.spec.type} for fx in e.master_fx],
                "keys": e.keys.for_browser(), "actions": {k: list(v) for k, v in e.keys.actions.items()}}

    def status(self) -> dict:
        e, s = self.engine, self.store
        recent = sorted(list(e.frame_ms)[-120:]) or [0.0]
        return {"t": e.t, "frames": e.index, "fps": self._fps(), "render_p95_ms": recent[int(len(recent) * 0.95)],
                "genre": e.genres.current, "fade": self._fade(), "tempo": self._tempo(),
                "events": s.received, "superseded": s.superseded, "dropped": sum(s.dropped.values()),
                "dropped_by": dict(s.dropped), "errors": list(s.errors)[-5:], "outputs": self._outputs()}

    def _tempo(self) -> dict:
        e = self.engine
        return {"bpm": e.tempo.bpm, "beat": e.tempo.beat(e.t), "source": e.music.leader}

    def _fade(self) -> float:
        g, e = self.engine.genres, self.engine
        seconds = self.store.values["genre.fade"]
        if g.fade_from is None or seconds <= 0:
            return 1.0
        return max(0.0, min(1.0, (e.t - g.fade_start) / seconds))

    def _fps(self) -> float:
        now = time.monotonic()
        self._frames.append((now, self.engine.index))
        (t0, i0), (t1, i1) = self._frames[0], self._frames[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0

    def _outputs(self) -> list[str]:
        return list(getattr(self.engine, "output_names", []))

    # -- changes
    def set(self, name: str, value: Any, source: str) -> tuple[bool, Any]:
        name = resolve(str(name))
        param = self.store.params.get(name)
        if param is None:
            return False, f"{name[:60]!r} is not a parameter (GET /api/v1/schema lists them)"
        if param.readonly:
            return False, f"{name} is read-only"
        try:
            coerced = param.coerce(value) if not isinstance(value, (list, dict)) else param.coerce(None)
        except (TypeError, ValueError) as exc:
            return False, f"{name}: {exc}"
        self.store.push(name, value, source)
        return True, coerced

    def command(self, name: str, arg: str | None, source: str) -> str | None:
        if resolve(name) != name:  # /bpm/128: the alias of a parameter
            ok, result = self.set(name, arg, source)
            return None if ok else result
        if name not in COMMANDS:
            return f"unknown command {name[:40]!r} (known: {', '.join(COMMANDS)}; parameters: PUT /api/v1/params/NAME)"
        e = self.engine
        why = check_action(name, arg, self.store.params, e.scene.genres, e.cues.named)
        if why:
            return why
        self.store.push(name, arg, source)
        return None

    def press(self, key: str, source: str) -> bool:
        return self.engine.keys.press(key, self.store, source)

    def count(self, reason: str) -> None:
        self.store.drop(reason)

    def thumbnail(self, genre: str) -> bytes | None:
        """A small picture of a genre: the middle of its first clip, else a tile of its mosaic."""
        if genre not in self._thumbs:
            self._thumbs[genre] = _thumbnail(self.engine.scene.genres.get(genre))
        return self._thumbs[genre]


def _thumbnail(genre) -> bytes | None:
    """The middle frame with the most detail among a genre's first clips (a learning clip of dark particles
    says less than one of the loops), else a tile of its mosaic, else its generator's latest sample (a genre
    that is a trained run alone)."""
    if genre is None:
        return None
    frames = []
    for clip in genre.clips[:4]:
        try:
            info = probe(clip)
            frames.append(next(read_frames(clip, size=(192, 108), start=info.duration / 2 if info.duration > 1 else 0)))
        except (MediaError, OSError, StopIteration):
            continue
    if frames:
        return encode_jpeg(max(frames, key=lambda f: float(f.std())), 192)
    if genre.mosaic is not None:
        try:
            built = shared_built(genre.mosaic)
            return encode_jpeg(fit(built.atlas[built.grid[len(built.grid) // 2]], (192, 108)), 192)
        except (ValueError, OSError):
            return None
    samples = GanRun(genre.generator.parent).sample_files(latent=0) if genre.generator is not None else []
    if samples:
        try:
            return encode_jpeg(fit(read_image(samples[-1]), (192, 108)), 192)
        except (MediaError, OSError):
            return None
    return None


class StatusLine:
    """Every 10 s of show: frames, render p95, genre, tempo and control counts (what a headless rig shows
    instead of a window)."""

    def __init__(self, engine: Engine, every: float = 10.0):
        self.engine = engine
        self.every = round(every * engine.fps)

    def __call__(self, i: int) -> None:
        if i % self.every:
            return
        e = self.engine
        recent = sorted(list(e.frame_ms)[-self.every:])
        log.info("status: %d frames, render p95 %.1f ms, genre %s, %.1f BPM (%s), %s", i,
                 recent[int(len(recent) * 0.95)], e.genres.current, e.tempo.bpm, e.music.leader, e.store.status())


def play_live(engine: Engine, headless: bool = False, fullscreen: bool = False, display: int = 0,
              seconds: float | None = None, record: Path | None = None, audio_device: str | None = None,
              control: LiveControl | None = None) -> int:
    """Play ``engine``'s scene live until closed, ``seconds`` of wall time, or Ctrl-C (returns 130 then).
    The engine is closed at the end."""
    outputs, controls, ran = [], [], False
    try:
        if not headless:
            try:
                outputs.append(WindowOutput(engine.size, engine.store, engine.keys, fullscreen, display))
            except NoDisplay as exc:
                raise ValueError(str(exc)) from None
        if record:
            outputs.append(RecordOutput(record, engine.fps, engine.size))
        controls = start_live_control(control or LiveControl(), engine, outputs)
        engine.output_names = [type(o).__name__.removesuffix("Output").lower() for o in outputs] + \
            (["web"] if control and control.web and control.web != "off" else [])
        if audio_device is not None:
            try:
                device_input = AudioDeviceInput(audio_device or None, engine.scene.audio.gain)
                engine.attach_audio(device_input)
                controls.append(device_input)
            except ValueError as exc:
                log.warning("audio: %s", exc)
        ran = True  # run() closes the outputs, whatever happens
        n = engine.run(RealtimeClock(engine.fps), outputs, seconds=seconds, on_frame=StatusLine(engine))
    finally:
        for c in controls:
            c.close()
        if not ran:  # outputs opened before a failure (a port in use...)
            for o in outputs:
                o.close()
        engine.close()
    ms = sorted(engine.frame_ms) or [0.0]
    show_log.info("played %d frames; render median %.1f ms, p95 %.1f ms; control: %s", n, ms[len(ms) // 2],
                  ms[int(len(ms) * 0.95)], engine.store.status())
    if record:
        log.info("recorded %s", record)
    return 130 if engine.interrupted else 0
