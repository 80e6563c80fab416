"""The compositor's pixel kernels: blend modes with opacity in one pass, and upscales finished inside bands.

Two ideas take the benchmark scene's 1080p frame from 39 to about 21 ms of CPU:

* **One pass per layer.** A blend with opacity written as OpenCV calls is two to four full passes (a
  blend, a scale, an add) through float conversions; here each mode is one loop in float32 that LLVM
  vectorises (numba, ``nogil``: the engine's two threads mix two bands at once).
* **Upscales are never materialised.** Clips (360 p), generator images (64-128 px) and the mosaic's view
  reach the mix as :class:`Rows`: the source's rows resized to the output *width* only, plus for every
  output row the source rows and weights that make it (OpenCV's linear coefficients). The
  vertical half of the upscale happens in the blend loop, on a row band that stays in cache, so a layer
  costs its small horizontal resize and one pass over the band instead of a full-frame resize that is
  written out and read back. A big horizontal resize (the mosaic's view) can be *deferred*: the engine
  runs it in equal parts on both threads before the bands.

Opacity follows :func:`vj.effects.blend`: ``base + opacity * (mode(base, top) - base)``, except ``add``,
where opacity is the top layer's gain, as on a VJ mixer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from functools import lru_cache

import cv2
import numpy as np
from numba import float32, int32, njit, uint8

MODES = ("normal", "add", "screen", "multiply", "difference", "lighten")  # kernel codes are the indices
SET = len(MODES)  # not a blend: the top layer replaces what is there (a first layer, materialising rows)


@njit(inline="always")
def _op(mode, a, b, g):
    """One channel value: ``b`` blended over ``a`` at opacity ``g`` (float32s in 0..255)."""
    if mode == 0:
        return a + (b - a) * g
    if mode == 1:  # add: opacity is the top layer's gain
        return min(a + b * g, float32(255))
    if mode == 2:  # screen: a + (255 - a) * b / 255
        return a + (float32(255) - a) * b * (g / float32(255))
    if mode == 3:  # multiply: a * b / 255
        return a + (a * b * (float32(1) / float32(255)) - a) * g
    if mode == 4:  # difference
        return a + (abs(a - b) - a) * g
    if mode == 5:  # lighten
        return a + max(b - a, float32(0)) * g
    return b       # SET


@njit(inline="always")
def _rows(out, plane, idx, wts, mode, g):
    for y in range(out.shape[0]):
        r0, r1 = plane[idx[y, 0]], plane[idx[y, 1]]
        w0, w1 = wts[y, 0], wts[y, 1]
        o = out[y]
        if w1 == 0:  # a row that is one source row (a full-size frame, the black row)
            for i in range(o.shape[0]):
                o[i] = uint8(int32(_op(mode, float32(o[i]), float32(r0[i]) * w0, g) + float32(0.5)))
        else:
            for i in range(o.shape[0]):
                b = float32(r0[i]) * w0 + float32(r1[i]) * w1  # weights sum to 1: no clamp
                o[i] = uint8(int32(_op(mode, float32(o[i]), b, g) + float32(0.5)))


# The mode is a constant in each branch: after inlining, LLVM compiles one vectorised loop per mode.
@njit(nogil=True, fastmath=True, cache=True)
def _mix_rows(out, plane, idx, wts, mode, g):
    """``out`` (rows, n) uint8; row ``y`` of the top layer is ``wts[y, 0] * plane[idx[y, 0]] + wts[y, 1] *
    plane[idx[y, 1]]``: the vertical half of its upscale, computed in the blend's own loop."""
    g = float32(g)
    if mode == 0:
        _rows(out, plane, idx, wts, 0, g)
    elif mode == 1:
        _rows(out, plane, idx, wts, 1, g)
    elif mode == 2:
        _rows(out, plane, idx, wts, 2, g)
    elif mode == 3:
        _rows(out, plane, idx, wts, 3, g)
    elif mode == 4:
        _rows(out, plane, idx, wts, 4, g)
    elif mode == 5:
        _rows(out, plane, idx, wts, 5, g)
    else:
        _rows(out, plane, idx, wts, 6, g)


@njit(inline="always")
def _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, mode, g):
    for y in range(out.shape[0]):
        a0, a1, b0, b1 = pa[ia[y, 0]], pa[ia[y, 1]], pb[ib[y, 0]], pb[ib[y, 1]]
        xa0, xa1, xb0, xb1 = wa[y, 0] * ka, wa[y, 1] * ka, wb[y, 0] * kb, wb[y, 1] * kb
        o = out[y]
        for i in range(o.shape[0]):
            top = float32(a0[i]) * xa0 + float32(a1[i]) * xa1 + float32(b0[i]) * xb0 + float32(b1[i]) * xb1
            o[i] = uint8(int32(_op(mode, float32(o[i]), top, g) + float32(0.5)))


@njit(nogil=True, fastmath=True, cache=True)
def _mix_fade_rows(out, pa, ia, wa, pb, ib, wb, ka, kb, mode, g):
    """Like ``_mix_rows`` with a top layer that is two layers weighted, ``ka * a + kb * b`` (``ka + kb <= 1``),
    each with its own rows and taps: a crossfade costs one pass, not a copy, a blend and a pass."""
    g, ka, kb = float32(g), float32(ka), float32(kb)
    if mode == 0:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 0, g)
    elif mode == 1:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 1, g)
    elif mode == 2:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 2, g)
    elif mode == 3:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 3, g)
    elif mode == 4:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 4, g)
    elif mode == 5:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 5, g)
    else:
        _rows2(out, pa, ia, wa, pb, ib, wb, ka, kb, 6, g)


def mode_code(mode: str) -> int:
    return MODES.index(mode)


def as_rows(top: np.ndarray | Rows) -> Rows:
    """A frame as rows at full size (each output row its own plane row); rows as they are."""
    if isinstance(top, Rows):
        return top
    h = top.shape[0]
    return Rows(np.ascontiguousarray(top).reshape(h, -1), *_placed_taps(h, 0, h, h))


def mix(out: np.ndarray, top: np.ndarray | Rows | Fade, mode: int, opacity: float, y0: int = 0) -> None:
    """Blend ``top`` over ``out`` in place; ``out`` may be a band of rows starting at output row ``y0``
    (``top`` is the whole layer: a frame, :class:`Rows` or a :class:`Fade`)."""
    rows = out.shape[0]
    if isinstance(top, Fade):
        if top.tiles:  # the layer's own pixels first (tiles over the fade), then blended like any band
            band = np.empty_like(out)
            top.draw(band, y0)
            mix(out, band, mode, opacity)
            return
        a, b = top.parts()
        _mix_fade_rows(out.reshape(rows, -1), a.plane, a.idx[y0:y0 + rows], a.wts[y0:y0 + rows], b.plane,
                       b.idx[y0:y0 + rows], b.wts[y0:y0 + rows], top.ka, top.kb, mode, opacity)
        return
    top = as_rows(top)
    top.settle()  # a no-op in the engine, which fills deferred rows before the bands
    _mix_rows(out.reshape(rows, -1), top.plane, top.idx[y0:y0 + rows], top.wts[y0:y0 + rows], mode, opacity)


# ---------------------------------------------------------------- rows: upscales finished in the mix
@dataclass
class Rows:
    """A layer at the output size: ``plane``, rows already at the output width (from ``scale_rows``, a
    black last row for the output rows outside the image), and per output row the two plane rows ``idx``
    and the weights ``wts`` that make it.

    A *deferred* plane (``scale_rows(..., defer=True)``) is allocated but its horizontal resize is still to
    run: the engine runs it through :func:`settle_all` in equal parts on its threads (a big view's resize
    is then not one thread's critical path); anything else that reads the rows fills them first.
    """

    plane: np.ndarray   # (R + 1, W * 3) uint8
    idx: np.ndarray     # (H, 2) int32
    wts: np.ndarray     # (H, 2) float32
    pending: tuple | None = None  # deferred: (image, x0, x1, interpolation)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.idx.shape[0], self.plane.shape[1] // 3, 3

    def fill(self, r0: int = 0, r1: int | None = None) -> None:
        """Resize the deferred image's rows ``r0:r1`` into the plane (rows are independent: any split)."""
        if self.pending is not None:
            img, x0, x1, interp = self.pending
            r1 = len(img) if r1 is None else r1
            if r1 > r0:
                dst = self.plane[r0:r1].reshape(r1 - r0, -1, 3)[:, x0:x1]
                cv2.resize(img[r0:r1], (x1 - x0, r1 - r0), dst=dst, interpolation=interp)

    def _runs(self, parts: int) -> list[tuple[int, int]]:
        """The deferred rows in ``parts`` equal runs (none when nothing is deferred)."""
        n = len(self.pending[0]) if self.pending is not None else 0
        bounds = [round(i * n / parts) for i in range(parts + 1)] if n else []
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

    def settle(self) -> None:
        """Fill what is still deferred (callers outside the engine's fill stage)."""
        if self.pending is not None:
            self.fill()
            self.pending = None

    def materialize(self) -> np.ndarray:
        """The full ``(H, W, 3)`` frame (for effects and transitions that need pixels)."""
        self.settle()
        h, w, _ = self.shape
        out = np.empty((h, w, 3), np.uint8)
        _mix_rows(out.reshape(h, -1), self.plane, self.idx, self.wts, SET, 1.0)
        return out


@dataclass
class Fade:
    """A layer between two genres, finished in the mix: its pixels are ``ka * a + kb * b`` (a crossfade:
    ``1 - amount`` and ``amount``), with ``tiles`` (image, x, y) drawn over them; ``a`` or ``b`` None is
    black. Mixed band by band like :class:`Rows`, so a genre switch costs the compositor one pass per
    fading layer on every thread, instead of a full-frame copy and blend on one."""

    a: np.ndarray | Rows | None
    b: np.ndarray | Rows | None
    ka: float
    kb: float
    size: tuple[int, int]                   # (w, h)
    tiles: list = ()                        # [(image (s, s, 3) uint8, x, y)], drawn in order, clipped

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size[1], self.size[0], 3

    def parts(self) -> tuple[Rows, Rows]:
        w, h = self.size
        black = _black_rows(w, h)
        return (black if self.a is None else as_rows(self.a)), (black if self.b is None else as_rows(self.b))

    def draw(self, out: np.ndarray, y0: int = 0) -> None:
        """The layer's pixels for output rows ``y0:y0 + len(out)`` into ``out``."""
        rows = out.shape[0]
        a, b = self.parts()
        a.settle()
        b.settle()
        _mix_fade_rows(out.reshape(rows, -1), a.plane, a.idx[y0:y0 + rows], a.wts[y0:y0 + rows], b.plane,
                       b.idx[y0:y0 + rows], b.wts[y0:y0 + rows], self.ka, self.kb, SET, 1.0)
        y1, w = y0 + rows, out.shape[1]
        for img, x, y in self.tiles:
            s = img.shape[0]
            ty0, ty1, tx0, tx1 = max(y0, y), min(y1, y + s), max(0, x), min(w, x + s)
            if ty1 > ty0 and tx1 > tx0:
                out[ty0 - y0:ty1 - y0, tx0:tx1] = img[ty0 - y:ty1 - y, tx0 - x:tx1 - x]

    def materialize(self) -> np.ndarray:
        out = np.empty(self.shape, np.uint8)
        self.draw(out)
        return out


@lru_cache(maxsize=8)
def _black_rows(w: int, h: int) -> Rows:
    # the flags every layer's rows have (a writable plane, read-only taps, as _placed_taps makes them):
    # numba compiles one version of a kernel per array flags, and a black with other flags made the warm-up
    # compile a version no real fade uses, so a fresh install's first genre switch compiled the real one on
    # the frame loop (a 2 s freeze)
    plane = np.zeros((1, w * 3), np.uint8)
    idx, wts = np.zeros((h, 2), np.int32), np.tile(np.array([[1, 0]], np.float32), (h, 1))
    idx.setflags(write=False)
    wts.setflags(write=False)
    return Rows(plane, idx, wts)


def settle_all(layers: list, run: Callable[[Callable, list], list], parts: int) -> None:
    """Fill every deferred :class:`Rows` among ``layers`` (and inside their :class:`Fade`s), each split
    into ``parts`` runs of rows that ``run`` (the engine's ``Workers.map``) takes on its threads in any
    order."""
    layers = [p for r in layers for p in ((r.a, r.b) if isinstance(r, Fade) else (r,))]
    jobs = [(r, a, b) for r in layers if isinstance(r, Rows) for a, b in r._runs(parts)]
    if jobs:
        run(lambda job: job[0].fill(job[1], job[2]), jobs)
        for r, _, _ in jobs:
            r.pending = None


def as_frame(layer: np.ndarray | Rows | Fade) -> np.ndarray:
    return layer.materialize() if isinstance(layer, (Rows, Fade)) else layer


@lru_cache(maxsize=64)
def _placed_taps(n_in: int, y0: int, y1: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear taps from ``n_in`` plane rows to output rows ``y0:y1`` of a ``height``-row frame, as OpenCV
    computes them (pixel centres aligned, edges replicated); rows outside read the black row."""
    fy = (np.arange(y1 - y0) + 0.5) * (n_in / (y1 - y0)) - 0.5
    sy = np.floor(fy)
    x = np.where((sy < 0) | (sy >= n_in - 1), 0.0, fy - sy)
    sy = np.clip(sy, 0, n_in - 1).astype(np.int32)
    idx = np.full((height, 2), n_in, np.int32)
    wts = np.zeros((height, 2), np.float32)
    wts[:, 0] = 1
    idx[y0:y1] = np.stack([sy, np.minimum(sy + 1, n_in - 1)], 1)
    wts[y0:y1] = np.stack([1 - x, x], 1)
    idx.setflags(write=False)
    wts.setflags(write=False)
    return idx, wts


def scale_rows(img: np.ndarray, size: tuple[int, int], cubic: bool = False,
               rect: tuple[int, int, int, int] | None = None, plane: np.ndarray | None = None,
               defer: bool = False) -> Rows:
    """``img`` scaled into ``rect`` = (x0, y0, x1, y1) of a ``size`` = (w, h) frame (default: all of it),
    black elsewhere, as :class:`Rows`. ``plane``: the plane of an earlier call to write into when it has
    the right shape (for a source whose earlier rows are no longer mixed). ``defer``: leave the resize to
    :meth:`Rows.fill` (``img`` must not change before it runs).

    ``cubic`` (for tiny images such as a generator's 64 px, where linear shows its diamonds): OpenCV's
    cubic makes rows up to 4x the image's height, and the mix interpolates linearly from there.
    """
    w, h = size
    x0, y0, x1, y1 = rect or (0, 0, w, h)
    if img.strides[1:] != (3, 1):
        img = np.ascontiguousarray(img)  # OpenCV takes row-strided views, not column-strided ones
    # columns: narrowing averages (never skips), widening interpolates
    interp = cv2.INTER_AREA if img.shape[1] > x1 - x0 else cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    if cubic and 4 * len(img) < y1 - y0:
        img = cv2.resize(img, (img.shape[1], 4 * len(img)), interpolation=cv2.INTER_CUBIC)
    n = len(img)
    if plane is None or plane.shape != (n + 1, w * 3):
        plane = np.empty((n + 1, w * 3), np.uint8)
    p3 = plane.reshape(n + 1, w, 3)
    p3[n] = 0
    p3[:n, :x0] = 0
    p3[:n, x1:] = 0
    rows = Rows(plane, *_placed_taps(n, y0, y1, h), pending=(img, x0, x1, interp))
    if not defer:
        rows.settle()
    return rows


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel now, not on the first frame of a show."""
    o = np.zeros((2, 6), np.uint8)
    for mode in range(len(MODES) + 1):
        mix(o, np.zeros((2, 2, 3), np.uint8), mode, 0.5)
        mix(o, scale_rows(np.zeros((2, 2, 3), np.uint8), (2, 2)), mode, 0.5)
    scale_rows(np.zeros((2, 2, 3), np.uint8), (2, 2)).materialize()
    for mode in range(len(MODES) + 1):
        mix(o, Fade(None, np.zeros((2, 2, 3), np.uint8), 0.5, 0.5, (2, 2)), mode, 0.5)
