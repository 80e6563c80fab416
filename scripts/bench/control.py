"""Control latency and flood resistance, on 127.0.0.1 only, with bounded loops.

Latency: from sending an OSC message to the first rendered frame that shows it (target: the next frame).
Flood: frame-time p95 with and without 10,000 messages/s, target within 10%: a continuous flood of
--flood-seconds (default 10) after a calm stretch as long, then the figure that counts, interleaved: flood
in the first half of every --period (1 s) and calm in the second for twice as long, frames compared by phase, so
the slow drift of a shared machine falls on both sides alike.

    python scripts/bench/control.py [--flood-seconds 10] [--size 1280x720]
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from assets import make_show
from common import header, stats_ms


FLOOD = """
import os, socket, sys, time
port, rate, seconds, nice, period = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
os.nice(nice)
msg = bytes.fromhex("2f766a2f6c617965722f636c69707331"  "2f6f70616369747900000000" "2c6600003f000000")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
print(t0, flush=True)
n = 0
while time.monotonic() - t0 < seconds:
    t = time.monotonic() - t0
    if period:  # interleaved: the second half of each period is calm
        k, ph = divmod(t, period)
        if ph >= period / 2:
            time.sleep(0.001)
            continue
        t = k * period / 2 + ph  # time spent flooding so far
    target = int(t * rate)
    while n < target:
        sock.sendto(msg, ("127.0.0.1", port))
        n += 1
    time.sleep(0.001)
print(n)
"""


def osc(address: str, value) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    b.add_arg(value)
    return b.build().dgram


def run_for(engine, clock, seconds: float) -> list[tuple[float, float]]:
    """Render for ``seconds``; each frame as (its start on the monotonic clock, its render time)."""
    frames = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t = clock.tick()
        t0 = time.monotonic()
        engine.step(t)
        frames.append((t0, time.monotonic() - t0))
    return frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flood-seconds", type=float, default=10)
    p.add_argument("--rate", type=int, default=10000)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--period", type=float, default=1.0, help="interleaved: seconds of flood + calm (half each)")
    p.add_argument("--sender-nice", type=int, default=19,
                   help="niceness of the flood process, which stands in for a controller on another machine: "
                        "at 19 it takes the CPU the engine leaves (0: it competes with the engine)")
    args = p.parse_args()
    header("control: OSC latency and a 10,000 msg/s flood")
    from vj.clock import RealtimeClock
    from vj.control.osc import OscRouter, OscServer
    from vj.engine import Engine
    from vj.scene import load_scene

    with tempfile.TemporaryDirectory() as tmp:
        scene = load_scene(make_show(Path(tmp), size=args.size, fps=60))
        engine = Engine(scene, exact=False)
        server = OscServer(OscRouter(engine.store), "127.0.0.1", 0)
        engine.before_frame.append(server.poll)  # as vj live does
        port = server.address[1]
        clock = RealtimeClock(60)
        run_for(engine, clock, 2.0)  # warm-up
        # latency: a change is applied at the start of the frame after it arrives
        applied: dict[str, float] = {}
        engine.store.on_change(lambda name, v: applied.setdefault(f"{v:.3f}", time.perf_counter()))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        lat, frames_late = [], []
        rng = np.random.default_rng(0)
        for i in range(40):
            v = 0.2 + 0.015 * i
            engine.step(clock.tick())
            time.sleep(rng.random() / 60)  # the message arrives at a random moment during a frame
            start_index = engine.index
            sent = time.perf_counter()
            sock.sendto(osc("/vj/master/fader", v), ("127.0.0.1", port))
            while f"{v:.3f}" not in applied and time.perf_counter() - sent < 1.0:
                engine.step(clock.tick())
            if f"{v:.3f}" in applied:
                lat.append(applied[f"{v:.3f}"] - sent)
                frames_late.append(engine.index - start_index)
        print(f"   OSC -> frame: {stats_ms(lat)}; shown by the next frame for "
              f"{np.mean(np.array(frames_late) <= 1) * 100:.0f}% of {len(lat)} messages, by the one after for "
              f"{np.mean(np.array(frames_late) <= 2) * 100:.0f}%")
        # the flood comes from another process, as a controller app would: bounded in time and rate.
        # 1) a continuous flood of --flood-seconds after as long a calm stretch (show safety)
        calm = run_for(engine, clock, args.flood_seconds)
        stormy, sent = flooded(engine, clock, port, args, period=0.0)
        print(f"   continuous: without flood {stats_ms([t for _, t in calm])}; with {sent / args.flood_seconds:.0f} "
              f"msg/s {stats_ms([t for _, t in stormy])}; p95 ratio {p95(stormy) / p95(calm):.2f}")
        # 2) interleaved: flood in the first half of every period, calm in the second, for twice as long;
        # frames compared by phase, so the VM's slow drift (20-40% here) falls on both alike
        frames, sent = flooded(engine, clock, port, args, period=args.period, seconds=2 * args.flood_seconds)
        phase = np.array([t % args.period / args.period for t, _ in frames])
        times = [t for _, t in frames]
        storm = [t for t, ph in zip(times, phase) if 0.05 <= ph < 0.45]
        still = [t for t, ph in zip(times, phase) if 0.55 <= ph < 0.95]  # the edges left out: buffers drain
        sock.close()
        server.close()
        engine.close()
        print(f"   interleaved ({args.flood_seconds:.0f} s of {sent / args.flood_seconds:.0f} msg/s in "
              f"{args.period / 2:g} s bursts, sender at nice {args.sender_nice}): calm {stats_ms(still)}; flood {stats_ms(storm)}; "
              f"p95 ratio {np.percentile(storm, 95) / np.percentile(still, 95):.2f} (target <= 1.10)")
        print(f"   {engine.store.status()}")


def p95(frames) -> float:
    return float(np.percentile([t for _, t in frames], 95))


def flooded(engine, clock, port, args, period: float, seconds: float | None = None):
    """Render while another process floods ``port``; (frames as (start time - flood start, seconds), sent)."""
    seconds = seconds or args.flood_seconds
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(port), str(args.rate), str(seconds),
                              str(args.sender_nice), str(period)], stdout=subprocess.PIPE, text=True)
    t0 = float(flood.stdout.readline())
    frames = [(t - t0, dt) for t, dt in run_for(engine, clock, seconds)]
    sent = int(flood.communicate(timeout=seconds + 30)[0].strip() or 0)
    return frames, sent


if __name__ == "__main__":
    main()
