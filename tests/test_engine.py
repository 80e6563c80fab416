"""The engine: blend modes and effects on tiny arrays, parameter flow, genres, renders, failures, window."""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, click_track, make_generator_ckpt, run_vj, solid_video
from vj.clock import FixedClock, RealtimeClock
from vj.core.config import ConfigError
from vj.effects import BLEND_MODES, EFFECTS, FrameContext, apply, blend
from vj.engine import Engine
from vj.core.media import VideoWriter, count_frames
from vj.mix import as_frame
from vj.params import Param, ParamStore
from vj.control.cues import load_cues
from vj.scene import load_scene
from vj.tempo import Tempo


def px(*rgb) -> np.ndarray:
    return np.array(rgb, np.uint8).reshape(1, 1, 3)


# ---------------------------------------------------------------- blend modes
@pytest.mark.parametrize("mode,expected", [
    ("normal", (200, 40, 0)), ("add", (255, 140, 128)), ("screen", (222, 124, 128)),
    ("multiply", (78, 16, 0)), ("difference", (100, 60, 128)), ("lighten", (200, 100, 128)),
])
def test_blend_modes_match_their_formulas(mode, expected):
    base, top = px(100, 100, 128), px(200, 40, 0)
    assert np.abs(blend(base, top, mode).astype(int) - expected).max() <= 1


@pytest.mark.parametrize("mode", sorted(BLEND_MODES))
def test_blend_with_opacity_is_the_mix_of_base_and_the_blend(mode):
    rng = np.random.default_rng(1)
    base, top = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    for opacity in (0.25, 0.6, 1.0):
        full = BLEND_MODES[mode](base, top).astype(float)
        expected = (1 - opacity) * base + opacity * full
        if mode == "add":  # light adds: opacity is the top layer's gain, as in a VJ mixer
            expected = np.minimum(base + opacity * top.astype(float), 255)
        assert np.abs(blend(base, top, mode, opacity).astype(float) - expected).max() <= 1.01, opacity
        out = base.copy()  # in place, as the engine's row bands do
        assert blend(out, top, mode, opacity, out=out) is out
        assert np.abs(out.astype(float) - expected).max() <= 1.01


@pytest.mark.parametrize("name", sorted(n for n, fx in EFFECTS.items() if fx.local))
def test_local_effects_give_the_same_frame_in_row_bands(name):
    """The engine runs local effects on its own row bands, in place: banding must not show."""
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (37, 20, 3), dtype=np.uint8)
    inputs = {i.name: (i.lo + i.hi) / 3 for i in EFFECTS[name].inputs}
    ctx = FrameContext(t=1.3, beat=4.05, index=7)
    banded = frame.copy()
    whole = apply(name, frame, ctx, **inputs)
    assert (frame == banded).all()  # apply left its input alone
    for y0 in range(0, 37, 10):
        band = banded[y0:y0 + 10]
        assert EFFECTS[name].fn(band, FrameContext(t=1.3, beat=4.05, index=7, row0=y0), **inputs) is band
    assert (banded == whole).all()


def test_blend_opacity_mixes_and_zero_keeps_base():
    base, top = px(0, 0, 0), px(200, 100, 50)
    assert tuple(blend(base, top, "normal", 0.5)[0, 0]) == (100, 50, 25)
    assert (blend(base, top, "add", 0.0) == base).all()
    assert set(BLEND_MODES) == {"normal", "add", "screen", "multiply", "difference", "lighten"}


@pytest.mark.parametrize("cubic", [False, True])
def test_rows_are_the_opencv_upscale_placed_in_the_frame(cubic):
    """A layer handed to the mix as rows (upscaled horizontally; the mix does the vertical half) shows the
    same pixels as OpenCV's resize, inside its rectangle, black around it."""
    import cv2

    from vj.mix import scale_rows

    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), (0, 0), 1)
    got = scale_rows(img, (200, 120), cubic, rect=(10, 5, 190, 113)).materialize()
    assert got.shape == (120, 200, 3)
    want = np.zeros_like(got)
    want[5:113, 10:190] = cv2.resize(img, (180, 108), interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)
    assert np.abs(got.astype(int) - want).max() <= (3 if cubic else 1)  # cubic: up to 4x, then linear
    assert (got[:5] == 0).all() and (got[113:] == 0).all() and (got[:, :10] == 0).all()


def test_deferred_rows_filled_in_parts_equal_rows_resized_at_once():
    from vj.mix import scale_rows, settle_all

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    eager = scale_rows(img, (120, 90), rect=(7, 3, 110, 88))
    deferred = scale_rows(img, (120, 90), rect=(7, 3, 110, 88), defer=True)
    seen = []

    def run(fn, jobs):  # any order, as the engine's threads take them
        seen.extend(jobs)
        return [fn(j) for j in jobs[::-1]]

    settle_all([None, deferred, eager], run, 3)
    assert len(seen) == 3 and seen[0][1] == 0 and seen[-1][2] == 50  # three runs of the deferred rows only
    assert deferred.pending is None
    assert np.array_equal(deferred.plane, eager.plane)
    late = scale_rows(img, (120, 90), defer=True)  # read without the engine's fill stage: filled on use
    assert np.array_equal(late.materialize(), scale_rows(img, (120, 90)).materialize())


def test_background_workers_leave_the_cpu_to_the_frame_loop():
    """Decoders and the live generator run at the lowest priority (Linux: nice 19); the frame loop does not."""
    import threading

    from vj.core.priority import background_priority

    if not hasattr(os, "getpriority"):
        pytest.skip("no POSIX priorities on this platform")
    seen = {}

    def worker():
        background_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, 0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["nice"] == 19
    assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # the calling (frame) thread is untouched


@pytest.mark.parametrize("mode", sorted(BLEND_MODES))
def test_mixing_rows_in_bands_is_blending_the_upscaled_frame(mode):
    from vj.mix import MODES, mix, scale_rows

    assert MODES == tuple(BLEND_MODES)  # the kernel's mode codes follow the catalogue
    rng = np.random.default_rng(4)
    rows = scale_rows(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), (64, 37))
    base = rng.integers(0, 256, (37, 64, 3), dtype=np.uint8)
    banded = base.copy()
    for y0 in range(0, 37, 10):
        mix(banded[y0:y0 + 10], rows, MODES.index(mode), 0.7, y0)
    assert np.abs(banded.astype(int) - blend(base, rows.materialize(), mode, 0.7)).max() <= 1


@pytest.mark.parametrize("mode", sorted(BLEND_MODES))
def test_a_fade_mixed_in_bands_is_blending_the_crossfaded_layer(mode):
    """A genre switch's layer (two genres' pixels weighted, tiles drawn over them) mixed band by band equals
    the crossfaded frame blended whole: the mix finishes the fade without a full-frame copy."""
    from vj.mix import MODES, Fade, mix, scale_rows

    rng = np.random.default_rng(5)
    old = scale_rows(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), (64, 37))  # rows (an upscale)
    new = rng.integers(0, 256, (37, 64, 3), dtype=np.uint8)                       # a frame
    tile = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)
    base = rng.integers(0, 256, (37, 64, 3), dtype=np.uint8)
    for a, b, tiles in ((old, new, []), (None, new, []), (old, new, [(tile, -4, 8), (tile, 60, 30)])):
        fade = Fade(a, b, 0.3, 0.7, (64, 37), tiles)
        layer = 0.7 * new.astype(np.float32) + 0.3 * (0 if a is None else old.materialize().astype(np.float32))
        layer = np.round(layer).astype(np.uint8)
        for img, x, y in tiles:  # clipped at the frame's edges
            x0, y0, x1, y1 = max(0, x), max(0, y), min(64, x + 9), min(37, y + 9)
            layer[y0:y1, x0:x1] = img[y0 - y:y1 - y, x0 - x:x1 - x]
        assert np.abs(fade.materialize().astype(int) - layer).max() <= 1
        banded = base.copy()
        for y0 in range(0, 37, 10):
            mix(banded[y0:y0 + 10], fade, MODES.index(mode), 0.7, y0)
        assert np.abs(banded.astype(int) - blend(base, layer, mode, 0.7)).max() <= 1


# ---------------------------------------------------------------- effects
def frame_lr() -> np.ndarray:
    f = np.zeros((4, 8, 3), np.uint8)
    f[:, :4] = (255, 0, 0)
    f[:, 4:] = (0, 0, 255)
    return f


def test_invert_posterize_mirror():
    ctx = FrameContext()
    assert tuple(apply("invert", px(10, 20, 30), ctx)[0, 0]) == (245, 235, 225)
    assert tuple(apply("posterize", px(100, 140, 250), ctx, levels=2)[0, 0]) == (0, 255, 255)
    m = apply("mirror", frame_lr(), ctx, mode=1)
    assert (m[:, 4:] == m[:, :4][:, ::-1]).all() and (m == (255, 0, 0)).all(-1).all()


def test_rgb_split_moves_red_right_and_blue_left():
    f = np.zeros((2, 1280, 3), np.uint8)
    f[:, 640] = 255
    out = apply("rgb_split", f, FrameContext(), amount=5)
    assert out[0, 645, 0] == 255 and out[0, 635, 2] == 255 and out[0, 640, 1] == 255
    rng = np.random.default_rng(0)
    for w, amount in ((1280, 5), (640, 64), (20, 64)):  # the last shifts by all but one pixel
        f = rng.integers(0, 256, (7, w, 3), np.uint8)
        a = min(int(amount * w / 1280), w - 1)
        want = f.copy()
        want[:, a:, 0], want[:, :-a, 2] = f[:, :-a, 0], f[:, a:, 2]
        assert np.array_equal(apply("rgb_split", f, FrameContext(), amount=amount), want)
        band = f.copy()[::2]  # not contiguous: still moved in place
        EFFECTS["rgb_split"].fn(band, FrameContext(), amount=amount)
        assert np.array_equal(band, want[::2])


def test_scanlines_darken_every_nth_row():
    out = apply("scanlines", np.full((6, 4, 3), 200, np.uint8), FrameContext(), strength=0.5, spacing=3)
    assert (out[::3] == 100).all() and (out[1::3] == 200).all()


def test_strobe_follows_the_beat():
    f = np.zeros((2, 2, 3), np.uint8)
    assert (apply("strobe", f, FrameContext(beat=4.05), amount=1, rate=1, duty=0.2) == 255).all()
    assert (apply("strobe", f, FrameContext(beat=4.5), amount=1, rate=1, duty=0.2) == 0).all()


def test_hue_shift_rotates_red_to_green():
    out = apply("hue_shift", np.full((2, 2, 3), (200, 0, 0), np.uint8), FrameContext(), degrees=120)
    r, g, b = out[0, 0].astype(int)
    assert g > 150 and r < 40 and b < 40


def test_zoom_rotate_identity_and_turn():
    f = frame_lr()
    assert apply("zoom_rotate", f, FrameContext()) is f
    turned = apply("zoom_rotate", np.repeat(np.repeat(f, 8, 0), 4, 1), FrameContext(), angle=180)
    assert turned[16, 2, 2] > 200 and turned[16, -3, 0] > 200  # left and right swapped


def test_feedback_leaves_a_fading_trail():
    ctx = FrameContext(state={})
    bright = np.full((2, 2, 3), 200, np.uint8)
    apply("feedback", bright, ctx, amount=0.5, zoom=1.0)
    out = apply("feedback", np.zeros_like(bright), ctx, amount=0.5, zoom=1.0)
    assert (out == 100).all()


def test_glitch_is_repeatable_per_frame_and_kaleidoscope_is_symmetric():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    a = apply("glitch", f, FrameContext(index=3), amount=1.0)
    assert np.array_equal(a, apply("glitch", f, FrameContext(index=3), amount=1.0)) and not np.array_equal(a, f)
    k = apply("kaleidoscope", f, FrameContext(), segments=4, spin=0)
    assert np.abs(k[1:].astype(int) - k[1:][::-1].astype(int)).mean() < 2  # mirrored about the centre row


def test_kaleidoscope_maps_fold_every_angle_into_one_mirrored_wedge():
    from vj.effects import _kaleido_maps

    w, h = 320, 180
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r, theta = np.hypot(x - w / 2, y - h / 2), np.arctan2(y - h / 2, x - w / 2)
    for segments, angle_q in ((6, 0), (6, 1234), (5, 3000), (16, 6200)):
        seg = 2 * np.pi / segments
        a = np.abs(((theta + angle_q / 1000) % seg) - seg / 2)
        mx, my = _kaleido_maps(w, h, segments, angle_q)
        # within a tenth of a pixel of the closed form (pixels on a wedge's edge may fold either way)
        err = np.hypot(mx - (w / 2 + r * np.cos(a)), my - (h / 2 + r * np.sin(a)))
        assert np.mean(err < 0.1) > 0.999, (segments, angle_q)


def test_every_effect_keeps_shape_and_dtype():
    f = np.random.default_rng(1).integers(0, 255, (36, 64, 3), dtype=np.uint8)
    for name, fx in EFFECTS.items():
        out = apply(name, f, FrameContext(t=1.0, beat=2.3, index=5, state={}))
        assert out.shape == f.shape and out.dtype == np.uint8, name


# ---------------------------------------------------------------- parameters and tempo
def test_param_store_clamps_drops_counts_and_last_value_wins():
    s = ParamStore()
    s.define(Param("a", 0.5))
    s.define(Param("mode", 0, 0, 2, kind="choice", choices=("x", "y", "z")))
    for v in (0.2, 7.0, 0.9):
        s.push("a", v)
    s.push("nope", 1)
    s.push("a", "not a number")
    s.push("a", float("nan"))
    s.push("mode", "z")
    d = s.drain()
    assert s["a"] == 0.9 and d.changed["a"] == 0.9 and s.choice("mode") == "z"
    assert s.dropped == {"unknown": 1, "bad value": 2}
    s.push("a", ("add", 0.5))
    s.drain()
    assert s["a"] == 1.0  # clamped
    s.push("a", "toggle")
    s.drain()
    assert s["a"] == 0.0


def test_tap_tempo_and_phase_continuity():
    tempo = Tempo(100)
    for t in (10.0, 10.5, 11.0, 11.5):
        tempo.tap(t)
    assert tempo.bpm == pytest.approx(120)
    t, last = 11.5, tempo.beat(11.5)
    error = abs(tempo.phase_error(11.5))
    while t < 17:  # the clock eases onto the taps' phase: no jump, no beat skipped or doubled
        t += 1 / 60
        tempo.update(t)
        assert 0 < tempo.beat(t) - last < 1.1 * 2 / 60
        last = tempo.beat(t)
        if abs(t - 13.0) < 1e-3:
            assert abs(tempo.phase_error(t)) < error - 0.2  # closing at 8% of the tempo: 0.16 beats/s
    assert error == pytest.approx(0.5) and tempo.beat(16.0) == pytest.approx(round(tempo.beat(16.0)), abs=0.02)
    for t in (20.0, 20.4, 20.8):
        tempo.tap(t)
    assert tempo.bpm == pytest.approx(150)
    before = tempo.beat(30.0)
    tempo.set_bpm(90, 30.0)
    assert tempo.beat(30.0) == pytest.approx(before)


# ---------------------------------------------------------------- scenes on real files
def test_generator_blends_between_its_images_and_repeats_exactly(tmp_path):
    from vj.sources import GeneratorSource

    ckpt = make_generator_ckpt(tmp_path / "g.pt", 3)

    def run():
        src = GeneratorSource((64, 64), ckpt, exact=True)
        try:
            p = {**GeneratorSource.defaults(), "speed": 4.0, "rate": 10}
            return [as_frame(src.frame(FrameContext(t=i / 60), p)).astype(int)
                    for i in range(13)]
        finally:
            src.close()

    frames = run()
    # 60 fps from 10 images a second: each frame moves a sixth of the way to the next image
    steps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]
    jump = np.abs(frames[6] - frames[0]).mean()  # one whole generator image apart
    assert jump > 1 and max(steps) < 0.5 * jump
    assert all(np.array_equal(a, b) for a, b in zip(frames, run()))  # offline: the same frames every time


def test_a_live_generator_slower_than_its_rate_blends_over_the_time_it_takes(tmp_path):
    import time

    from vj.sources import GeneratorSource

    src = GeneratorSource((64, 64), make_generator_ckpt(tmp_path / "g.pt", 3))  # live: a worker renders
    render = src._render

    def slow(*a):  # a network that makes 6-7 images a second, as a 256 px FastGAN on one CPU core does
        time.sleep(0.15)
        return render(*a)

    src._render = slow
    p = {**GeneratorSource.defaults(), "speed": 4.0, "rate": 20}
    try:
        frames, t0 = [], time.monotonic()
        for i in range(90):  # 1.5 s of a 60 fps show
            time.sleep(max(0.0, t0 + i / 60 - time.monotonic()))
            frames.append(as_frame(src.frame(FrameContext(t=time.monotonic() - t0), p)).astype(int))
    finally:
        src.close()
    moving = [np.abs(b - a).mean() > 0 for a, b in zip(frames[45:], frames[46:])]  # once the worker's pace is known
    # blended over the 1/20 s the rate promises, each image would show for 3 frames and hold for 6
    assert src._render_s > 0.14 and sum(moving) > 0.8 * len(moving)


def test_a_cue_reaches_the_effect_input_and_switches_genre(show):
    d, scene_path, cues_path = show
    scene = load_scene(scene_path)
    engine = Engine(scene, exact=True, cues=load_cues(cues_path, scene.bpm))
    clock = FixedClock(10)
    frames = [engine.step(clock.tick()) for _ in range(25)]
    engine.close()
    red = frames[5].mean((0, 1))
    assert red[0] > 150 and red[2] < 60
    blue = frames[18].mean((0, 1))  # after the 0.5 s crossfade, before the invert cue at 2 s
    assert blue[2] > 150 and blue[0] < 60
    inverted = frames[22].mean((0, 1))  # beat 4 at 120 BPM = 2 s: invert on
    assert inverted[0] > 150 and inverted[2] < 100
    assert engine.store["fx.inv.amount"] == 1.0


def test_genre_switch_changes_clip_and_generator_sources(show):
    d, scene_path, _ = show
    engine = Engine(load_scene(scene_path), exact=True)
    engine.store.set("layer.gan.opacity", 1.0)
    clock = FixedClock(10)
    engine.step(clock.tick())
    before = {layer.spec.name: layer.sources["red"] for layer in engine.layers}
    engine.store.push("genre", "blue", "test")
    for _ in range(8):
        engine.step(clock.tick())
    after = {layer.spec.name: layer.sources["blue"] for layer in engine.layers}
    assert engine.genres.current == "blue"
    for name in before:
        assert after[name] is not None and after[name] is not before[name]
    assert after["gan"].G is not before["gan"].G
    engine.close()


def test_live_genre_sources_are_made_off_the_frame_loop_and_a_switch_waits_for_them(show, monkeypatch):
    """Loading a generator (and its ONNX export) or a mosaic takes tenths of a second: live, the engine makes
    every genre's sources on its preparer thread, and a switch asked for before they exist starts its fade
    once they do, while the current genre plays on."""
    import threading

    d, scene_path, _ = show
    made_on, release = {}, threading.Event()
    make = Engine._make_source

    def tracked(self, kind, genre):
        if genre == "blue":
            release.wait(10)  # hold blue's sources back until the switch has been asked for
        made_on[kind, genre] = threading.current_thread().name
        return make(self, kind, genre)

    monkeypatch.setattr(Engine, "_make_source", tracked)
    engine = Engine(load_scene(scene_path), exact=False)
    try:
        clock = RealtimeClock(60)
        engine.step(clock.tick())
        engine.store.push("genre", "blue", "test")
        for _ in range(3):
            engine.step(clock.tick())
        assert engine.genres.current == "red" and engine.genres.fade_from is None  # waiting: red plays on
        release.set()
        for _ in range(3000):
            engine.step(clock.tick())
            if engine.genres.current == "blue":
                break
        assert engine.genres.current == "blue" and engine.genres.fade_from == "red"  # and now the fade
        assert {k: v.startswith("genre-prep") for k, v in made_on.items() if k[1] == "blue"} == \
            {("clip", "blue"): True, ("generator", "blue"): True}
    finally:
        release.set()
        engine.close()


def test_offline_render_has_the_exact_frame_count_and_repeats_exactly(show, tmp_path):
    d, scene_path, cues_path = show
    for name in ("a.mp4", "b.mp4"):
        run_vj("render", str(scene_path), "--cues", str(cues_path), "--seconds", "3", "--fps", "12",
               "--out", str(tmp_path / name), "--log", str(tmp_path / "show.log"), check=True)
    assert count_frames(tmp_path / "a.mp4") == 36
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.mp4", "b.mp4")]
    assert digest[0] == digest[1]
    log = (tmp_path / "show.log").read_text()
    assert "genre: red -> blue at 1.00s" in log and "cue invert at 2.00s" in log


def test_missing_clip_and_raising_source_show_black_and_log_once(show, tmp_path, caplog):
    d, scene_path, _ = show
    text = scene_path.read_text().replace('clips = ["blue.mp4"]', 'clips = ["gone.mp4"]')
    broken = d / "broken.toml"
    broken.write_text(text)
    with caplog.at_level(logging.WARNING):
        scene = load_scene(broken)
        engine = Engine(scene, exact=True, cues=[])
        engine.genres.request("blue", 0.0)
        clock = FixedClock(10)
        frames = [engine.step(clock.tick()) for _ in range(10)]
    assert "gone.mp4" in caplog.text and "matches no file" in caplog.text
    assert frames[-1].max() == 0  # blue genre: no clip -> black, the show went on
    assert caplog.text.count("layer clips (blue) could not be made") == 1
    engine.close()


def test_a_layer_sits_out_a_genre_without_its_media_without_black_or_warnings(show, caplog):
    """A clips-only genre under an opaque generator layer shows its clips (the layer is left out), and says
    nothing; a genre whose named media is missing still shows black and says so (the test above)."""
    d, scene_path, _ = show
    text = (scene_path.read_text().replace('generator = "g_blue.pt"\n', "")
            .replace('blend = "add"\nopacity = 0.0', 'blend = "normal"\nopacity = 1.0'))
    assert 'generator = "g_blue.pt"' not in text and 'blend = "normal"' in text
    (d / "clips_only.toml").write_text(text)
    with caplog.at_level(logging.WARNING):
        engine = Engine(load_scene(d / "clips_only.toml"), exact=True, cues=[])
        clock = FixedClock(10)
        red = engine.step(clock.tick())
        engine.genres.request("blue", 0.1)
        frames = [engine.step(clock.tick()) for _ in range(12)]
    blue = frames[-1].reshape(-1, 3).mean(0)
    assert blue[2] > 150 and blue[0] < 60  # the blue clip, not the generator layer's black
    # the switch fades red's generator out over blue's clip: no dip to black, then a pop, on the way
    means = np.array([f.reshape(-1, 3).mean(0) for f in [red, *frames]])
    assert means.sum(1).min() > 0.8 * min(means[0].sum(), means[-1].sum())  # the old way dipped to 0.3
    assert np.abs(red.astype(int) - frames[-1]).mean() > 20  # red showed its generator over its clip
    assert caplog.text == "" and engine.compositor.black_frames == 0
    engine.close()


def test_scene_errors_name_file_key_and_value(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[layers]]\nname = "x"\nsource = "clip"\nblend = "overlay"\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[\[layers\]\]\[0\]: blend = 'overlay'"):
        load_scene(bad)
    bad.write_text('[output]\nsize = "1920x1080"\nfsp = 30\n')
    with pytest.raises(ConfigError, match="unknown key 'fsp'"):
        load_scene(bad)
    bad.write_text('[[effects]]\ntype = "blur"\n')
    with pytest.raises(ConfigError, match="'blur' is not an effect"):
        load_scene(bad)


def test_presets_check_passes_on_every_shipped_preset():
    proc = run_vj("presets", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 with errors" in proc.stdout


def test_record_output_keeps_true_timing(tmp_path):
    from vj.outputs.file import RecordOutput

    rec = RecordOutput(tmp_path / "r.mp4", 10, (32, 32))
    for t in (0.0, 0.1, 0.5, 0.6):  # a stall between 0.1 and 0.5 s
        rec.write(np.full((32, 32, 3), int(t * 200), np.uint8), t)
    rec.close()
    assert count_frames(tmp_path / "r.mp4") == 7  # slots 0..6; the stalled frame is held


# ---------------------------------------------------------------- the window
def test_window_shows_the_composed_frame_and_keys_act(show, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    import pygame

    from vj.outputs.window import NoDisplay, WindowOutput

    d, scene_path, _ = show
    engine = Engine(load_scene(scene_path), exact=True)
    with pytest.raises(NoDisplay, match=r"--display 5: this machine has 1 display \(0-0\)"):
        WindowOutput(engine.size, engine.store, engine.keys, display=5)
    window = WindowOutput(engine.size, engine.store, engine.keys)
    clock = FixedClock(10)
    frame = engine.step(clock.tick())
    window.write(frame, 0.0)
    assert np.array_equal(window.screenshot(), frame)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_i, mod=0, unicode="i", scancode=0))
    window.write(frame, 0.1)
    engine.step(clock.tick())
    assert engine.store["fx.inv.amount"] == 1.0  # the key reached the effect's input
    # the pointer: shown while it moves, hidden once it rests (no arrow over the projection)
    import vj.outputs.window as win

    now = [1000.0]
    monkeypatch.setattr(win.time, "monotonic", lambda: now[0])
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=(5, 5), rel=(1, 1), buttons=(0, 0, 0)))
    window.write(frame, 0.2)
    assert pygame.mouse.get_visible()
    now[0] += win.CURSOR_IDLE + 0.1
    window.write(frame, 0.3)
    assert not pygame.mouse.get_visible()
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=(6, 5), rel=(1, 0), buttons=(0, 0, 0)))
    window.write(frame, 0.4)
    assert pygame.mouse.get_visible()
    window.close()
    engine.close()


@pytest.mark.skipif(not os.environ.get("VJ_TEST_DISPLAY"), reason="no Xvfb (scripts/test.sh starts one)")
def test_real_window_screenshot_under_xvfb(show, tmp_path):
    d, scene_path, _ = show
    script = f"""
import numpy as np, time
from PIL import ImageGrab
from vj.scene import load_scene
from vj.engine import Engine
from vj.clock import FixedClock
from vj.outputs.window import WindowOutput
e = Engine(load_scene({str(scene_path)!r}), exact=True)
w = WindowOutput(e.size, e.store, e.keys)
f = e.step(FixedClock(10).tick())
for _ in range(5):
    w.write(f, 0.0); time.sleep(0.1)
shot = np.asarray(ImageGrab.grab(xdisplay={os.environ.get('VJ_TEST_DISPLAY')!r}).convert('RGB'))
np.save({str(tmp_path / 'shot.npy')!r}, shot)
np.save({str(tmp_path / 'frame.npy')!r}, f)
"""
    env = {**os.environ, "SDL_VIDEODRIVER": "x11", "DISPLAY": os.environ["VJ_TEST_DISPLAY"]}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    shot, frame = np.load(tmp_path / "shot.npy"), np.load(tmp_path / "frame.npy")
    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "screenshot.png")
    # the window sits somewhere on the screen: find the frame's mean colour in a frame-sized region
    h, w = frame.shape[:2]
    red_pixels = (shot[..., 0] > 150) & (shot[..., 2] < 80)
    assert red_pixels.sum() >= 0.8 * h * w


def test_fullscreen_keeps_the_shows_shape_on_any_screen():
    from vj.outputs.window import fit

    assert fit((320, 180), (1280, 720)) == (0, 0, 1280, 720)
    assert fit((1920, 1080), (1280, 1024)) == (0, 152, 1280, 720)   # bars above and below
    assert fit((640, 480), (1920, 1080)) == (240, 0, 1440, 1080)    # bars left and right


@pytest.mark.skipif(not os.environ.get("VJ_TEST_DISPLAY"), reason="no Xvfb (scripts/test.sh starts one)")
def test_fullscreen_without_a_window_manager_fills_the_screen(tmp_path):
    """A bare X server (a kiosk's xinit) never answers SDL's fullscreen request: the window kept the show's
    size and SDL's scaling cropped the picture to its top-left. Xvfb here runs no window manager."""
    script = f"""
import numpy as np, time
from PIL import ImageGrab
from vj.control.keys import KeyBindings
from vj.outputs.window import WindowOutput, x11_window_manager
from vj.params import ParamStore
assert x11_window_manager() is False
frame = np.zeros((180, 320, 3), np.uint8)
frame[:, :160, 0] = 255
frame[:, 160:, 2] = 255
frame[60:120, 40:100] = 255
w = WindowOutput((320, 180), ParamStore(), KeyBindings({{}}), fullscreen=True)
for _ in range(5):
    w.write(frame, 0.0); time.sleep(0.1)
grab = lambda: np.asarray(ImageGrab.grab(xdisplay={os.environ.get('VJ_TEST_DISPLAY')!r}).convert('RGB'))
np.save({str(tmp_path / 'shot.npy')!r}, grab())
w.close()
import pygame
w = WindowOutput((240, 180), ParamStore(), KeyBindings({{}}), fullscreen=True)  # 4:3 on 16:9: bars at the sides
for _ in range(2):  # the help shown, then hidden again
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_h, mod=0, unicode="h", scancode=0))
    for _ in range(3):
        w.write(frame[:, :240], 0.0); time.sleep(0.05)
np.save({str(tmp_path / 'bars.npy')!r}, grab())
"""
    env = {**os.environ, "SDL_VIDEODRIVER": "x11", "DISPLAY": os.environ["VJ_TEST_DISPLAY"]}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    shot = np.load(tmp_path / "shot.npy").astype(int)
    h, w = shot.shape[:2]
    sx, sy = w / 320, h / 180
    assert shot[h // 2, int(10 * sx), 0] > 200 and shot[h // 2, w - int(10 * sx), 2] > 200  # both edges shown
    assert shot[int(90 * sy), int(70 * sx)].min() > 200        # the white square, scaled to the screen
    assert shot[int(30 * sy), int(70 * sx)].tolist()[1] < 60   # ... and not above it
    bars = np.load(tmp_path / "bars.npy").astype(int)
    side = (w - h * 4 // 3) // 2
    assert bars[:, : side - 2].max() == 0 and bars[:, w - side + 2:].max() == 0  # black: no help text left there
    assert bars[h // 2, side + 20, 0] > 200 and bars[h // 2, w - side - 20, 2] > 200  # the picture between them


def test_demo_in_a_reduced_size_finishes_and_writes_its_video(tmp_path):
    proc = run_vj("demo", "--out", str(tmp_path / "demo"), "--train-seconds", "8", "--seconds", "2",
                  "--size", "320x180", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "demo"
    assert count_frames(out / "showcase.mp4") == 60
    assert (out / "poster.png").exists() and (out / "runs" / "mosaic" / "demo" / "grid.csv").exists()
    for genre in ("plasma", "tunnel", "particles", "typography"):
        assert (out / "runs" / "gan" / genre / "clips" / "learning.mp4").exists()
    assert "demo finished" in proc.stderr and "showcase.mp4" in proc.stderr


# ---------------------------------------------------------------- audio as a control input
def test_audio_onsets_and_level_are_found_in_a_click_track(tmp_path):
    from vj.audio import AudioFileInput

    track = AudioFileInput(click_track(tmp_path / "c.wav"), fps=20)
    frames = [track.read(i) for i in range(60)]
    hits = [i for i, f in enumerate(frames) if f.onset]
    assert [round(h / 20 - 0.25, 1) % 0.5 for h in hits] == [0.0] * len(hits)  # on the clicks only
    assert len(hits) >= 5 and max(f.level for f in frames) > 0.5


def test_render_with_a_track_follows_it_and_muxes_it(show, tmp_path):
    from vj.core.media import probe

    d, scene_path, _ = show
    scene = tmp_path / "audio.toml"
    scene.write_text(scene_path.read_text().replace('[keys]', '[audio]\nonset = "fx.inv.amount toggle"\n'
                     'level = "layer.gan.opacity"\n\n[keys]').replace('clips = ["red.mp4"]',
                                                                      f'clips = ["{d / "red.mp4"}"]')
                     .replace('generator = "g_red.pt"', f'generator = "{d / "g_red.pt"}"')
                     .replace('clips = ["blue.mp4"]', f'clips = ["{d / "blue.mp4"}"]')
                     .replace('generator = "g_blue.pt"', f'generator = "{d / "g_blue.pt"}"'))
    track = click_track(tmp_path / "c.wav")
    proc = run_vj("render", str(scene), "--seconds", "2", "--fps", "10", "--audio", str(track),
                  "--out", str(tmp_path / "a.mp4"), check=True)
    assert "wrote" in proc.stderr
    import subprocess as sp

    from vj.core.media import ffmpeg_exe

    header = sp.run([ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "a.mp4")], capture_output=True,
                    text=True).stderr
    assert "Audio: aac" in header and count_frames(tmp_path / "a.mp4") == 20
    assert probe(tmp_path / "a.mp4").duration <= 2.2
    # the same routes in-process: onsets toggle the invert, the level moves the opacity
    from vj.audio import AudioFileInput

    engine = Engine(load_scene(scene), exact=True)
    engine.attach_audio(AudioFileInput(track, 10))
    clock = FixedClock(10)
    inverted = []
    for _ in range(20):
        engine.step(clock.tick())
        inverted.append(engine.store["fx.inv.amount"])
    engine.close()
    assert 0 < sum(inverted) < 20 and engine.store["audio.level"] > 0


def test_render_scale_renders_small_and_outputs_full_size(show):
    d, scene_path, _ = show
    engine = Engine(load_scene(scene_path), exact=True, size=(192, 128), render_scale=0.5)
    frame = engine.step(FixedClock(10).tick())
    assert engine.render_size == (96, 64) and frame.shape == (128, 192, 3)
    assert engine.layers[0].sources["red"].size == (96, 64)
    assert frame.mean(axis=(0, 1))[0] > 150  # the red clip, upscaled
    engine.close()


# ---------------------------------------------------------------- show-proof: media, limits, exits
def test_a_clip_that_cannot_be_read_is_skipped_and_the_layer_plays_on(show, tmp_path, caplog):
    import shutil

    d, scene_path, _ = show
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        shutil.copy(d / "red.mp4", tmp_path / name)
    scene = tmp_path / "s.toml"
    scene.write_text('[output]\nsize = "96x64"\nfps = 10\n[tempo]\nbpm = 240\n[genres.red]\n'
                     'clips = ["a.mp4", "b.mp4", "c.mp4"]\n[[layers]]\nname = "clips"\nsource = "clip"\n'
                     'settings = { jump_beats = 1 }\n')
    loaded = load_scene(scene)           # the scene found three clips...
    (tmp_path / "b.mp4").write_bytes(b"")  # ...then one was damaged (deleted, truncated) before it was read
    engine = Engine(loaded, exact=True)
    clock = FixedClock(10)
    with caplog.at_level(logging.WARNING):
        frames = [engine.step(clock.tick()) for _ in range(40)]  # a jump to a random clip every 0.25 s
    engine.close()
    assert all(f.mean() > 30 for f in frames[1:])  # never black: the broken clip is skipped, not the layer
    assert caplog.text.count("clip b.mp4 cannot be played") == 1


def test_the_live_mosaic_view_never_leaves_its_map(tmp_path, genre_videos):
    from mosaic.animate import MosaicAnimator
    from mosaic.pipeline import BuildSettings, build

    built = build([genre_videos["plasma"]], tmp_path / "m", BuildSettings(fps=10, tile=32, grid=(8, 3),
                                                                           strip_frames=2, strip_tile=16))
    anim = MosaicAnimator(built, (320, 180))
    for i in range(600):  # a minute of fast drift at the default zoom, the focus on a corner cell
        if i == 300:
            anim.follow_point(anim.centers[0])
        anim.frame(i / 10, drift=3.0, zoom=2.5, follow=1.0 if i >= 300 else 0.0, play=0)
        z = max(1.0, 2.5 * (1 + 0.15 * np.sin(anim.phase * 0.19)))
        assert anim.span(anim.view, z)[1] == (0, 0, 320, 180), i  # the whole output shows the map


@pytest.mark.parametrize("args,words", [
    (["--fps", "-30"], "out of range"), (["--seconds", "-5"], "out of range"), (["--fps", "1e6"], "out of range"),
    (["--fps", "nan"], "not a finite number"), (["--render-scale", "1000"], "out of range"),
    (["--size", "100000x100000"], "larger than 8K"), (["--seconds", "1e12"], "out of range"),
])
def test_numbers_out_of_bounds_are_one_line_errors(show, tmp_path, args, words):
    proc = run_vj("render", str(show[1]), "--out", str(tmp_path / "o.mp4"), *(["--seconds", "1"] if
                  "--seconds" not in args else []), *args)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.mp4").exists()


def test_a_scene_too_big_for_the_machine_is_refused_before_it_starts(show, tmp_path):
    from vj.engine import _check_memory

    many = "".join(f'[[layers]]\nname = "l{i}"\nsource = "solid"\n' for i in range(10_000))
    (tmp_path / "many.toml").write_text(many)
    with pytest.raises(ConfigError, match="10000 layers; at most 32"):
        load_scene(tmp_path / "many.toml")
    with pytest.raises(ValueError, match="GiB for its frames"):
        _check_memory(1 << 50)


@pytest.mark.parametrize("content,words", [(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
                                           ("[output]\n".encode("utf-16"), "not UTF-8"),
                                           (b"a = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                                           (b"[output\n", "not valid TOML")])
def test_unreadable_settings_files_are_named_in_one_line(tmp_path, content, words):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=words) as info:
        load_scene(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_live_seconds_count_wall_time_not_frames(show):
    """--seconds live is time on the clock: a slow machine shows fewer frames, it does not run longer."""
    class SlowClock:  # a machine that makes 2 frames a second of a 10 fps show
        t = -0.5

        def tick(self):
            self.t += 0.5
            return self.t

    engine = Engine(load_scene(show[1]), exact=True)
    shown = engine.run(SlowClock(), [], seconds=2.0)
    engine.close()
    assert shown == 4  # t = 0, 0.5, 1.0, 1.5 (the old loop counted 20 frames = 10 s here)


@pytest.mark.slow
def test_twenty_short_live_shows_all_exit_cleanly(show):
    """A thread left inside ONNX Runtime at exit ended `vj live` with `terminate called` (exit 134)."""
    codes = []
    for _ in range(20):
        proc = run_vj("live", str(show[1]), "--headless", "--seconds", "1", timeout=120)
        codes.append(proc.returncode)
        assert "terminate called" not in proc.stderr
    assert codes == [0] * 20


def test_after_the_warm_up_no_fade_compiles_a_kernel_on_the_frame_loop():
    """numba compiles a kernel once per argument types (array flags included); a type the warm-up missed
    compiles on the show's first genre switch: 2 s of frozen frames on a fresh install."""
    import numba

    from vj import mix as kernels

    kernels.warm_up()
    dispatchers = [getattr(kernels, n) for n in dir(kernels)
                   if isinstance(getattr(kernels, n), numba.core.registry.CPUDispatcher)]
    before = {d: len(d.signatures) for d in dispatchers}
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)
    rows = kernels.scale_rows(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (64, 36))
    view = kernels.scale_rows(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), (64, 36), rect=(2, 1, 60, 35),
                              defer=True)
    view.settle()
    tile = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = np.zeros((36, 64, 3), np.uint8)
    for a in (None, frame, rows, view):
        for b in (None, frame, rows, view):
            for tiles in ((), [(tile, 3, 4)]):
                for mode in range(len(kernels.MODES)):
                    kernels.mix(out[8:20], kernels.Fade(a, b, 0.4, 0.6, (64, 36), tiles), mode, 0.8, 8)
    assert {d.py_func.__name__: len(d.signatures) - n for d, n in before.items() if len(d.signatures) > n} == {}
