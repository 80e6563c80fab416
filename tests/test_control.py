"""Control and outputs: OSC routing and a real loopback round trip under a flood, MIDI mapping, learn and
JACK, keys, optional outputs' guards, and NDI in its own network namespace."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import pytest

from conftest import ROOT, make_generator_ckpt, run_vj, solid_video
from vj.control import parse_host_port
from vj.control.mapping import CCRule, Mapping, NoteRule, learn, load_mapping, map_message, save_mapping
from vj.control.osc import OscRouter, OscServer, address_of, address_table
from vj.params import Param, ParamStore


def store() -> ParamStore:
    s = ParamStore()
    s.define(Param("layer.clips.opacity", 1.0))
    s.define(Param("fx.hue.degrees", 0, -180, 180))
    return s


def osc_bytes(address: str, *args) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


# ---------------------------------------------------------------- OSC routing, no sockets
def test_an_address_reaches_its_parameter_and_bad_ones_are_counted():
    s = store()
    r = OscRouter(s)
    assert r.handle("/vj/layer/clips/opacity", [0.25])
    assert r.handle("/vj/fx/hue/degrees", [999])           # clamped, not dropped
    assert r.handle("/vj/genre", ["tunnel"]) and r.handle("/vj/tap", [])
    assert not r.handle("/vj/nope", [1.0])
    assert not r.handle("/other/thing", [1.0])
    assert not r.handle("/vj/layer/clips/opacity", [1.0, 2.0])
    assert not r.handle("/vj/genre", [3])
    assert r.handle_datagram(b"\x00garbage") == 0
    r.handle("/vj/layer/clips/opacity", ["high"])          # a string that is no number: dropped at drain
    d = s.drain()
    assert s["layer.clips.opacity"] == 0.25 and s["fx.hue.degrees"] == 180
    assert [(c.name, c.value) for c in d.commands] == [("genre", "tunnel"), ("tap", None)]
    assert s.dropped == {"unknown address": 2, "bad value": 3, "malformed": 1}


def test_bundles_route_every_message():
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    bb = OscBundleBuilder(IMMEDIATELY)
    for v in (0.1, 0.2):
        m = OscMessageBuilder("/vj/layer/clips/opacity")
        m.add_arg(v)
        bb.add_content(m.build())
    s = store()
    assert OscRouter(s).handle_datagram(bb.build().dgram) == 2
    s.drain()
    assert s["layer.clips.opacity"] == pytest.approx(0.2)


def test_address_table_covers_every_parameter_and_command():
    rows = address_table(store())
    addrs = [r[0] for r in rows]
    assert address_of("fx.hue.degrees") == "/vj/fx/hue/degrees" and "/vj/fx/hue/degrees" in addrs
    assert {"/vj/genre", "/vj/cue", "/vj/tap", "/vj/bpm"} <= set(addrs)
    proc = run_vj("osc", "--list", check=True)
    assert "/vj/master/crossfade" in proc.stdout and "/vj/layer/gan/speed" in proc.stdout
    table = run_vj("osc", "--markdown", check=True).stdout.strip()
    assert table in (ROOT / "README.md").read_text(), "README's OSC table is stale: paste `vj osc --markdown`"


# ---------------------------------------------------------------- OSC over real loopback sockets
def test_loopback_round_trip_with_junk_and_a_bounded_flood_while_rendering(tmp_path):

    from vj.clock import RealtimeClock
    from vj.engine import Engine
    from vj.scene import load_scene

    solid_video(tmp_path / "red.mp4", (200, 20, 20))
    make_generator_ckpt(tmp_path / "g.pt", 0)
    (tmp_path / "s.toml").write_text(
        '[output]\nsize = "64x36"\nfps = 30\n[genres.red]\nclips = ["red.mp4"]\ngenerator = "g.pt"\n'
        '[genres.blue]\nclips = ["red.mp4"]\n'
        '[[layers]]\nname = "clips"\nsource = "clip"\n[[effects]]\ntype = "invert"\nid = "inv"\namount = 0\n')
    engine = Engine(load_scene(tmp_path / "s.toml"), exact=False)
    server = OscServer(OscRouter(engine.store), "127.0.0.1", 0)
    engine.before_frame.append(server.poll)  # as vj live does
    port = server.address[1]
    assert server.rcvbuf >= 1 << 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a message between frames is in the next one
        for value in (0.25, 0.5, 0.75):
            engine.step(0.0)
            sock.sendto(osc_bytes("/vj/fx/inv/amount", value), ("127.0.0.1", port))
            engine.step(0.0)
            assert engine.store["fx.inv.amount"] == value
    sent = {"n": 0}

    def flood():  # bounded: at most 1.5 s at ~10,000 messages/s, to 127.0.0.1 only
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            good, junk = osc_bytes("/vj/fx/inv/amount", 0.3), b"#bundle\x00\xff\xff"
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 1.5 and sent["n"] < 15000:
                sock.sendto(junk if sent["n"] % 10 == 0 else good, ("127.0.0.1", port))
                sent["n"] += 1
                if sent["n"] % 100 == 0:
                    time.sleep(max(0.0, t0 + sent["n"] / 10000 - time.perf_counter()))
            sock.sendto(osc_bytes("/vj/genre", "blue"), ("127.0.0.1", port))
            sock.sendto(osc_bytes("/vj/fx/inv/amount", 1.0), ("127.0.0.1", port))  # the last value wins

    sender = threading.Thread(target=flood)
    sender.start()
    shown = engine.run(RealtimeClock(30), [], seconds=2.5)
    sender.join()
    server.close()
    engine.close()
    assert shown >= 60                                   # the loop kept rendering through the flood
    assert engine.genres.current == "blue" and engine.store["fx.inv.amount"] == 1.0
    assert engine.store.dropped["malformed"] >= sent["n"] // 20  # junk counted (UDP may drop a few)
    assert engine.store.received + engine.store.superseded > sent["n"] // 2


def test_a_burst_on_one_parameter_is_parsed_once_and_commands_all_count():
    s = store()
    server = OscServer(OscRouter(s), "127.0.0.1", 0)
    server._lock.acquire()  # hold the receiver thread off: this test polls by itself
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(10):
                sock.sendto(osc_bytes("/vj/fx/hue/degrees", float(i)), server.address)
            sock.sendto(osc_bytes("/vj/tap", 1), server.address)
            sock.sendto(osc_bytes("/vj/tap", 1), server.address)
            for i in range(10, 20):
                sock.sendto(osc_bytes("/vj/fx/hue/degrees", float(i)), server.address)
        time.sleep(0.05)
        assert server._take(100) == 22
    finally:
        server._lock.release()
        server.close()
    drained = s.drain()
    assert drained.changed["fx.hue.degrees"] == 19.0       # the last value wins
    assert [e.name for e in drained.commands] == ["tap", "tap"]
    assert s.superseded == 18 and "18 superseded" in s.status()


def test_poll_waits_for_a_slice_the_receiver_thread_is_routing():
    """A message the thread is in the middle of routing still reaches the frame that polls."""
    import threading

    s = store()
    server = OscServer(OscRouter(s), "127.0.0.1", 0)
    server._lock.acquire()  # stands in for the thread, mid-slice
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(osc_bytes("/vj/fx/hue/degrees", 42.0), server.address)
        time.sleep(0.02)
        threading.Timer(0.0005, server._lock.release).start()  # the slice ends half a ms later
        server.poll()
        assert s.drain().changed.get("fx.hue.degrees") == 42.0
    finally:
        server.close()


def test_osc_feedback_sends_changes_to_a_controller():
    from pythonosc.osc_packet import OscPacket

    from vj.control.osc import OscFeedback

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        fb = OscFeedback("127.0.0.1", rx.getsockname()[1])
        s = store()
        s.on_change(fb)
        s.push("fx.hue.degrees", 45)
        s.drain()
        s.notify("genre", "tunnel")
        s.push("fx.hue.degree", 1)  # a typo: answered on the feedback address
        s.drain()
        msgs = [OscPacket(rx.recv(1024)).messages[0].message for _ in range(3)]
        fb.close()
    assert (msgs[0].address, msgs[0].params) == ("/vj/fx/hue/degrees", [45.0])
    assert (msgs[1].address, msgs[1].params) == ("/vj/genre", ["tunnel"])
    assert msgs[2].address == "/vj/error" and "'fx.hue.degree' is not a parameter" in msgs[2].params[0]


def test_live_headless_switches_genre_from_osc(tmp_path):

    solid_video(tmp_path / "a.mp4", (200, 20, 20))
    (tmp_path / "s.toml").write_text('[output]\nsize = "64x36"\nfps = 20\n[genres.a]\nclips = ["a.mp4"]\n'
                                     '[genres.b]\nclips = ["a.mp4"]\n[[layers]]\nname = "c"\nsource = "clip"\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "vj", "live", str(tmp_path / "s.toml"), "--headless",
                             "--seconds", "4", "--osc-port", str(port), "--ndi", "x", "--syphon", "x"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(2.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(osc_bytes("/vj/genre", "b"), ("127.0.0.1", port))
        sock.sendto(osc_bytes("/vj/bogus", 1.0), ("127.0.0.1", port))
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, err
    assert "genre: a -> b" in err and "(osc)" in err
    assert "Syphon output runs only on macOS" in err
    assert "unknown address 1" in err


# ---------------------------------------------------------------- MIDI
def msg(kind, **kw):
    import mido

    return mido.Message(kind, **kw)


def test_midi_mapping_is_a_pure_function_of_the_message():
    m = Mapping(cc=[CCRule(7, "layer.clips.opacity"), CCRule(10, "fx.hue.degrees", channel=1, curve="exp"),
                    CCRule(64, "", action="genre", value="tunnel")],
                notes=[NoteRule(36, None, "genre", "plasma"), NoteRule(40, None, "tap"),
                       NoteRule(41, None, "param", "toggle", "fx.strobe.on")])
    params = store().params
    assert map_message(m, msg("control_change", control=7, value=127), params) == [("layer.clips.opacity", 1.0)]
    (name, v), = map_message(m, msg("control_change", channel=1, control=10, value=64), params)
    assert name == "fx.hue.degrees" and v == pytest.approx(-180 + 360 * (64 / 127) ** 2)
    assert map_message(m, msg("control_change", channel=0, control=10, value=64), params) == []
    assert map_message(m, msg("control_change", control=64, value=127)) == [("genre", "tunnel")]
    assert map_message(m, msg("control_change", control=64, value=0)) == []
    assert map_message(m, msg("note_on", note=36, velocity=100)) == [("genre", "plasma")]
    assert map_message(m, msg("note_on", note=36, velocity=0)) == []  # note-off in disguise
    assert map_message(m, msg("note_on", note=40, velocity=9)) == [("tap", None)]
    assert map_message(m, msg("note_on", note=41, velocity=9)) == [("fx.strobe.on", "toggle")]


def test_midi_learn_writes_a_mapping_that_loads(tmp_path):
    m = Mapping(name="mine")
    learn(m, "master.fader", msg("control_change", channel=2, control=21, value=5))
    learn(m, "genre:tunnel", msg("note_on", note=50, velocity=3))
    learn(m, "tap", msg("note_on", note=51, velocity=3))
    with pytest.raises(ValueError, match="needs a note"):
        learn(m, "genre:x", msg("control_change", control=1, value=1))
    save_mapping(m, tmp_path / "mine.toml")
    loaded = load_mapping(tmp_path / "mine.toml")
    assert map_message(loaded, msg("control_change", channel=2, control=21, value=127)) == [("master.fader", 1.0)]
    assert map_message(loaded, msg("note_on", note=50, velocity=1)) == [("genre", "tunnel")]
    assert map_message(loaded, msg("note_on", note=51, velocity=1)) == [("tap", None)]


def test_shipped_mappings_load():
    for path in (ROOT / "presets" / "mappings").glob("*.toml"):
        assert load_mapping(path).cc, path


def test_midi_clock_sets_the_bpm():
    from vj.control.midi import ClockFollower

    s = ParamStore()
    s.define(Param("tempo.bpm", 120, 20, 300))
    follower = ClockFollower(s)
    for i in range(49):  # two beats of 24 pulses at 100 BPM
        follower.message(msg("clock"), i * 60 / 100 / 24)
    assert s.drain().changed["tempo.bpm"] == pytest.approx(100, abs=0.1)


@pytest.mark.skipif(not os.environ.get("VJ_TEST_JACK"), reason="no JACK server (scripts/test.sh starts one)")
def test_midi_round_trip_through_jack_with_replug():
    import mido

    from vj.control.midi import MidiControl

    os.environ["VJ_MIDI_BACKEND"] = "mido.backends.rtmidi/UNIX_JACK"
    try:
        be = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        out = be.open_output("vjtest-controller", virtual=True)
        s = store()
        mapping = Mapping(cc=[CCRule(7, "layer.clips.opacity")], notes=[NoteRule(36, None, "genre", "tunnel")])
        ctl = MidiControl(s, mapping, port="vjtest", poll=0.2)

        def wait_for(pred, timeout=5.0):
            t0 = time.time()
            while time.time() - t0 < timeout and not pred():
                time.sleep(0.05)
            return pred()

        assert wait_for(lambda: ctl.ports), be.get_input_names()
        out.send(msg("control_change", control=7, value=0))
        out.send(msg("note_on", note=36, velocity=90))
        got: list = []
        assert wait_for(lambda: (got.extend(s.drain().commands), s["layer.clips.opacity"] == 0.0 and got)[1])
        assert got[0].value == "tunnel"
        out.close()  # unplug
        assert wait_for(lambda: not ctl.ports)
        out = be.open_output("vjtest-controller", virtual=True)  # plug back in
        assert wait_for(lambda: ctl.ports)
        out.send(msg("control_change", control=7, value=127))
        assert wait_for(lambda: (s.drain(), s["layer.clips.opacity"] == 1.0)[1])
        out.close()
        ctl.close()
    finally:
        os.environ.pop("VJ_MIDI_BACKEND", None)


# ---------------------------------------------------------------- keys and optional outputs
def test_key_actions_parse():
    from vj.commands import parse_action

    assert parse_action("genre plasma") == ("genre", "plasma")
    assert parse_action("bpm=128") == ("tempo.bpm", "128")  # the alias is the parameter
    assert parse_action("tap") == ("tap", None)
    assert parse_action("fx.a.b=1") == ("fx.a.b", "1")
    assert parse_action("master.fader+=0.1") == ("master.fader", ("add", 0.1))
    assert parse_action("master.fader-=0.1") == ("master.fader", ("add", -0.1))
    assert parse_action("fx.s.on toggle") == ("fx.s.on", "toggle")


@pytest.mark.parametrize("kind,words", [("syphon", "only on macOS"), ("spout", "only on Windows"),
                                        ("vcam", "virtual camera")])
def test_platform_outputs_explain_why_they_cannot_run(kind, words):
    from vj.outputs.platform import OutputUnavailable, open_output

    if kind == "vcam" and sys.platform == "win32":
        pytest.skip("a virtual camera may exist on Windows")
    with pytest.raises(OutputUnavailable, match=words) as err:
        open_output(kind, "reframe-vj", (64, 36), 30)
    assert "\n" not in str(err.value)


def _ndi_available() -> str | None:
    try:
        import cyndilib  # noqa: F401
    except ImportError:
        return "cyndilib is not installed (extra: ndi)"
    if shutil.which("unshare") is None:
        return "unshare is not available"
    ok = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    return None if ok else "network namespaces (unshare -n) are not permitted here"


NDI_ROUNDTRIP = r"""
import sys, time
import numpy as np
from cyndilib.finder import Finder
from cyndilib.receiver import Receiver
from cyndilib.video_frame import VideoFrameSync
from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat
from vj.outputs.platform import NdiOutput

w, h = 160, 90
y, x = np.mgrid[0:h, 0:w]
frame = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)
out = NdiOutput("vj-ndi-test", (w, h), 30)
with Finder() as finder:
    source = None
    t0 = time.time()
    while source is None and time.time() - t0 < 15:
        out.write(frame, 0.0)
        finder.wait_for_sources(0.5)
        source = next((s for s in finder if s.stream_name == "vj-ndi-test"), None)
    assert source is not None, finder.get_source_names()
    rx = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    vf = VideoFrameSync()
    rx.frame_sync.set_video_frame(vf)
    rx.set_source(source)
    got = None
    t0 = time.time()
    while got is None and time.time() - t0 < 15:
        out.write(frame, 0.0)
        time.sleep(1 / 30)
        rx.frame_sync.capture_video()
        if min(vf.get_resolution()) > 0 and vf.get_data_size() > 0:
            got = np.asarray(vf).reshape(h, w, 4)[..., :3].copy()
    out.close()
assert got is not None, "no frame received"
mse = ((got.astype(float) - frame) ** 2).mean()
psnr = 10 * np.log10(255 ** 2 / max(mse, 1e-9))
print(f"PSNR {psnr:.1f} dB")
sys.exit(0 if psnr > 30 else 1)
"""


def test_ndi_sender_and_receiver_exchange_a_frame_on_loopback_only(tmp_path):
    why = _ndi_available()
    if why:
        pytest.skip(why)
    config = ROOT.parent / "shared" / "ndi-loopback"
    if not config.exists():
        pytest.skip("../shared/ndi-loopback is not here")
    script = tmp_path / "ndi_roundtrip.py"
    script.write_text(NDI_ROUNDTRIP)
    env = {**os.environ, "NDI_CONFIG_DIR": str(config), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["unshare", "-n", "bash", "-c", f"ip link set lo up; exec {sys.executable} {script}"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "PSNR" in proc.stdout


def test_midi_list_without_a_midi_system_is_one_line():
    proc = run_vj("midi", "--list", env={"VJ_MIDI_BACKEND": "mido.backends.rtmidi/UNIX_JACK"}
                  if not os.environ.get("VJ_TEST_JACK") else {})
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:  # no MIDI system: its one line, after nothing else (no ALSA or JACK noise)
        assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("vj: error: no MIDI system"), \
            proc.stderr
    else:
        assert proc.returncode == 0 and proc.stdout.strip(), proc.stdout


# ---------------------------------------------------------------- hostile and careless input (show-proof)
def nested_bundle(depth: int, message: bytes) -> bytes:
    import struct

    out = message
    for _ in range(depth):
        out = b"#bundle\0" + b"\0" * 7 + b"\1" + struct.pack(">i", len(out)) + out
    return out


def test_deeply_nested_bundles_are_dropped_not_a_recursion_error():
    s = store()
    r = OscRouter(s)
    msg = osc_bytes("/vj/layer/clips/opacity", 0.25)
    assert r.handle_datagram(nested_bundle(3, msg)) == 1
    assert r.handle_datagram(nested_bundle(500, msg)) == 0      # python-osc's parser recursed and raised here
    empties = b"#bundle\0" + b"\0" * 8 + b"\0\0\0\0" * 16000    # 64 KB of empty elements
    assert r.handle_datagram(empties) == 0
    s.drain()
    assert s["layer.clips.opacity"] == 0.25 and s.dropped["malformed"] == 2


def test_python_osc_warnings_are_counted_not_written_to_the_log(caplog):
    from vj.control.osc import route_library_logs

    s = store()
    route_library_logs(s)
    odd = b"/vj/tap\0,X\0\0"  # a type tag python-osc does not know: it warns on the root logger, raw bytes
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            OscRouter(s).handle_datagram(odd)
    assert "Unhandled parameter type" not in caplog.text
    assert s.dropped["malformed"] == 50 and caplog.text.count("python-osc could not read") == 1


def test_two_taps_in_one_frame_do_not_stop_the_show_and_a_tapped_tempo_reaches_listeners(show):
    from vj.clock import FixedClock
    from vj.engine import Engine
    from vj.scene import load_scene

    engine = Engine(load_scene(show[1]), exact=True)
    heard = []
    engine.store.on_change(lambda name, value: heard.append((name, value)))
    clock = FixedClock(10)
    engine.step(clock.tick())
    for frame in range(9):
        if frame % 4 == 0:  # every 0.4 s a button sends press and release within one frame
            engine.store.push("tap", None, "osc")
            engine.store.push("tap", None, "osc")
        engine.step(clock.tick())  # the old tempo divided by the zero gap between the two
    engine.close()
    assert engine.store["tempo.bpm"] == pytest.approx(150) and ("tempo.bpm", pytest.approx(150)) in heard


def test_a_control_mistake_is_named_at_once_with_the_known_names(show, caplog):
    from vj.clock import FixedClock
    from vj.engine import Engine
    from vj.scene import load_scene

    engine = Engine(load_scene(show[1]), exact=True)
    errors = []
    engine.store.on_change(lambda name, value: errors.append(value) if name == "error" else None)
    with caplog.at_level(logging.WARNING):
        engine.step(FixedClock(10).tick())
        engine.store.push("genre", "Red", "osc")
        engine.store.push("cue", "drop", "osc")
        engine.step(FixedClock(10).tick())
    engine.close()
    assert errors[0] == "unknown genre 'Red' (known: red, blue) (from osc)"
    assert errors[1].startswith("unknown cue 'drop' (known: none)")
    assert "unknown genre 'Red'" in caplog.text and engine.genres.current == "red"


def test_osc_port_in_use_and_a_bad_feedback_address_are_one_line_errors(show, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        proc = run_vj("live", str(show[1]), "--headless", "--seconds", "0.5", "--osc-port", str(port))
    assert proc.returncode == 2 and "is in use" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_vj("live", str(show[1]), "--headless", "--seconds", "0.5", "--osc-feedback", "localhost")
    assert proc.returncode == 2 and "expected HOST:PORT" in proc.stderr and len(proc.stderr.splitlines()) <= 3


def test_one_host_port_parser_for_where_to_send_and_where_to_serve():
    """Where to send (OSC feedback) needs a port of 1-65535; a server's address (--web) may be a host alone,
    empty, or port 0 (any free port). Bad text is a ValueError naming the flag."""
    assert parse_host_port("9001", "--osc-feedback") == ("127.0.0.1", 9001)
    assert parse_host_port("localhost:9001", "--osc-feedback") == ("localhost", 9001)
    assert parse_host_port(":9001", "--osc-feedback") == ("127.0.0.1", 9001)
    for bad, why in (("localhost", "expected HOST:PORT"), ("", "expected HOST:PORT"), ("0", "port must be 1-65535"),
                     ("70000", "port must be 1-65535"), ("a:b", "expected HOST:PORT")):
        with pytest.raises(ValueError, match=f"--osc-feedback {bad!r}: {why}"):
            parse_host_port(bad, "--osc-feedback")
    assert parse_host_port("", "--web", 8080) == ("127.0.0.1", 8080)
    assert parse_host_port("0.0.0.0", "--web", 8080) == ("0.0.0.0", 8080)
    assert parse_host_port("0", "--web", 8080) == ("127.0.0.1", 0)
    assert parse_host_port("[::1]:9000", "--web", 8080) == ("::1", 9000)
    with pytest.raises(ValueError, match=r"--web '70000': port must be 0-65535"):
        parse_host_port("70000", "--web", 8080)


def test_feedback_works_without_a_listening_port(show):
    """--osc-feedback alone (no --osc-port) sends changes made by keys, cues and the engine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(20)
        proc = subprocess.Popen([sys.executable, "-m", "vj", "live", str(show[1]), "--headless", "--seconds", "2",
                                 "--osc-feedback", f"127.0.0.1:{rx.getsockname()[1]}"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        from pythonosc.osc_packet import OscPacket

        first = OscPacket(rx.recv(4096)).messages[0].message
        proc.communicate(timeout=60)
    assert first.address == "/vj/genre" and first.params == ["red"]
