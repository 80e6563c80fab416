"""The show loop: clock -> drain events -> cues / genre switches -> render layers -> composite -> outputs.

Everything that changes state arrives as an event in the parameter store and is applied on this
thread at the start of a frame. A layer that raises shows black and is logged once; an output that
raises is dropped and logged once; the show goes on.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from vj.config import ConfigError
from vj import mix as kernels
from vj.effects import BLEND_MODES, EFFECTS, FrameContext, warm_up as effects_warm_up
from vj.params import Param, ParamStore, parse_action
from vj.scene import Cue, EffectSpec, LayerSpec, Scene
from vj.sources import GENRE_KINDS, ClipLibrary, ClipSource, GeneratorSource, GradientSource, SolidSource, Source
from vj.tempo import Tempo

show_log = logging.getLogger("vj.show")


BAND_ROWS = 96  # rows per compositing band: a band of every layer fits in a core's cache at 1080p


class Workers:
    """Runs one frame's independent jobs on the calling thread plus a small pool, and waits.

    Each thread takes the next job in order until none are left, so one slow layer (the mosaic) does not
    hold back a thread that has finished its share. The work is OpenCV, numba and torch calls, which
    release the GIL, so two cores mix two bands of a frame at once. Results come back in job order.
    """

    def __init__(self, threads: int | None = None):
        self.n = max(1, threads if threads is not None else min(4, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix="mix") if self.n > 1 else None

    def map(self, fn: Callable, items: list) -> list:
        if self.pool is None or len(items) < 2:
            return [fn(i) for i in items]
        out = [None] * len(items)
        order = itertools.count()  # next() on a count is atomic under the GIL

        def drain():
            for i in order:
                if i >= len(items):
                    return
                out[i] = fn(items[i])

        futures = [self.pool.submit(drain) for _ in range(min(self.n, len(items)) - 1)]
        drain()
        for f in futures:
            f.result()
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class Output(Protocol):
    def write(self, frame: np.ndarray, t: float) -> None: ...
    def close(self) -> None: ...


@dataclass
class EffectRuntime:
    spec: EffectSpec
    ctx_state: dict = field(default_factory=dict)

    def params(self) -> list[Param]:
        fx = EFFECTS[self.spec.type]
        out = [Param(f"fx.{self.spec.id}.on", 1, kind="bool", help=f"{fx.name} on/off")]
        for inp in fx.inputs:
            out.append(Param(f"fx.{self.spec.id}.{inp.name}", self.spec.values.get(inp.name, inp.default),
                             inp.lo, inp.hi, help=inp.help or fx.help))
        return out

    def apply(self, frame: np.ndarray, ctx: FrameContext, store: ParamStore, owned: bool = False) -> np.ndarray:
        """``owned``: the frame is the caller's to overwrite (a row band); else local effects get a copy."""
        prefix = f"fx.{self.spec.id}."
        if store.values[prefix + "on"] < 0.5:
            return frame
        fx = EFFECTS[self.spec.type]
        inputs = {i.name: store.values[prefix + i.name] for i in fx.inputs}
        ctx.state = self.ctx_state
        return fx.fn(frame if owned or not fx.local else frame.copy(), ctx, **inputs)


class Layer:
    """One layer: a source per genre (for clip/generator/mosaic) or one source, its effects and mix settings."""

    def __init__(self, spec: LayerSpec, make_source: Callable[[str, str | None], Source], store: ParamStore):
        self.spec = spec
        self.make_source = make_source
        self.sources: dict[str | None, Source | None] = {}
        self._making = threading.Lock()  # the frame loop and the engine's preparer thread both make sources
        self.failed: set = set()
        self.effects = [EffectRuntime(e) for e in spec.effects]
        self.prefix = f"layer.{spec.name}."
        store.define(Param(self.prefix + "opacity", spec.opacity, help="layer opacity"))
        store.define(Param(self.prefix + "blend", list(BLEND_MODES).index(spec.blend), 0, len(BLEND_MODES) - 1,
                           kind="choice", choices=tuple(BLEND_MODES), help="blend mode"))
        kind_params = {"clip": ClipSource, "generator": GeneratorSource, "solid": SolidSource,
                       "gradient": GradientSource}.get(spec.source)
        if spec.source == "mosaic":
            from mosaic.animate import MosaicSource
            kind_params = MosaicSource
        self.source_params = kind_params.params if kind_params else ()
        for p in self.source_params:
            value = spec.settings.get(p.name, p.default)
            store.define(Param(self.prefix + p.name, p.coerce(value), p.lo, p.hi, p.kind, p.choices, p.help))
        unknown = set(spec.settings) - {p.name for p in self.source_params}
        if unknown:
            raise ConfigError(f"layer {spec.name!r}: settings key {sorted(unknown)[0]!r} is not a {spec.source} "
                              f"setting ({', '.join(p.name for p in self.source_params)})")
        for fx in self.effects:
            for p in fx.params():
                store.define(p)

    def key(self, genre: str | None) -> str | None:
        return genre if self.spec.source in GENRE_KINDS else None

    def source(self, genre: str | None) -> Source | None:
        k = self.key(genre)
        if k not in self.sources:
            with self._making:
                if k not in self.sources:
                    try:
                        self.sources[k] = self.make_source(self.spec.source, k)
                    except Exception as exc:  # noqa: BLE001 - a broken source must not stop the show
                        self.fail(k, exc)
                        self.sources[k] = None
        return self.sources[k]

    def fail(self, key, exc: BaseException) -> None:
        if key not in self.failed:
            self.failed.add(key)
            where = f" ({key})" if key else ""
            show_log.warning("layer %s%s failed, showing black: %s", self.spec.name, where, exc)

    def render(self, genre: str | None, ctx: FrameContext, params: dict[str, float], size) -> np.ndarray | None:
        src = self.source(genre)
        if src is None:
            return None
        try:
            frame = src.frame(ctx, params)
            if frame.shape[:2] != (size[1], size[0]):  # a frame or vj.mix.Rows
                raise ValueError(f"source gave {frame.shape[1]}x{frame.shape[0]}, expected {size[0]}x{size[1]}")
            return frame
        except Exception as exc:  # noqa: BLE001
            self.fail(self.key(genre), exc)
            self.sources[self.key(genre)] = None
            return None

    def render_switch(self, old: str, new: str, amount: float, ctx: FrameContext, params: dict[str, float],
                      size, black: np.ndarray) -> np.ndarray:
        """A genre switch ``amount`` of the way from ``old`` to ``new``: the new source's own transition
        when it has one for the old (mosaics fly their tiles between layouts), else a crossfade."""
        src_old, src_new = self.source(old), self.source(new)
        transition = getattr(src_new, "transition", None)
        if transition is not None and src_old is not None:
            try:
                frame = transition(src_old, amount, ctx, params)
                if frame is not None and frame.shape[:2] == (size[1], size[0]):
                    return frame
            except Exception as exc:  # noqa: BLE001 - fall back to the crossfade
                if ("transition", new) not in self.failed:
                    self.failed.add(("transition", new))
                    show_log.warning("layer %s: transition to %s failed, crossfading: %s", self.spec.name, new, exc)
        a = self.render(old, ctx, params, size)
        b = self.render(new, ctx, params, size)
        # the old layer's pixels, then the new one mixed over them at ``amount``: two passes of the mix
        # kernels (rows finish their upscale inside them), never a source's own frame written to
        out = black.copy() if a is None else a.materialize() if isinstance(a, kernels.Rows) else a.copy()
        if b is not None:
            kernels.mix(out, b, kernels.mode_code("normal"), amount)
        return out

    def close(self) -> None:
        for s in self.sources.values():
            if s is not None:
                s.close()


class Engine:
    def __init__(self, scene: Scene, exact: bool = False, size: tuple[int, int] | None = None,
                 fps: float | None = None, cues: list[Cue] | None = None, device: str = "cpu",
                 render_scale: float | None = None, threads: int | None = None):
        self.scene = scene
        self.exact = exact
        self.size = size or scene.size            # what outputs receive
        scale = render_scale or scene.render_scale
        # layers, blends and effects run at render_size; one smooth upscale makes the output size
        self.render_size = tuple(max(16, round(v * scale / 2) * 2) for v in self.size)
        self.fps = fps or scene.fps
        self.device = device
        self.store = ParamStore()
        self.tempo = Tempo(scene.bpm)
        self.genre = scene.genre or None
        self.fade_from: str | None = None
        self.fade_start = 0.0
        self.index = 0
        self.t = 0.0
        self.cues = list(cues or [])
        self.named_cues = {c.name: c for c in self.cues if c.name}
        self.next_cue = 0
        self.last_autopilot_bar = 0
        self.stopped = False
        self.genre_listeners: list[Callable[[str], None]] = []  # e.g. OSC feedback
        self.before_frame: list[Callable[[], object]] = []  # e.g. the OSC server's poll: input right before a frame
        self.frame_ms: deque[float] = deque(maxlen=36000)  # recent render times (a live show runs for hours)
        self.library = ClipLibrary(self.render_size, keep=2 * max(1, len(scene.genres)) + 2, background=not exact)
        self.workers = Workers(threads)
        kernels.warm_up()  # compiled (or loaded from numba's cache) now, not in the first frame of the show
        effects_warm_up()
        w, h = self.render_size
        step = max(16, min(BAND_ROWS, h // self.workers.n))
        self._bands = [(y, min(h, y + step)) for y in range(0, h, step)]
        self._black = np.zeros((h, w, 3), np.uint8)
        for name, default, lo, hi, help in (
                ("master.fader", 1.0, 0, 1, "master brightness"),
                ("master.crossfade", 0.5, 0, 1, "A/B crossfader: 0 = deck A, 1 = deck B, both full in the middle"),
                ("tempo.bpm", scene.bpm, 20, 300, "beats per minute"),
                ("genre.fade", scene.fade, 0, 60, "genre crossfade seconds"),
                ("autopilot.bars", scene.autopilot_bars, 0, 1024, "switch genre every N bars (0: off)")):
            self.store.define(Param(name, default, lo, hi, kind="int" if name == "autopilot.bars" else "float",
                                    help=help))
        self.layers = [Layer(spec, self._make_source, self.store) for spec in scene.layers]
        self.master_fx = [EffectRuntime(e) for e in scene.effects]
        ids = [e.spec.id for layer in self.layers for e in layer.effects] + [e.spec.id for e in self.master_fx]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ConfigError(f"{scene.path}: effect id {sorted(dup)[0]!r} is used twice; give each an id")
        for fx in self.master_fx:
            for p in fx.params():
                self.store.define(p)
        self.audio = None  # an AudioFileInput / AudioDeviceInput: see attach_audio
        self.store.define(Param("audio.level", 0.0, help="the audio input's level (read-only)"))
        for name, value in scene.initial.items():
            if name not in self.store:
                raise ConfigError(f"{scene.path} [initial]: {name!r} is not a parameter (see vj osc --list)")
            self.store.values[name] = self.store.params[name].coerce(value)
        if self.genre:
            show_log.info("genre: %s", self.genre)
        # Live, every genre's sources are made on a background thread from the start (loading a generator,
        # exporting it to ONNX Runtime and opening a mosaic took 0.3-0.4 s: made on the frame loop at the
        # first switch, the show froze that long). A switch to a genre still being made waits for it while
        # the current genre plays on, then fades. Offline, sources are made when first shown (frame-exact).
        self._prepared: dict[str, object] = {}
        self._pending: tuple[str, str] | None = None   # (genre, who asked): a switch waiting for its sources
        self._preparer: ThreadPoolExecutor | None = None
        if not exact and any(layer.spec.source in GENRE_KINDS for layer in self.layers):
            self._preparer = ThreadPoolExecutor(1, thread_name_prefix="genre-prep")
            order = sorted(self.scene.genres, key=lambda g: g != self.genre)  # the first genre first
            self._prepared = {g: self._preparer.submit(self._prepare, g) for g in order}

    def _prepare(self, genre: str) -> None:
        for layer in self.layers:
            if layer.spec.source in GENRE_KINDS:
                layer.source(genre)

    # -- sources
    def _make_source(self, kind: str, genre: str | None) -> Source:
        spec = self.scene.genres.get(genre) if genre else None
        if kind in GENRE_KINDS and spec is None:
            raise ValueError("the scene has no genre for this layer")
        seed = sorted(self.scene.genres).index(genre) if genre else 0
        if kind == "clip":
            return ClipSource(self.render_size, spec.clips, self.exact, self.library, seed=seed)
        if kind == "generator":
            if spec.generator is None:
                raise FileNotFoundError(f"genre {genre!r} has no generator")
            return GeneratorSource(self.render_size, spec.generator, self.exact, seed=seed, device=self.device)
        if kind == "mosaic":
            from mosaic.animate import MosaicSource

            if spec.mosaic is None:
                raise FileNotFoundError(f"genre {genre!r} has no mosaic")
            return MosaicSource(self.render_size, spec.mosaic, self.exact, focus=spec.clips, seed=seed)
        return {"solid": SolidSource, "gradient": GradientSource}[kind](self.render_size, self.exact)

    # -- audio
    def attach_audio(self, source) -> None:
        """Let an audio input drive the scene's ``[audio]`` routes (level -> parameter, onset -> action)."""
        route = self.scene.audio
        if route.level and route.level not in self.store:
            raise ConfigError(f"{self.scene.path} [audio] level = {route.level!r} is not a parameter")
        self.audio = source

    def _audio_events(self) -> None:
        level, onset = self.audio.read(self.index)
        self.store.values["audio.level"] = level
        route = self.scene.audio
        if route.level:
            p = self.store.params[route.level]
            self.store.push(route.level, p.lo + level * (p.hi - p.lo), "audio")
        if onset and route.onset:
            name, value = parse_action(route.onset)
            self.store.push(name, value, "audio")

    # -- events
    def switch_genre(self, genre: str, source: str = "") -> None:
        if genre not in self.scene.genres:
            self.store.drop("unknown genre")
            return
        if genre == self.genre:
            self._pending = None
            return
        ready = self._prepared.get(genre)
        if ready is not None and not ready.done():
            if self._pending is None or self._pending[0] != genre:
                show_log.info("genre: %s requested at %.2fs, its sources are still loading", genre, self.t)
            self._pending = (genre, source)
            return
        self._pending = None
        self.fade_from, self.genre, self.fade_start = self.genre, genre, self.t
        show_log.info("genre: %s -> %s at %.2fs%s", self.fade_from, genre, self.t, f" ({source})" if source else "")
        for listener in self.genre_listeners:
            listener(genre)

    def fire_cue(self, cue: Cue) -> None:
        show_log.info("cue%s at %.2fs", f" {cue.name}" if cue.name else "", self.t)
        for name, value in cue.set.items():
            self.store.push(name, value, "cue")
        for name, value in cue.commands:
            self.store.push(name, value, "cue")
        if cue.genre:
            self.store.push("genre", cue.genre, "cue")

    def _apply_commands(self) -> None:
        drained = self.store.drain()
        if "tempo.bpm" in drained.changed:
            self.tempo.set_bpm(drained.changed["tempo.bpm"], self.t)
        for ev in drained.commands:
            try:
                if ev.name == "genre":
                    self.switch_genre(str(ev.value), ev.source)
                elif ev.name == "tap":
                    self.store.values["tempo.bpm"] = self.tempo.tap(self.t)
                elif ev.name == "bpm":
                    self.tempo.set_bpm(float(ev.value), self.t)
                    self.store.values["tempo.bpm"] = self.tempo.bpm
                elif ev.name == "cue":
                    cue = self.named_cues.get(str(ev.value))
                    if cue is None:
                        self.store.drop("unknown cue")
                    else:
                        self.fire_cue(cue)
                        self._apply_commands()
                elif ev.name == "jump":
                    for layer in self.layers:
                        src = layer.sources.get(layer.key(self.genre))
                        if src is not None:
                            src.command("jump", int(self.tempo.beat(self.t) * 1000))
            except (TypeError, ValueError):
                self.store.drop("bad value")

    def _autopilot(self, beat: float) -> None:
        bars = int(self.store.values["autopilot.bars"])
        if bars <= 0 or len(self.scene.genres) < 2:
            return
        bar = int(beat // (4 * bars))
        if bar != self.last_autopilot_bar:
            self.last_autopilot_bar = bar
            names = list(self.scene.genres)
            nxt = names[(names.index(self.genre) + 1) % len(names)] if self.genre in names else names[0]
            self.switch_genre(nxt, "autopilot")

    # -- one frame
    def step(self, t: float) -> np.ndarray:
        t0 = time.perf_counter()
        self.t = t
        for poll in self.before_frame:
            poll()
        while self.next_cue < len(self.cues) and self.cues[self.next_cue].time <= t + 1e-9:
            self.fire_cue(self.cues[self.next_cue])
            self.next_cue += 1
        if self.audio is not None:
            self._audio_events()
        if self._pending is not None:
            self.switch_genre(*self._pending)
        self._apply_commands()
        beat = self.tempo.beat(t)
        self._autopilot(beat)
        self._apply_commands()
        ctx = FrameContext(t=t, beat=beat, index=self.index)
        frame = self.composite(ctx)
        if self.render_size != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
        self.index += 1
        self.frame_ms.append((time.perf_counter() - t0) * 1000)
        return frame

    def _fade(self) -> float:
        fade = self.store.values["genre.fade"]
        if self.fade_from is None:
            return 1.0
        a = 1.0 if fade <= 0 else (self.t - self.fade_start) / fade
        if a >= 1.0:
            self.fade_from = None
            return 1.0
        return max(0.0, a)

    def composite(self, ctx: FrameContext) -> np.ndarray:
        """Two stages, each spread over the worker threads (OpenCV releases the GIL):

        1. every layer's frame, with its own effects, one job per layer;
        2. blending (``vj.mix``: one pass per layer, and the vertical half of every layer's upscale), the
           row-local master effects and the master fader, in bands of rows, so each band stays in cache
           while all of the layers are mixed into it. Effects that move pixels between rows
           (feedback, kaleidoscope, zoom...) and those after them run once on the whole frame.
        """
        w, h = self.render_size
        values = self.store.values
        x = values["master.crossfade"]
        deck_gain = {"": 1.0, "A": min(1.0, 2 * (1 - x)), "B": min(1.0, 2 * x)}
        fade = self._fade()
        jobs = []
        for layer in self.layers:
            opacity = values[layer.prefix + "opacity"] * deck_gain[layer.spec.deck]
            if opacity > 0:
                jobs.append((layer, opacity, {q.name: values[layer.prefix + q.name] for q in layer.source_params}))

        def layer_frame(job):
            layer, opacity, p = job
            if self.fade_from is not None and layer.spec.source in GENRE_KINDS:
                frame = layer.render_switch(self.fade_from, self.genre, fade, ctx, p, self.render_size,
                                            self._black)
            else:
                frame = layer.render(self.genre, ctx, p, self.render_size)
            if frame is None:
                return None
            if layer.effects:
                frame = kernels.as_frame(frame)
            for fx in layer.effects:
                frame = fx.apply(frame, ctx, self.store)
            return frame

        frames = self.workers.map(layer_frame, jobs)
        kernels.settle_all(frames, self.workers.map, self.workers.n)  # deferred resizes (the mosaic's view)
        mix = [(self._black if f is None else f, opacity, kernels.mode_code(self.store.choice(layer.prefix + "blend")))
               for (layer, opacity, _), f in zip(jobs, frames)]
        # an opaque first layer in normal mode replaces the black it would be mixed over: skip the black
        cover_first = bool(mix) and mix[0][2] == kernels.MODES.index("normal") and mix[0][1] >= 1
        if cover_first:
            mix[0] = (mix[0][0], 1.0, kernels.SET)
        banded = []
        for fx in self.master_fx:
            if not EFFECTS[fx.spec.type].local:
                break
            banded.append(fx)
        fader = values["master.fader"]
        out = np.empty((h, w, 3), np.uint8)

        def band(rows):
            y0, y1 = rows
            o = out[y0:y1]
            if not cover_first:
                o[...] = 0
            for frame, opacity, mode in mix:
                kernels.mix(o, frame, mode, opacity, y0)
            bctx = FrameContext(t=ctx.t, beat=ctx.beat, index=ctx.index, row0=y0)
            for fx in banded:
                fx.apply(o, bctx, self.store, owned=True)
            if fader < 1 and len(banded) == len(self.master_fx):
                cv2.convertScaleAbs(o, dst=o, alpha=fader)

        self.workers.map(band, self._bands)
        for fx in self.master_fx[len(banded):]:
            out = fx.apply(out, ctx, self.store)
        if fader < 1 and len(banded) < len(self.master_fx):
            out = cv2.convertScaleAbs(out, alpha=fader)
        return out

    # -- the loop
    def run(self, clock, outputs: list[Output], seconds: float | None = None, frames: int | None = None,
            on_frame: Callable[[int], None] | None = None) -> int:
        """Run until ``frames``/``seconds`` are done, ``stop()`` is called, or Ctrl-C. Returns frames shown."""
        limit = frames if frames is not None else (round(seconds * self.fps) if seconds else None)
        outputs = list(outputs)
        shown = 0
        try:
            while not self.stopped and (limit is None or shown < limit):
                t = clock.tick()
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
        finally:
            for out in outputs:
                try:
                    out.close()
                except Exception as exc:  # noqa: BLE001
                    show_log.warning("output %s did not close cleanly: %s", type(out).__name__, exc)
        return shown

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        if self._preparer is not None:  # a source made after its layer closed would keep its threads
            self._preparer.shutdown(wait=True, cancel_futures=True)
        for layer in self.layers:
            layer.close()
        self.library.close()
        self.workers.close()


def attach_log_file(path: str | Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    show_log.addHandler(handler)
