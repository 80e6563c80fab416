"""Control latency and flood resistance, on 127.0.0.1 only, with bounded loops.

Latency: from sending an OSC message to the first rendered frame that shows it (target: the next frame).
Flood: frame-time p95 with and without 10,000 messages/s (for --flood-seconds, default 10), target within 10%.

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
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
msg = bytes.fromhex("2f766a2f6c617965722f636c69707331"  "2f6f70616369747900000000" "2c6600003f000000")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    target = int((time.perf_counter() - t0) * rate)
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


def run_for(engine, clock, seconds: float) -> list[float]:
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = clock.tick()
        t0 = time.perf_counter()
        engine.step(t)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flood-seconds", type=float, default=10)
    p.add_argument("--rate", type=int, default=10000)
    p.add_argument("--size", default="1280x720")
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
        calm = run_for(engine, clock, args.flood_seconds)
        # the flood comes from another process, as a controller app would: bounded in time and rate
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(port), str(args.rate), str(args.flood_seconds)],
                                 stdout=subprocess.PIPE, text=True)
        stormy = run_for(engine, clock, args.flood_seconds)
        sent = int(flood.communicate(timeout=args.flood_seconds + 30)[0].strip() or 0)
        sock.close()
        server.close()
        engine.close()
        p_calm, p_storm = np.percentile(calm, 95), np.percentile(stormy, 95)
        print(f"   without flood: {stats_ms(calm)}")
        print(f"   with {sent / args.flood_seconds:.0f} msg/s: {stats_ms(stormy)}; "
              f"p95 ratio {p_storm / p_calm:.2f} (target <= 1.10); {engine.store.status()}")


if __name__ == "__main__":
    main()
