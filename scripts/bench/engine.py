"""The live engine at 1920x1080: two clip layers + a generator + a mosaic layer + two effects.

Prints median and p95 render time per frame (live mode: decoding and the generator run in workers), the
cost of presenting to a window apart (pygame, SDL dummy driver unless a display is set), four genre switches
(frame times while two genres crossfade, and the worst frame), resident memory
at the start and end of a soak, and the offline render of the same scene at 1080p30 including encoding
against real time. Baseline: the 60 fps frame budget (16.7 ms) and real time.

    python scripts/bench/engine.py [--soak 600] [--offline-seconds 10]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from assets import make_show
from common import cpu_times, header, rss_mb, stats_ms, steal_note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--soak", type=float, default=600, help="seconds of live rendering (default 600)")
    p.add_argument("--offline-seconds", type=float, default=10)
    p.add_argument("--render-scale", type=float, default=1.0, help="layers render at this share of 1080p")
    p.add_argument("--preset", default=None, help="x264 preset of the offline render (default: vj render's)")
    args = p.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    header("engine, 1920x1080: 2 clip layers + generator + mosaic + 2 effects")
    from vj.clock import FixedClock, RealtimeClock
    from vj.engine import Engine
    from vj.outputs.file import SHOW_PRESET, FileOutput
    from vj.outputs.window import WindowOutput
    from vj.scene import load_scene

    with tempfile.TemporaryDirectory() as tmp:
        scene = load_scene(make_show(Path(tmp)))
        engine = Engine(scene, exact=False, render_scale=args.render_scale)
        print(f"   render size {engine.render_size[0]}x{engine.render_size[1]} -> output 1920x1080")
        window = WindowOutput(engine.size, engine.store, engine.keys)
        clock = RealtimeClock(60)
        for _ in range(60):  # warm-up: decoders fill, generator worker starts
            window.write(engine.step(clock.tick()), 0)
        rss0 = rss_mb()
        cpu0, proc0 = cpu_times(), time.process_time()
        render, present = [], []
        t_start = time.perf_counter()
        t_end = t_start + args.soak
        samples, next_sample = [], t_start + args.soak / 10  # RSS at every tenth: a plateau, or a leak's slope
        while time.perf_counter() < t_end:
            if time.perf_counter() >= next_sample:
                samples.append(rss_mb())
                next_sample += args.soak / 10
            t = clock.tick()
            t0 = time.perf_counter()
            frame = engine.step(t)
            t1 = time.perf_counter()
            window.write(frame, t)
            present.append(time.perf_counter() - t1)
            render.append(t1 - t0)
        rss1 = rss_mb()
        cpu1, proc1 = cpu_times(), time.process_time()
        # genre switches a -> b -> a -> b, each a 1 s crossfade (two genres' layers, mosaic tiles in flight)
        fading, worst = [], 0.0
        for genre in ("b", "a", "b", "a"):
            engine.genres.request(genre, engine.t, "bench")
            for _ in range(90):
                t = clock.tick()
                t0 = time.perf_counter()
                frame = engine.step(t)
                dt = time.perf_counter() - t0
                window.write(frame, t)
                worst = max(worst, dt)
                if engine.genres.fade_from is not None:
                    fading.append(dt)
        window.close()
        engine.close()
        budget = 1 / 60
        print(f"   live render: {stats_ms(render)} over {len(render)} frames "
              f"(60 fps budget 16.7 ms: p95 is {np.percentile(render, 95) / budget:.2f}x the budget); "
              f"p99 {np.percentile(render, 99) * 1000:.1f} ms, {np.mean(np.array(render) > budget):.2%} of frames "
              f"over the budget (with present: {np.mean(np.add(render, present) > budget):.2%})")
        print(f"   present (pygame blit + flip): {stats_ms(present)}")
        cpu_ms = (proc1 - proc0) / len(render) * 1000
        print(f"   this process's CPU per frame (render, present, workers): {cpu_ms:.1f} ms; {steal_note(cpu0, cpu1)}")
        print(f"   genre switches (1 s crossfades): {stats_ms(fading)} over {len(fading)} fading frames, "
              f"worst frame {worst * 1000:.0f} ms")
        print(f"   memory over {args.soak:.0f} s: {rss0:.0f} MB -> {rss1:.0f} MB; at every tenth of the soak: "
              + " ".join(f"{m:.0f}" for m in samples))

        # offline, as `vj render` runs it: a new engine (its generator imports torch, its clips decode whole
        # before the first frame), frames streamed to ffmpeg, the file finished
        preset = args.preset or SHOW_PRESET
        t0 = time.perf_counter()
        offline = Engine(load_scene(scene.path), exact=True, fps=30, render_scale=args.render_scale)
        n = int(args.offline_seconds * 30)
        first = []
        ch0 = os.times()
        offline.run(FixedClock(30), [FileOutput(Path(tmp) / "out.mp4", 30, offline.size, preset=preset)],
                    frames=n, on_frame=lambda i: first.append(time.perf_counter()) if i == 1 else None)
        wall = time.perf_counter() - t0
        ch1 = os.times()
        offline.close()
        start = first[0] - t0
        enc = (ch1.children_user + ch1.children_system - ch0.children_user - ch0.children_system) / n * 1000
        print(f"   offline render 1080p30 with encoding (x264 {preset}): {n} frames in {wall:.1f} s = "
              f"{args.offline_seconds / wall:.2f}x real time, of which {start:.1f} s to the first frame (engine "
              f"start: torch import, clips decoded); after it {(n - 1) / 30 / (wall - start):.2f}x real time "
              f"(target > 1); ffmpeg's CPU {enc:.0f} ms a frame")


if __name__ == "__main__":
    main()
