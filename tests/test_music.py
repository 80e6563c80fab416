"""The show follows the music: the analysis and beat tracker on synthesised tracks with known answers, the
tempo clock and its leaders, the generator dancing, quantised switches, Ableton Link in its own namespace."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT, make_generator_ckpt, run_vj, solid_video
from vj.audio import RATE, Analyzer, analyze_track
from vj.procedural import beat_track, write_beat_track


def hits(beats, truth, since=4.0, until=1e9, tolerance=0.035) -> float:
    """The share of true beats in [since, until) that a found beat lies within ``tolerance`` of."""
    beats = np.asarray(beats)
    good = truth[(truth >= since) & (truth < until)]
    return float(np.mean([len(beats) and np.min(np.abs(beats - b)) < tolerance for b in good]))


@pytest.mark.parametrize("bpm,swing", [(85, 0.0), (100, 0.08), (124, 0.0), (140, 0.12), (174, 0.0), (174, 0.1)])
def test_tempo_within_1_bpm_and_beats_on_the_kicks(bpm, swing):
    x, truth = beat_track(bpm, 20.0, RATE, swing=swing, seed=bpm)
    r = analyze_track(x, fps=60)
    assert abs(r["bpm"] - bpm) < 1.0, r["bpm"]
    assert hits(r["beats"], truth) >= 0.9  # after 4 s, at least 90% of the beats within 35 ms


@pytest.mark.parametrize("bpm,bpm2", [(100, 130), (128, 95)])
def test_a_tempo_change_is_followed_within_four_bars(bpm, bpm2):
    x, truth = beat_track(bpm, 36.0, RATE, change_at=14.0, bpm2=bpm2)
    r = analyze_track(x, fps=60)
    assert hits(r["beats"], truth, 4.0, 14.0) >= 0.9
    assert hits(r["beats"], truth, 14.0 + 16 * 60 / bpm2) >= 0.9  # 4 bars after the change
    assert abs(r["bpm"] - bpm2) < 1.0


def test_a_kick_lands_in_the_low_band_and_a_hat_in_the_high_band():
    x, kicks = beat_track(120.0, 8.0, RATE, swing=0.1)
    hats = kicks + 0.6 * 0.5  # the swung hat: 0.6 of a half-second beat after each kick
    a, fps = Analyzer(), 100
    found = {"onset_low": [], "onset_high": []}
    for i in range(8 * fps):
        a.feed(x[int(i * RATE / fps):int((i + 1) * RATE / fps)])
        f = a.read()
        for band in found:
            if getattr(f, band):
                found[band].append(a.time)
    for band, mine, theirs in (("onset_low", kicks, hats), ("onset_high", hats, kicks)):
        times = np.array(found[band])
        assert len(times) >= 12, band
        near_mine = np.array([np.min(np.abs(mine - t)) for t in times])
        near_theirs = np.array([np.min(np.abs(theirs - t)) for t in times])
        assert np.mean(near_mine < near_theirs) >= 0.9, band  # a kick's onsets in the low band, a hat's high


def test_the_analysis_gives_every_feature_in_range_and_the_chroma_of_a_chord():
    n = int(3 * RATE)
    t = np.arange(n) / RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * 0.2  # C major: C, E, G
    a = Analyzer()
    a.feed(chord.astype(np.float32))
    f = a.read()
    assert all(0 <= getattr(f, k) <= 1 for k in ("level", "low", "mid", "high", "percussive", "harmonic"))
    top = np.argsort(f.chroma)[-3:]
    assert set(top.tolist()) == {0, 4, 7}  # C, E, G


def test_the_tempo_clock_eases_onto_a_leader_without_jumps_or_doubled_beats():
    from vj.tempo import Tempo

    tempo = Tempo(120)
    t, last, beats_seen = 0.0, 0.0, 0
    for i in range(600):  # 10 s at 60 fps; the leader is 133 BPM, half a beat away in phase
        t = i / 60
        tempo.follow(133.0, t, (0.0, 0.5))
        b = tempo.beat(t)
        assert b >= last and b - last < 1.2 * 133 / 60 / 60  # forward, never more than a nudge faster
        beats_seen += int(b) - int(last)
        last = b
    assert abs(tempo.phase_error(t)) < 0.02  # locked on the leader's phase
    assert beats_seen == int(last)


def test_a_track_leads_the_tempo_and_the_engine_beat_lands_on_the_kicks(show, tmp_path):
    from vj.audio import AudioFileInput
    from vj.clock import FixedClock
    from vj.engine import Engine
    from vj.scene import load_scene

    track = write_beat_track(tmp_path / "t.wav", seconds=14.0, bpm=128.0, rate=RATE)
    truth = beat_track(128.0, 14.0, RATE)[1]
    engine = Engine(load_scene(show[1]), exact=True, fps=60)
    engine.attach_audio(AudioFileInput(track, 60))
    engine.store.set("tempo.source", "audio")
    clock = FixedClock(60)
    crossings = []
    last = None
    for i in range(int(14 * 60)):
        t = clock.tick()
        engine.step(t)
        b = engine.tempo.beat(t)
        if last is not None and int(b) > int(last):
            crossings.append(t - (b - int(b)) * 60 / engine.tempo.rate)  # the moment the beat turned
        last = b
    engine.close()
    assert abs(engine.store["tempo.bpm"] - 128) < 1 and engine.store["audio.bpm"] > 0
    late = [c for c in crossings if c > 8.0]  # locked by now: the show's beats on the kicks
    errors = [min(abs(truth - c)) for c in late]
    assert np.median(errors) < 1 / 60 and max(errors) < 0.035


def test_the_latent_steps_follow_the_kick_when_pulse_is_on():
    from gan.model import Generator, init_weights
    from gan.walk import LatentDance, LatentWalk, sefa_directions

    torch.manual_seed(0)
    g = Generator(64, 32, 8)
    g.apply(init_weights)
    dirs = sefa_directions(g)
    assert dirs.shape == (13, 32) and torch.allclose(dirs @ dirs.T, torch.eye(13), atol=1e-4)
    x, beats = beat_track(120.0, 12.0, RATE)
    fps = 60
    kick = np.array([np.exp(-(i / fps - beats[beats <= i / fps].max()) / LatentDance.DECAY) for i in range(12 * fps)])
    for pulse, wanted in ((1.0, True), (0.0, False)):
        a, dance, walk = Analyzer(), LatentDance(dirs), LatentWalk(32, seed=1)
        steps, z_prev, walk_t = [], None, 0.0
        for i in range(12 * fps):
            a.feed(x[int(i * RATE / fps):int((i + 1) * RATE / fps)])
            f = a.read()
            factor, offset = dance.step(1 / fps, (0.5 + 0.5 * f.low) if f.onset_low else 0.0, f.harmonic,
                                        f.chroma, pulse, 0.0, 0.0)
            walk_t += factor / fps
            z = walk(walk_t) + offset
            steps.append(0.0 if z_prev is None else float((z - z_prev).norm()))
            z_prev = z
        steps = np.array(steps)
        # an onset is known a frame or two after the kick starts (its hop must be heard): the best of those lags
        r = max(np.corrcoef(steps[fps * 3 + lag:], kick[fps * 3:len(kick) - lag])[0, 1] for lag in range(3))
        assert (r >= 0.8) if wanted else (abs(r) < 0.3), (pulse, r)


def elsewhere(scene, folder, old: str, new: str) -> str:
    """The shared show's scene with ``old`` replaced by ``new``, its media named by absolute paths (so the
    variant can be written to another folder)."""
    text = scene.read_text().replace(old, new)
    for name in ("red.mp4", "g_red.pt", "blue.mp4", "g_blue.pt"):
        text = text.replace(f'"{name}"', f'"{folder / name}"')
    return text


def test_a_generator_dancing_to_a_track_renders_frame_exact(show, tmp_path):
    d, scene, _ = show
    dancing = tmp_path / "dance.toml"
    dancing.write_text(elsewhere(scene, d, 'blend = "add"\nopacity = 0.0', 'blend = "add"\nopacity = 1.0\n'
                                 'settings = { pulse = 1.0, motion = 0.5, chroma = 0.5 }'))
    track = write_beat_track(tmp_path / "t.wav", seconds=3.0, bpm=128.0)
    digests = []
    for name in ("a.mp4", "b.mp4"):
        run_vj("render", str(dancing), "--audio", str(track), "--fps", "15", "--out", str(tmp_path / name), check=True)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_a_quantised_switch_starts_on_a_bar_line_frame_exact(show, tmp_path):
    from vj.clock import FixedClock
    from vj.engine import Engine
    from vj.scene import load_scene

    d, scene, _ = show
    q = tmp_path / "q.toml"
    q.write_text(elsewhere(scene, d, 'fade = 0.5', 'fade = 0.5\nquantize = "bar"'))
    engine = Engine(load_scene(q), exact=True, fps=30)  # 120 BPM: a bar is 2 s
    clock = FixedClock(30)
    for i in range(90):
        if i == 35:  # at 1.17 s: the switch waits for the bar at 2.0 s
            engine.store.push("genre", "blue", "osc")
        engine.step(clock.tick())
        if i < 59:
            assert engine.genres.current == "red", i
    engine.close()
    assert engine.genres.current == "blue" and engine.genres.fade_start == pytest.approx(2.0, abs=1e-9)


def test_vj_audio_analyze_prints_the_tempo_and_beats_as_json_and_plots(tmp_path):
    track = write_beat_track(tmp_path / "t.wav", seconds=10.0, bpm=140.0)
    proc = run_vj("audio", "analyze", str(track), "--json", "--plot", str(tmp_path / "a.png"), check=True)
    out = json.loads(proc.stdout)
    assert abs(out["bpm"] - 140) < 1 and len(out["beats"]) >= 12
    assert (tmp_path / "a.png").stat().st_size > 10_000
    import wave

    with wave.open(str(tmp_path / "quiet.wav"), "wb") as w:  # two seconds of silence
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(bytes(32000))
    said = run_vj("audio", "analyze", str(tmp_path / "quiet.wav"), check=True).stdout
    assert "no steady beat found" in said and "0.00 BPM" not in said


def test_audio_features_are_read_only_parameters_and_routes_follow_them(show, tmp_path):
    from vj.audio import AudioFileInput
    from vj.clock import FixedClock
    from vj.engine import Engine
    from vj.scene import load_scene

    d, scene, _ = show
    routed = tmp_path / "r.toml"
    routed.write_text(elsewhere(scene, d, '[keys]', '[audio]\nlow = "layer.gan.opacity"\n'
                                                   'onset_low = "fx.inv.amount toggle"\n\n[keys]'))
    engine = Engine(load_scene(routed), exact=True, fps=30)
    engine.attach_audio(AudioFileInput(write_beat_track(tmp_path / "t.wav", seconds=4.0, bpm=120.0), 30))
    heard = []
    engine.store.on_change(lambda n, v: heard.append(n))
    opacity, clock = [], FixedClock(30)
    for _ in range(120):
        engine.step(clock.tick())
        opacity.append(engine.store["layer.gan.opacity"])
    engine.store.push("audio.low", 0.5, "osc")
    engine.step(clock.tick())
    engine.close()
    assert {"audio.low", "audio.onset_low", "audio.chroma.9", "audio.percussive"} <= set(heard)  # feedback sees them
    assert max(opacity) - min(opacity) > 0.5 and engine.store.dropped["read-only"] == 1


# ---------------------------------------------------------------- Ableton Link, in a namespace of its own
LINK_TEST = r"""
import sys, time
sys.path.insert(0, {root!r})
import link
from vj.clock import FixedClock
from vj.control.link import LinkSession
from vj.engine import Engine
from vj.scene import load_scene
peer = link.Link(110.0); peer.enabled = True
engine = Engine(load_scene({scene!r}), exact=True, fps=60)
session = LinkSession(120.0)
engine.attach_link(session)
engine.store.set("tempo.source", "link")
t0 = time.monotonic()
while session.peers() < 1 and time.monotonic() - t0 < 5:
    time.sleep(0.02)
state = peer.captureAppSessionState()
state.setTempo(133.0, peer.clock().micros())  # another app on the network changes the tempo
peer.commitAppSessionState(state)
clock = FixedClock(60)
t0 = time.monotonic()
while abs(engine.tempo.bpm - 133) > 0.01 and time.monotonic() - t0 < 5:
    engine.step(clock.tick())
    time.sleep(0.005)
print("engine", round(engine.tempo.bpm, 2), "peers", session.peers(), "shown", round(engine.store["tempo.bpm"], 2))
engine.store.push("bpm", 97, "osc")
engine.step(clock.tick())
t0 = time.monotonic()
while abs(peer.captureAppSessionState().tempo() - 97) > 0.01 and time.monotonic() - t0 < 5:
    time.sleep(0.02)
print("peer", round(peer.captureAppSessionState().tempo(), 2))
session.close(); peer.enabled = False; engine.close()
"""


def _namespace_ok() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "no unshare/ip"
    try:
        import link  # noqa: F401
    except ImportError:
        return "no linkpython-extern (pip install 'reframe-vj[link]')"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return None if probe.returncode == 0 else "unshare -n is not permitted here"


@pytest.mark.skipif(_namespace_ok() is not None, reason=_namespace_ok() or "")
def test_link_peer_moves_the_engine_and_the_engine_moves_the_peer(show, tmp_path):
    """Two Link peers in a network namespace of their own (loopback only, multicast routed to it): a peer at
    133 BPM sets the show's tempo, and /vj/bpm 97 on the show reaches the peer."""
    script = tmp_path / "link_test.py"
    script.write_text(LINK_TEST.format(root=str(ROOT), scene=str(show[1])))
    cmd = (f"ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec {sys.executable} {script}")
    proc = subprocess.run(["unshare", "-n", "bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "engine 133.0 peers 1 shown 133.0" in proc.stdout and "peer 97.0" in proc.stdout, proc.stdout
