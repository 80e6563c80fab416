"""The one catalogue of effects and blend modes: name, inputs with defaults and ranges, a pure function.

It feeds the scene validator, the parameter store (``fx.<id>.<input>``), the OSC address space and
``vj effects``. Functions take and return ``(H, W, 3) uint8`` and use OpenCV's saturating uint8 kernels
so a 1080p frame costs a few milliseconds on two cores. *Local* effects (each output row depends only on
the same input row) write their result into the frame they are given: the engine hands them its own
row bands, so they cost one pass with no new buffer; ``apply`` and ``EffectRuntime`` copy first when the
frame is not theirs to change. Randomness is seeded by the frame index, so an
offline render is repeatable; state (feedback) lives in the per-instance ``ctx.state`` dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import cv2
import numpy as np
from numba import njit

from vj import mix
from vj.params import Param


@dataclass
class FrameContext:
    t: float = 0.0           # seconds since the show started
    beat: float = 0.0        # beats since the show started (fraction = phase)
    index: int = 0           # frame number
    state: dict = field(default_factory=dict)  # per effect instance (feedback buffers)
    row0: int = 0            # the first row of the frame this call sees (the engine works in row bands)
    audio: Any = None        # the audio analysis of this frame (vj.audio.Frame), None without an input


@dataclass(frozen=True)
class Effect:
    name: str
    fn: Callable[..., np.ndarray]
    inputs: tuple[Param, ...]  # named relative to the effect: fx.<id>.<input>
    help: str
    local: bool = False  # each output row depends only on the same input row: the engine may run it in bands

    def defaults(self) -> dict[str, float]:
        return {i.name: i.coerce(i.default) for i in self.inputs}


EFFECTS: dict[str, Effect] = {}


def effect(name: str, help: str, *inputs: Param, local: bool = False):
    def register(fn):
        EFFECTS[name] = Effect(name, fn, inputs, help, local)
        return fn
    return register


# ---------------------------------------------------------------- effects
@effect("rgb_split", "shift red and blue apart horizontally",
        Param("amount", 6, 0, 64, help="pixels the red and blue channels move apart"), local=True)
def rgb_split(frame, ctx, amount):
    h, w = frame.shape[:2]
    a = min(int(amount * w / 1280), w - 1)
    if a > 0 and not frame.flags.c_contiguous:  # the flat view below must be the frame's own memory
        frame[...] = rgb_split(np.ascontiguousarray(frame), ctx, amount)
    elif a > 0:  # in place, from a copy (the moves overlap). Rows as flat bytes: a pixel shift is a shift of 3a
        src = frame.copy().reshape(h, -1)  # bytes, and one masked OpenCV copy moves every red (or blue) byte
        flat = frame.reshape(h, -1)        # (1.5x faster than numpy's two strided channel copies)
        red, blue = _channel_masks(h, w - a)
        cv2.copyTo(src[:, :-3 * a], red, flat[:, 3 * a:])
        cv2.copyTo(src[:, 3 * a:], blue, flat[:, :-3 * a])
    return frame


@lru_cache(maxsize=16)
def _channel_masks(rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte masks of the red and of the blue bytes of ``rows`` x ``width`` RGB pixels."""
    red = np.zeros((rows, width * 3), np.uint8)
    red[:, 0::3] = 1
    blue = np.zeros_like(red)
    blue[:, 2::3] = 1
    return red, blue


@effect("glitch", "displace random horizontal blocks", Param("amount", 0.3, 0, 1, help="share of frames and blocks"),
        Param("block", 32, 4, 256, "int", help="block height in pixels"))
def glitch(frame, ctx, amount, block):
    rng = np.random.default_rng(ctx.index)
    if amount <= 0 or rng.random() > amount:
        return frame
    out = frame.copy()
    h, w = frame.shape[:2]
    bh = max(1, int(block * h / 720))
    for _ in range(int(1 + amount * 12)):
        y = rng.integers(0, max(1, h - bh))
        shift = int(rng.integers(-w // 6, w // 6))
        out[y:y + bh] = np.roll(frame[y:y + bh], shift, axis=1)
        if rng.random() < 0.3:
            out[y:y + bh, :, rng.integers(0, 3)] = 255
    return out


@effect("scanlines", "darken every other line band",
        Param("strength", 0.5, 0, 1, help="how much the lines darken (1: black)"),
        Param("spacing", 3, 2, 16, "int", help="pixels from one dark line to the next"),
        local=True)
def scanlines(frame, ctx, strength, spacing):
    if strength > 0:
        step = max(2, int(spacing))
        rows = frame[-ctx.row0 % step::step]  # rows 0, step, 2*step... of the whole frame
        cv2.convertScaleAbs(rows, dst=rows, alpha=1.0 - strength)  # in place: OpenCV takes the row stride
    return frame


@effect("feedback", "trails: the previous output fades under the new frame",
        Param("amount", 0.8, 0, 0.98, help="how much of the previous output stays (0: no trail)"),
        Param("zoom", 1.01, 0.9, 1.1, help="trail zoom per frame"))
def feedback(frame, ctx, amount, zoom):
    prev = ctx.state.get("prev")
    if prev is None or prev.shape != frame.shape or amount <= 0:
        ctx.state["prev"] = frame
        return frame
    if abs(zoom - 1) > 1e-4:
        prev = _zoom_rotate(prev, zoom, 0.0)
    out = cv2.max(frame, cv2.convertScaleAbs(prev, alpha=amount))
    ctx.state["prev"] = out
    return out


@effect("mirror", "mirror one half onto the other: left-right, top-bottom or four-way",
        Param("mode", 1, kind="choice", choices=("off", "left-right", "top-bottom", "four-way"),
              help="which halves are mirrored"))
def mirror(frame, ctx, mode):
    mode = int(mode)
    out = frame.copy() if mode else frame
    h, w = frame.shape[:2]
    if mode in (1, 3):
        out[:, w - w // 2:] = out[:, :w // 2][:, ::-1]
    if mode in (2, 3):
        out[h - h // 2:] = out[:h // 2][::-1]
    return out


@lru_cache(maxsize=4)
def _polar(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle of every pixel about the frame's centre (float32)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2, h / 2
    return np.hypot(x - cx, y - cy), np.arctan2(y - cy, x - cx)


@njit(nogil=True, fastmath=True, cache=True)
def _fold(r, theta, phi, seg, cx, cy, cos_t, sin_t, mx, my):
    """Source coordinates of a kaleidoscope: each pixel's angle turned by ``phi`` and folded into one
    mirrored wedge of ``seg`` radians; cos and sin from tables over the half wedge (8192 steps: under 0.1 px
    of error at 1080p's corners) instead of two trig calls a pixel."""
    half = seg / 2
    last = cos_t.shape[0] - 1
    scale = last / half
    for i in range(r.shape[0]):
        for j in range(r.shape[1]):
            t = theta[i, j] + phi
            t -= seg * math.floor(t / seg)
            k = min(int(abs(t - half) * scale + 0.5), last)  # rounding may land a hair past the wedge
            mx[i, j] = cx + r[i, j] * cos_t[k]
            my[i, j] = cy + r[i, j] * sin_t[k]


@lru_cache(maxsize=8)
def _kaleido_maps(w: int, h: int, segments: int, angle_q: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps of a kaleidoscope turned by ``angle_q`` / 1000 radians. A turning kaleidoscope needs
    new maps every frame or two: made from the cached polar coordinates by one numba pass (5 ms at 720p,
    10 ms at 1080p; numpy's arctan2, cos and sin over every pixel took 43 and 117 ms)."""
    r, theta = _polar(w, h)
    seg = np.float32(2 * np.pi / segments)
    a = np.linspace(0, seg / 2, 8193, dtype=np.float64)
    mx, my = np.empty_like(r), np.empty_like(r)
    _fold(r, theta, np.float32(angle_q / 1000.0), seg, np.float32(w / 2), np.float32(h / 2),
          np.cos(a).astype(np.float32), np.sin(a).astype(np.float32), mx, my)
    return mx, my


def warm_up() -> None:
    """Compile (or load from numba's cache) the effects' kernels now, not on the frame an effect turns on."""
    _kaleido_maps.__wrapped__(4, 2, 6, 0)


@effect("kaleidoscope", "fold the image into mirrored wedges",
        Param("segments", 6, 2, 16, "int", help="mirrored wedges"),
        Param("spin", 0.1, -2, 2, help="turns per beat x 0.1"))
def kaleidoscope(frame, ctx, segments, spin):
    h, w = frame.shape[:2]
    angle = int(((ctx.beat * spin * 0.1) % 1.0) * 2 * np.pi * 1000 / 8) * 8  # quantised: maps are cached
    mx, my = _kaleido_maps(w, h, int(segments), angle)
    return cv2.remap(frame, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _zoom_rotate(frame, zoom, angle_deg):
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, zoom)
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@effect("zoom_rotate", "zoom and rotate around the centre", Param("zoom", 1.0, 0.25, 4, help="scale about the centre"),
        Param("angle", 0, -180, 180, help="degrees"), Param("spin", 0, -90, 90, help="degrees per beat"))
def zoom_rotate(frame, ctx, zoom, angle, spin):
    a = angle + spin * ctx.beat
    if abs(zoom - 1) < 1e-4 and abs(a % 360) < 1e-4:
        return frame
    return _zoom_rotate(frame, zoom, a)


@lru_cache(maxsize=64)
def _hue_matrix(degrees: float) -> np.ndarray:
    """RGB rotation about the grey axis (a YIQ hue rotation), as one 3x3 matrix."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    k = 1 / 3
    sq = np.sqrt(k)
    return np.array([[c + (1 - c) * k, k * (1 - c) - sq * s, k * (1 - c) + sq * s],
                     [k * (1 - c) + sq * s, c + k * (1 - c), k * (1 - c) - sq * s],
                     [k * (1 - c) - sq * s, k * (1 - c) + sq * s, c + k * (1 - c)]], np.float32)


@effect("hue_shift", "rotate hues", Param("degrees", 0, -180, 180, help="rotate hues by this many degrees"),
        Param("speed", 0, -180, 180, help="degrees per beat"),
        local=True)
def hue_shift(frame, ctx, degrees, speed):
    d = round((degrees + speed * ctx.beat) % 360, 1)
    if d != 0:
        frame[...] = cv2.transform(frame, _hue_matrix(d))
    return frame


@effect("invert", "invert colours (partially below 1)", Param("amount", 1, 0, 1, help="1: full effect, 0: none"),
        local=True)
def invert(frame, ctx, amount):
    if amount >= 1:
        return cv2.bitwise_not(frame, dst=frame)
    if amount > 0:  # (1 - a) f + a (255 - f), never negative
        cv2.convertScaleAbs(frame, dst=frame, alpha=1 - 2 * amount, beta=255 * amount)
    return frame


@effect("posterize", "reduce each channel to a few levels", Param("levels", 4, 2, 32, "int", help="levels per channel"),
        local=True)
def posterize(frame, ctx, levels):
    return cv2.LUT(frame, _poster_lut(int(levels)), dst=frame)


@lru_cache(maxsize=32)
def _poster_lut(levels: int) -> np.ndarray:
    step = 255 / (levels - 1)
    return (np.round(np.round(np.arange(256) / step) * step)).clip(0, 255).astype(np.uint8)


@effect("strobe", "flash white on the beat", Param("amount", 1, 0, 1, help="1: full effect, 0: none"),
        Param("rate", 1, 0.25, 4, help="flashes per beat"),
        Param("duty", 0.15, 0.02, 0.9, help="share of each period that is lit"), local=True)
def strobe(frame, ctx, amount, rate, duty):
    phase = (ctx.beat * rate) % 1.0
    if amount > 0 and phase < duty:  # (1 - a) f + a 255
        cv2.convertScaleAbs(frame, dst=frame, alpha=1 - amount, beta=255 * amount)
    return frame


# ---------------------------------------------------------------- blend modes: (base, top) -> blended
def _screen(a, b):
    return cv2.bitwise_not(cv2.multiply(cv2.bitwise_not(a), cv2.bitwise_not(b), scale=1 / 255))


# the reference formulas (OpenCV's saturating uint8 kernels); ``blend`` computes them with opacity in one pass
BLEND_MODES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "normal": lambda a, b: b,
    "add": cv2.add,
    "screen": _screen,
    "multiply": lambda a, b: cv2.multiply(a, b, scale=1 / 255),
    "difference": cv2.absdiff,
    "lighten": cv2.max,
}


def blend(base: np.ndarray, top: np.ndarray, mode: str = "normal", opacity: float = 1.0,
          out: np.ndarray | None = None) -> np.ndarray:
    """``top`` over ``base`` with a blend mode, mixed by ``opacity`` (0 leaves base untouched): the result
    is ``base + opacity * (BLEND_MODES[mode](base, top) - base)``, except ``add``, where opacity is the top
    layer's gain (``base + opacity * top``), as VJ mixers do: light adds, it is not cross-faded.

    One pass of :mod:`vj.mix`'s kernel (the engine calls it per row band). With ``out`` (which may be
    ``base`` itself) the result is written there.
    """
    if out is None:
        out = base.copy()
    elif out is not base:
        out[...] = base
    if opacity > 0:
        mix.mix(out, top, mix.mode_code(mode), min(1.0, opacity))
    return out


def apply(name: str, frame: np.ndarray, ctx: FrameContext, **inputs: float) -> np.ndarray:
    """One effect on a frame that stays untouched (local effects get a copy)."""
    fx = EFFECTS[name]
    return fx.fn(frame.copy() if fx.local else frame, ctx, **{**fx.defaults(), **inputs})
