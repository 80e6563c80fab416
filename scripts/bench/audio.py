"""The music analysis live: its cost in a 60 fps show, and how close the show's beat is to the kicks.

A synthesised track (a kick on every beat, swung hats, bass, a pad; --bpm) is played into the analysis in
real time, in blocks of 256 samples from a thread, as a sound card delivers them (``LiveFeed``), while the
1080p engine scene (two clip layers, a generator, a mosaic, two effects) renders at 60 fps with
``tempo.source`` = audio. Interleaved in --period halves: the scene with the audio input and without it.

Prints: the analysis' CPU time per 60 fps frame (target <= 0.5 ms), frame-time p95 with and without audio
(target: within 5%), and the beat latency after lock: when the show's beat turns, against the kick on the
track's time line (target: under one frame, 16.7 ms; the phase is predicted, so it can be early too).

    python scripts/bench/audio.py [--period 10] [--rounds 3] [--bpm 128]
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from assets import make_show
from common import header, stats_ms


class LiveFeed:
    """A live input, simulated: the track's samples reach the analysis in 256-sample blocks at the pace
    of the wall clock (``AudioDeviceInput``'s interface: read, now, close)."""

    def __init__(self, samples: np.ndarray):
        from vj.audio import HOP, RATE, Analyzer

        self.analyzer, self.samples, self.hop, self.rate = Analyzer(), samples, HOP, RATE
        self.lock = threading.Lock()
        self.cpu = 0.0           # thread CPU seconds spent analysing
        self.start = time.perf_counter()
        self.fed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            due = int((time.perf_counter() - self.start) * self.rate) // self.hop * self.hop
            while self.fed < min(due, len(self.samples)):
                block = self.samples[self.fed:self.fed + self.hop]
                c0 = time.thread_time()
                with self.lock:
                    self.analyzer.feed(block)
                self.cpu += time.thread_time() - c0
                self.fed += self.hop
            time.sleep(0.002)

    def read(self, frame_index: int):
        with self.lock:
            return self.analyzer.read()

    def now(self) -> float:
        return time.perf_counter() - self.start  # the track's time line is the wall clock here

    def close(self):
        self.stop.set()
        self.thread.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--period", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bpm", type=float, default=128.0)
    args = p.parse_args()
    header("music: the analysis live in the 1080p60 scene, and the beat's latency")
    from vj.audio import RATE
    from vj.clock import RealtimeClock
    from vj.engine import Engine
    from vj.procedural import beat_track
    from vj.scene import load_scene

    seconds = 2 * args.period * args.rounds + 20
    samples, kicks = beat_track(args.bpm, seconds, RATE, swing=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(load_scene(make_show(Path(tmp), size="1920x1080", fps=60)), exact=False)
        clock = RealtimeClock(60)
        for _ in range(180):  # warm-up: sources made, decoders full
            engine.step(clock.tick())
        feed = LiveFeed(samples)
        engine.attach_audio(feed)
        engine.store.set("tempo.source", "audio")
        on, off, crossings = [], [], []
        frames_on, cpu_on = 0, 0.0
        last_beat = None
        for r in range(args.rounds):
            for with_audio in (True, False):
                engine.music.audio = feed if with_audio else None
                c0, n0 = feed.cpu, 0
                end = time.perf_counter() + args.period
                while time.perf_counter() < end:
                    t = clock.tick()
                    t0 = time.perf_counter()
                    engine.step(t)
                    dt = time.perf_counter() - t0
                    (on if with_audio else off).append(dt)
                    n0 += 1
                    b = engine.tempo.beat(t)
                    if with_audio and last_beat is not None and int(b) > int(last_beat) and engine.music.frame.locked:
                        # when the show's beat turned (show time), on the track's time line
                        turned = t - (b - int(b)) * 60 / engine.tempo.rate
                        crossings.append(turned + clock.start - feed.start)
                    last_beat = b
                if with_audio:
                    frames_on += n0
                    cpu_on += feed.cpu - c0
        feed.close()
        engine.close()
    lat = [c - kicks[np.argmin(np.abs(kicks - c))] for c in crossings[8:]]
    print(f"   analysis: {cpu_on / max(1, frames_on) * 1000:.3f} ms of CPU per 60 fps frame (target <= 0.5)")
    print(f"   frame time without audio {stats_ms(off)}; with the analysis and the tracker leading the tempo "
          f"{stats_ms(on)}; p95 ratio {np.percentile(on, 95) / np.percentile(off, 95):.3f} (target <= 1.05)")
    if lat:
        print(f"   beat latency after lock (the show's beat minus the kick): median {np.median(lat) * 1000:+.1f} ms, "
              f"p95 |x| {np.percentile(np.abs(lat), 95) * 1000:.1f} ms over {len(lat)} beats (target under 16.7 ms)")


if __name__ == "__main__":
    main()
