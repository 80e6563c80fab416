"""The show loop: clock -> drain events -> commands and cues -> render layers -> composite -> outputs.

Everything that changes state arrives as an event in the parameter store (``vj.params``) and is applied
on this thread at the start of a frame; commands (``vj.commands``) go to one handler each. What the loop
calls lives elsewhere: the compositor (``vj.compositor``: layers, effects, blends, bands), the genres
(``vj.genres``: preparer thread, pending switch, fades, autopilot), cue lists and keys (``vj.control``),
the tempo (``vj.tempo``). Any part that fails (a control's poll, a source, an effect, an output) is logged
once by the show's guard (``vj.guard``) and shows black or is dropped for that part only.
"""
from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from vj import mix as kernels
from vj import music
from vj.commands import COMMANDS, check_action, parse_action
from vj.compositor import Compositor, EffectRuntime, Layer, Workers
from vj.control.cues import Cue, CuePlayer
from vj.control.keys import KeyBindings
from vj.core.config import ConfigError
from vj.effects import FrameContext, warm_up as effects_warm_up
from vj.genres import Genres
from vj.guard import show_log
from vj.params import Event, Param, ParamStore
from vj.scene import Scene, frame_bytes
from vj.sources import SOURCES, ClipLibrary, Source, SourceEnv
from vj.music import Music
from vj.tempo import Tempo

MASTER = (  # the show's own parameters: name, default (None: the scene's), range, kind, help
    ("master.fader", 1.0, 0, 1, "float", "master brightness"),
    ("master.crossfade", 0.5, 0, 1, "float", "A/B crossfader: 0 = deck A, 1 = deck B, both full in the middle"),
    ("tempo.bpm", None, 20, 300, "float", "beats per minute (/vj/bpm is the same)"),
    ("genre.fade", None, 0, 60, "float", "genre crossfade seconds"),
    ("autopilot.bars", None, 0, 1024, "int", "switch genre every N bars (0: off)"),
)
QUANTIZE = ("off", "beat", "bar")  # genre.quantize: a switch, a cue or a jump asked for waits for the next one
QUANTIZED = ("genre", "cue", "jump")


class Output(Protocol):
    def write(self, frame: np.ndarray, t: float) -> None: ...
    def close(self) -> None: ...


class Engine:
    def __init__(self, scene: Scene, exact: bool = False, size: tuple[int, int] | None = None,
                 fps: float | None = None, cues: list[Cue] | None = None, device: str = "cpu",
                 render_scale: float | None = None, threads: int | None = None):
        self.scene = scene
        self.exact = exact
        self.size = size or scene.size            # what outputs receive
        scale = render_scale or scene.render_scale
        if not 0.25 <= scale <= 1:
            raise ValueError(f"render scale {scale:g} must be from 0.25 to 1")
        # layers, blends and effects run at render_size; one smooth upscale makes the output size
        self.render_size = tuple(max(16, round(v * scale / 2) * 2) for v in self.size)
        self.fps = fps or scene.fps
        if not (math.isfinite(self.fps) and 1 <= self.fps <= 240):
            raise ValueError(f"fps {self.fps:g} must be from 1 to 240")
        _check_memory(frame_bytes(scene, self.size, scale))
        self.device = device
        self.index = 0
        self.t = 0.0
        self.stopped = False
        self.interrupted = False                          # the run ended by Ctrl-C
        self.before_frame: list[Callable[[], object]] = []  # e.g. the OSC server's poll: input right before a frame
        self.after_frame: list[Callable[[np.ndarray, int], None]] = []  # e.g. the web preview: (frame, index)
        self.learners: list[Callable[[str], None]] = []   # MIDI learn: who takes a ``learn`` command
        self.output_names: list[str] = []                 # what the show is sent to (for the web's status)
        self.frame_ms: deque[float] = deque(maxlen=36000)  # recent render times (a live show runs for hours)

        self.store = ParamStore()
        scene_values = {"tempo.bpm": scene.bpm, "genre.fade": scene.fade, "autopilot.bars": scene.autopilot_bars}
        for name, default, lo, hi, kind, help in MASTER:
            self.store.define(Param(name, scene_values.get(name, default), lo, hi, kind, help=help))
        self.store.define(Param("genre.quantize", scene.quantize, kind="choice", choices=QUANTIZE,
                                help="start a genre switch, a cue or a clip jump on the next beat or bar"))
        music.define(self.store, scene.tempo_source)
        self._waiting: list[tuple[float, Event]] = []  # quantized commands: (the beat they wait for, command)
        self.tempo = Tempo(scene.bpm)
        self.music = Music(self.store, self.tempo, scene.audio)
        self.audio_frame = None  # the audio analysis of this frame (None without an input)
        self.library = ClipLibrary(self.render_size, keep=2 * max(1, len(scene.genres)) + 2, background=not exact)
        self.workers = Workers(threads)
        kernels.warm_up()  # compiled (or loaded from numba's cache) now, not in the first frame of the show
        effects_warm_up()
        self.layers = [Layer(spec, self._make_source, self.store, None if exact else self._background)
                       for spec in scene.layers]
        self.master_fx = [EffectRuntime(e) for e in scene.effects]
        ids = [e.spec.id for layer in self.layers for e in layer.effects] + [e.spec.id for e in self.master_fx]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ConfigError(f"{scene.path}: effect id {sorted(dup)[0]!r} is used twice; give each an id")
        for fx in self.master_fx:
            for p in fx.params():
                self.store.define(p)
        for name, value in scene.initial.items():
            if name not in self.store:
                raise ConfigError(f"{scene.path} [initial]: {name!r} is not a parameter (see vj osc --list)")
            try:
                self.store.values[name] = self.store.params[name].coerce(value)
            except ValueError as exc:
                raise ConfigError(f"{scene.path} [initial]: {name} = {value!r}: {exc}") from None
        self.cues = CuePlayer(cues or [], self.store.push)
        self.keys = KeyBindings(scene.keys)
        for problem in self.check_actions():
            raise ConfigError(problem)
        follows = any(layer.kind.follows_genre for layer in self.layers)
        self.genres = Genres(list(scene.genres), scene.genre, self.store,
                             prepare=self._prepare if follows and not exact else None)
        self.compositor = Compositor(self.render_size, self.layers, self.master_fx, self.store, self.workers)
        self.handlers: dict[str, Callable[[Event], None]] = {
            "genre": lambda ev: self.genres.request(str(ev.value), self.t if ev.at is None else ev.at, ev.source),
            "cue": self._cue, "tap": self._tap, "jump": self._jump, "learn": self._learn}
        assert set(self.handlers) == set(COMMANDS), "every command needs a handler"

    # -- what the scene and its cues may ask for
    def check_actions(self) -> list[str]:
        """Every key, audio route and cue event checked against the parameters, genres and cues: one line
        per problem (``vj presets check`` lists them; the engine refuses to start on the first)."""
        where = self.scene.path
        genres, cues = list(self.scene.genres), list(self.cues.named)
        problems = []
        for key, (name, value) in self.keys.actions.items():
            why = check_action(name, value, self.store.params, genres, cues)
            if why:
                problems.append(f"{where} [keys] {key!r}: {why}")
        route = self.scene.audio
        for feature, param in route.follow.items():
            if param not in self.store or self.store.params[param].readonly:
                problems.append(f"{where} [audio] {feature} = {param!r} is not a parameter (see vj osc --list)")
        for kind, action in route.fire.items():
            try:
                why = check_action(*parse_action(action), self.store.params, genres, cues)
            except ValueError as exc:
                why = str(exc)
            if why:
                problems.append(f"{where} [audio] {kind} = {action!r}: {why}")
        for cue in self.cues.cues:
            for name, value in cue.events:
                why = check_action(name, value, self.store.params, genres, cues)
                if why:
                    problems.append(f"cue {cue.label}: {why}")
        return problems

    # -- sources
    def _make_source(self, kind: str, genre: str | None) -> Source:
        spec = self.scene.genres.get(genre) if genre else None
        if SOURCES[kind].follows_genre and spec is None:
            raise ValueError("the scene has no genre for this layer")
        seed = sorted(self.scene.genres).index(genre) if genre else 0
        env = SourceEnv(self.render_size, self.exact, self.library, self.device, seed)
        return SOURCES[kind].create(env, spec)

    def _prepare(self, genre: str) -> None:
        for layer in self.layers:
            if layer.kind.follows_genre:
                layer.make(genre)

    def _background(self, job: Callable[[], object]) -> None:
        self.genres.submit(job)

    # -- music
    def attach_audio(self, source) -> None:
        """An audio input (``vj.audio.AudioFileInput`` / ``AudioDeviceInput``) for the analysis, the scene's
        ``[audio]`` routes and the beat tracker."""
        self.music.audio = source

    def attach_link(self, session) -> None:
        """An Ableton Link session (``vj.control.link.LinkSession``): the tempo follows it while
        ``tempo.source`` is link, and tempo changes made here go to its peers."""
        self.music.link = session

    # -- commands: one handler each
    def _cue(self, ev: Event) -> None:
        cue = self.cues.named.get(str(ev.value))
        if cue is None:
            self.store.reject("unknown cue", f"unknown cue {ev.value!r} (known: {', '.join(self.cues.named) or 'none'})",
                              ev.source, str(ev.value))
        else:
            self.cues.fire(cue, self.t)

    def _tap(self, ev: Event) -> None:
        self.music.tap(self.t, ev.source)

    def _jump(self, ev: Event) -> None:
        salt = int(self.tempo.beat(self.t) * 1000)
        for layer in self.layers:
            layer.command(self.genres.current, "jump", salt)

    def _learn(self, ev: Event) -> None:
        if not self.learners:
            self.store.reject("no midi", "MIDI learn needs a MIDI input (vj live --midi)", ev.source)
        for learner in self.learners:
            learner(str(ev.value))

    def _quantize(self, ev: Event) -> bool:
        """Hold a genre switch, named cue or jump a control asked for until the next beat or bar (cue lists
        are timed already). True when it waits."""
        q = {"beat": 1, "bar": 4}.get(self.store.choice("genre.quantize"))
        if q is None or ev.name not in QUANTIZED or ev.source == "cue" or ev.at is not None:
            return False
        beat = self.tempo.beat(self.t)
        target = -(-beat // q) * q  # the next multiple of q (or this one, exactly on it)
        if target - beat < 1e-6:
            return False
        self._waiting.append((target, ev))
        return True

    def _release(self, beat: float) -> None:
        """Quantized commands whose beat has come; a genre's fade starts exactly on the beat (frame-exact)."""
        due = [(b, ev) for b, ev in self._waiting if beat >= b - 1e-9]
        if not due:
            return
        self._waiting = [(b, ev) for b, ev in self._waiting if beat < b - 1e-9]
        for b, ev in due:
            ev.at = self.t - (beat - b) * 60.0 / self.tempo.rate
            self._handle(ev)

    def _handle(self, ev: Event) -> None:
        try:
            self.handlers[ev.name](ev)
        except (TypeError, ValueError) as exc:
            self.store.reject("bad value", f"{ev.name} {ev.value!r}: {exc}", ev.source)

    def _apply_events(self) -> None:
        for _ in range(8):  # a cue fired by a command pushes events of its own: drain again (bounded)
            drained = self.store.drain()
            if "tempo.bpm" in drained.changed:
                self.music.bpm_set(drained.changed["tempo.bpm"], drained.sources["tempo.bpm"])
            for ev in drained.commands:
                if not self._quantize(ev):
                    self._handle(ev)
            if not drained.commands:
                return

    # -- one frame
    def step(self, t: float) -> np.ndarray:
        t0 = time.perf_counter()
        self.t = t
        for poll in self.before_frame:
            self._guarded(poll, "control input")
        self.cues.due(t)
        self._guarded(lambda: setattr(self, "audio_frame", self.music.step(t, self.index)), "audio and tempo")
        self.genres.poll(t)
        self._apply_events()
        beat = self.tempo.beat(t)
        self._release(beat)
        self.genres.autopilot(beat, int(self.store.values["autopilot.bars"]), t)
        self._apply_events()
        g = self.genres
        fade = g.fade(t, self.store.values["genre.fade"])
        ctx = FrameContext(t=t, beat=beat, index=self.index, audio=self.audio_frame if self.music.audio else None)
        frame = self.compositor.composite(ctx, g.current, g.fade_from, fade)
        if self.render_size != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
        self.frame_ms.append((time.perf_counter() - t0) * 1000)
        for hook in self.after_frame:
            self._guarded(lambda: hook(frame, self.index), "frame hook")
        self.index += 1
        return frame

    # -- the loop
    def run(self, clock, outputs: list[Output], seconds: float | None = None, frames: int | None = None,
            on_frame: Callable[[int], None] | None = None) -> int:
        """Run until ``frames`` are shown, ``seconds`` of the clock have passed (wall time with a realtime
        clock, show time with a fixed one), ``stop()`` is called, or Ctrl-C. Returns frames shown."""
        outputs = list(outputs)
        shown = 0
        try:
            while not self.stopped and (frames is None or shown < frames):
                t = clock.tick()
                if seconds is not None and t >= seconds - 1e-9:
                    break
                frame = self.step(t)
                for out in list(outputs):
                    try:
                        out.write(frame, t)
                    except StopIteration:  # the window was closed
                        self.stopped = True
                    except Exception as exc:  # noqa: BLE001 - an output failing must not stop the show
                        show_log.warning("output %s failed and was dropped: %s", type(out).__name__, exc)
                        outputs.remove(out)
                shown += 1
                if on_frame:
                    on_frame(shown)
        except KeyboardInterrupt:
            show_log.info("stopped (Ctrl-C) after %d frames", shown)
            self.interrupted = True
        finally:
            for out in outputs:
                try:
                    out.close()
                except Exception as exc:  # noqa: BLE001
                    show_log.warning("output %s did not close cleanly: %s", type(out).__name__, exc)
        return shown

    def _guarded(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a control input failing must not stop the show
            self.store.guard.warn(f"input:{what}:{type(exc).__name__}", "%s failed (%s: %s); the show goes on",
                                  what, type(exc).__name__, exc)

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.genres.close()
        self.compositor.close()
        self.library.close()
        self.workers.close()


def _check_memory(need: int) -> None:
    """Refuse, in one line, a scene whose frames alone would not fit in the machine's free memory."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return
    if need > 0.8 * free:
        raise ValueError(f"this scene at this size needs about {need / 2**30:.1f} GiB for its frames, "
                         f"{free / 2**30:.1f} GiB are free: lower --size or --render-scale, or use fewer layers")


def attach_log_file(path: str | Path) -> None:
    import logging

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    show_log.addHandler(handler)
