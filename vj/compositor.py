"""The compositor: layers, their effects, blend modes and the master effects, on every core.

Two stages, each spread over the worker threads (OpenCV, numba and torch release the GIL):

1. every layer's frame with its own effects, one job per layer;
2. blending (``vj.mix``: one pass per layer, and the vertical half of every layer's upscale), the row-local
   master effects and the master fader, in bands of rows, so each band stays in cache while all of the
   layers are mixed into it. Effects that move pixels between rows (feedback, kaleidoscope, zoom...) and
   those after them run once on the whole frame.

A layer or an effect that raises is logged by the show's guard (once, then rate-limited) and shows black
(a layer) or passes its frame through (an effect) for that frame; the show goes on.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from vj import mix as kernels
from vj.effects import BLEND_MODES, EFFECTS, FrameContext
from vj.params import Param, ParamStore
from vj.scene import EffectSpec, LayerSpec
from vj.sources import SOURCES, NotInGenre, Source

BAND_ROWS = 96   # rows per compositing band: a band of every layer fits in a core's cache at 1080p
RETRY_SOURCE = 5.0  # seconds before a live source that could not be made is tried again (a file restored)


class Workers:
    """Runs one frame's independent jobs on the calling thread plus a small pool, and waits.

    Each thread takes the next job in order until none are left, so one slow layer (the mosaic) does not
    hold back a thread that has finished its share. Results come back in job order.
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


@dataclass
class EffectRuntime:
    """One effect of a scene: its parameters in the store (``fx.<id>.on`` and its inputs) and its state."""
    spec: EffectSpec
    ctx_state: dict = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"fx.{self.spec.id}."

    def params(self) -> list[Param]:
        fx = EFFECTS[self.spec.type]
        return [Param(self.prefix + "on", 1, kind="bool", help=f"{fx.name} on/off")] + [
            p.under(self.prefix, self.spec.values.get(p.name)) for p in fx.inputs]

    def apply(self, frame: np.ndarray, ctx: FrameContext, store: ParamStore, owned: bool = False) -> np.ndarray:
        """``owned``: the frame is the caller's to overwrite (a row band); else local effects get a copy."""
        values = store.values
        if values[self.prefix + "on"] < 0.5:
            return frame
        fx = EFFECTS[self.spec.type]
        inputs = {p.name: values[self.prefix + p.name] for p in fx.inputs}
        ctx.state = self.ctx_state
        try:
            return fx.fn(frame if owned or not fx.local else frame.copy(), ctx, **inputs)
        except Exception as exc:  # noqa: BLE001 - an effect failing must not stop the show
            store.guard.warn(f"fx:{self.spec.id}", "effect %s (%s) failed, passing its frame through: %s",
                       self.spec.id, fx.name, exc)
            return frame


class Layer:
    """One layer: a source per genre (for the kinds that follow the genre) or one source, its effects and
    its mix settings, all declared in the store under ``layer.<name>.``."""

    def __init__(self, spec: LayerSpec, make_source: Callable[[str, str | None], Source], store: ParamStore,
                 background: Callable[[Callable[[], object]], None] | None = None):
        """``background``: live, runs a job on the engine's preparer thread (None offline: sources are made
        when first shown, frame-exact)."""
        self.spec = spec
        self.background = background
        self.guard = store.guard
        self.kind = SOURCES[spec.source]
        self.make_source = make_source
        self.sources: dict[str | None, Source | None] = {}
        self._failed_at: dict[str | None, float] = {}
        self.absent: set[str | None] = set()  # genres with none of this layer's media: it sits them out
        self._making = threading.Lock()  # offline callers and the preparer thread both make sources
        self.effects = [EffectRuntime(e) for e in spec.effects]
        self.prefix = f"layer.{spec.name}."
        store.define(Param(self.prefix + "opacity", spec.opacity, help="layer opacity"))
        store.define(Param(self.prefix + "blend", spec.blend, kind="choice", choices=tuple(BLEND_MODES),
                           help="blend mode"))
        self.source_params = self.kind.params
        for p in self.source_params:
            store.define(p.under(self.prefix, spec.settings.get(p.name)))
        for fx in self.effects:
            for p in fx.params():
                store.define(p)

    def key(self, genre: str | None) -> str | None:
        return genre if self.kind.follows_genre else None

    def source(self, genre: str | None) -> Source | None:
        """The layer's source for ``genre``, or None while there is none. Offline it is made here, once (a
        failure shows black for the render). Live, a genre's sources are made on the engine's preparer
        thread (``background``), never on the frame loop, which shows black until they exist; one that
        could not be made is tried again every ``RETRY_SOURCE`` seconds (a file may be put back)."""
        k = self.key(genre)
        src = self.sources.get(k)
        if src is not None or k in self.absent:
            return src
        if self.background is not None and self.kind.follows_genre:
            if time.monotonic() - self._failed_at.get(k, -RETRY_SOURCE) >= RETRY_SOURCE:
                self._failed_at[k] = time.monotonic()  # asked for: not again before the retry interval
                self.background(lambda: self.make(genre))
            return None
        if k in self.sources:
            return None  # offline: it failed once, it fails for the whole render
        return self.make(genre)

    def make(self, genre: str | None) -> Source | None:
        """Make the source for ``genre`` now unless it exists (the preparer thread, or the caller offline)."""
        k = self.key(genre)
        with self._making:
            if self.sources.get(k) is None:
                try:
                    self.sources[k] = self.make_source(self.spec.source, k)
                    self._prepare_transitions(k)
                    if self.guard.recovered(self._culprit(k)):
                        self.guard.log.info("layer %s: source is back", self._culprit(k))
                except NotInGenre as exc:  # by design, not a failure: nothing to retry or warn about
                    self.sources[k] = None
                    self.absent.add(k)
                    self.guard.log.debug("layer %s sits this genre out: %s", self.spec.name, exc)
                except Exception as exc:  # noqa: BLE001 - a broken source must not stop the show
                    self.sources[k], self._failed_at[k] = None, time.monotonic()
                    self.guard.warn(self._culprit(k), "layer %s could not be made, showing black: %s",
                                    self._culprit(k), exc)
        return self.sources[k]

    def _prepare_transitions(self, k) -> None:
        """The new source's transitions from and to every other genre's, prepared now (off the frame loop
        live); a failure here only means that work happens on the switch's first frame."""
        new = self.sources[k]
        for other in [s for key, s in list(self.sources.items()) if key != k and s is not None]:
            try:
                new.prepare_transition(other)
                other.prepare_transition(new)
            except Exception as exc:  # noqa: BLE001 - an optimisation, never a reason to lose the source
                self.guard.log.debug("layer %s: transitions not prepared: %s", self._culprit(k), exc)

    def sits_out(self, genre: str | None, fade_from: str | None = None) -> bool:
        """True where the layer has nothing to show: the genre (and the one it fades from) has none of its
        media."""
        return self.key(genre) in self.absent and (fade_from is None or self.key(fade_from) in self.absent)

    def _culprit(self, key) -> str:
        return self.spec.name + (f" ({key})" if key else "")

    def render(self, genre: str | None, ctx: FrameContext, params: dict[str, float], size) -> np.ndarray | None:
        src = self.source(genre)
        if src is None:
            return None
        try:
            frame = src.frame(ctx, params)
            if frame.shape[:2] != (size[1], size[0]):  # a frame or vj.mix.Rows
                raise ValueError(f"source gave {frame.shape[1]}x{frame.shape[0]}, expected {size[0]}x{size[1]}")
            return frame
        except Exception as exc:  # noqa: BLE001 - black for this frame, tried again next frame
            self.guard.warn(self._culprit(self.key(genre)), "layer %s failed, showing black: %s",
                       self._culprit(self.key(genre)), exc)
            return None

    def render_switch(self, old: str, new: str, amount: float, ctx: FrameContext, params: dict[str, float],
                      size) -> np.ndarray | kernels.Rows | kernels.Fade:
        """A genre switch ``amount`` of the way from ``old`` to ``new``: the new source's own transition
        when it has one for the old (mosaics fly their tiles between layouts), else a crossfade, which the
        mix finishes band by band (:class:`vj.mix.Fade`: no full-frame copy, no extra pass)."""
        src_old, src_new = self.source(old), self.source(new)
        if src_old is not None and src_new is not None:
            try:
                frame = src_new.transition(src_old, amount, ctx, params)
                if frame is not None and frame.shape[:2] == (size[1], size[0]):
                    return frame
            except Exception as exc:  # noqa: BLE001 - fall back to the crossfade
                self.guard.warn(f"transition:{self.spec.name}:{new}", "layer %s: transition to %s failed, "
                           "crossfading: %s", self.spec.name, new, exc)
        a = self.render(old, ctx, params, size)
        b = self.render(new, ctx, params, size)
        return kernels.Fade(a, b, 1.0 - amount, amount, tuple(size))

    def command(self, genre: str | None, name: str, value=None) -> None:
        src = self.sources.get(self.key(genre))
        if src is not None:
            src.command(name, value)

    def close(self) -> None:
        for s in self.sources.values():
            if s is not None:
                s.close()


class Compositor:
    """Layers and master effects at ``size`` (the render size), mixed on ``workers``' threads."""

    def __init__(self, size: tuple[int, int], layers: list[Layer], master_fx: list[EffectRuntime],
                 store: ParamStore, workers: Workers):
        self.size = size
        self.layers = layers
        self.master_fx = master_fx
        self.store = store
        self.workers = workers
        w, h = size
        step = max(16, min(BAND_ROWS, h // workers.n))
        self.bands = [(y, min(h, y + step)) for y in range(0, h, step)]
        self.black = np.zeros((h, w, 3), np.uint8)
        self.black_frames = 0  # frames in which a visible layer showed black (a fault, or a source not ready)

    def composite(self, ctx: FrameContext, genre: str | None, fade_from: str | None = None,
                  fade: float = 1.0) -> np.ndarray:
        """The frame of ``genre`` (during a switch: ``fade`` of the way from ``fade_from``)."""
        w, h = self.size
        values = self.store.values
        x = values["master.crossfade"]
        deck_gain = {"": 1.0, "A": min(1.0, 2 * (1 - x)), "B": min(1.0, 2 * x)}
        jobs = []
        for layer in self.layers:
            opacity = values[layer.prefix + "opacity"] * deck_gain[layer.spec.deck]
            if opacity > 0:
                jobs.append((layer, opacity, {q.name: values[layer.prefix + q.name] for q in layer.source_params}))

        def layer_frame(job):
            """The layer's frame, and how much of its opacity it shows (less while it fades in or out)."""
            layer, opacity, p = job
            share = 1.0
            if fade_from is not None and layer.kind.follows_genre:
                layer.source(fade_from), layer.source(genre)  # offline: made now, so the layer knows what it lacks
                if layer.sits_out(genre) != layer.sits_out(fade_from):  # one side has none of its media:
                    shown = fade_from if layer.sits_out(genre) else genre  # the other fades out (or in) alone
                    share = 1.0 - fade if shown == fade_from else fade
                    frame = layer.render(shown, ctx, p, self.size)
                else:
                    frame = layer.render_switch(fade_from, genre, fade, ctx, p, self.size)
            else:
                frame = layer.render(genre, ctx, p, self.size)
            if frame is None:
                return None, share
            if layer.effects:
                frame = kernels.as_frame(frame)
            for fx in layer.effects:
                frame = fx.apply(frame, ctx, self.store)
            return frame, share

        rendered = self.workers.map(layer_frame, jobs)
        kept = [((layer, opacity * share, p), f) for (layer, opacity, p), (f, share) in zip(jobs, rendered)
                if (f is not None or not layer.sits_out(genre, fade_from)) and share > 0]
        jobs, frames = [job for job, _ in kept], [f for _, f in kept]
        self.black_frames += any(f is None for f in frames)
        kernels.settle_all(frames, self.workers.map, self.workers.n)  # deferred resizes (the mosaic's view)
        mix = [(self.black if f is None else f, opacity, kernels.mode_code(self.store.choice(layer.prefix + "blend")))
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

        self.workers.map(band, self.bands)
        for fx in self.master_fx[len(banded):]:
            out = fx.apply(out, ctx, self.store)
        if fader < 1 and len(banded) < len(self.master_fx):
            out = cv2.convertScaleAbs(out, alpha=fader)
        return out

    def close(self) -> None:
        for layer in self.layers:
            layer.close()
