"""Genre switches at 1920x1080: frame times while two genres crossfade, against the calm scene's.

The benchmark show (two clip layers, a generator and a mosaic per genre, two effects) plays calm for
--calm seconds, then switches genre --switches times (1 s fades: the clips and generators crossfade, the
mosaic's tiles fly between layouts). Printed: the calm frames' median and p95, the fading frames' median,
p95 and worst, and the worst frame of the whole run. Target (issue 19): fading p95 <= 16.7 ms (the 60 fps
budget) and worst <= 33 ms, the calm p95 unchanged.

--against REV measures the build at git revision REV too (a temporary worktree), the two interleaved
round by round (A B, B A, A B ...) on the same show files, so a drift of the host hits both alike.

    python scripts/bench/fades.py [--rounds 3] [--calm 4] [--switches 4] [--against HEAD]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, cpu_times, header, steal_note


def measure(tree: Path, scene: Path, calm: float, switches: int) -> dict:
    """One build's frame times on ``scene`` (run in a child process whose imports come from ``tree``)."""
    sys.path.insert(0, str(tree))
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from vj.clock import RealtimeClock
    from vj.engine import Engine
    from vj.scene import load_scene

    engine = Engine(load_scene(scene), exact=False)
    clock = RealtimeClock(60)
    for _ in range(90):  # warm-up: decoders fill, generator workers start, every genre's sources load
        engine.step(clock.tick())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            layer.sources.get(g) is not None for layer in engine.layers for g in ("a", "b")
            if layer.kind.follows_genre):
        engine.step(clock.tick())
    calm_ms, fading_ms, worst = [], [], 0.0
    for _ in range(int(calm * 60)):
        t = clock.tick()
        t0 = time.perf_counter()
        engine.step(t)
        calm_ms.append((time.perf_counter() - t0) * 1000)
    for k in range(switches):
        engine.genres.request("ab"[(k + 1) % 2], engine.t, "bench")
        for _ in range(90):
            t = clock.tick()
            t0 = time.perf_counter()
            engine.step(t)
            dt = (time.perf_counter() - t0) * 1000
            worst = max(worst, dt)
            if engine.genres.fade_from is not None:
                fading_ms.append(dt)
    engine.close()
    return {"calm": calm_ms, "fading": fading_ms, "worst": max(worst, max(calm_ms))}


def summary(name: str, runs: list[dict]) -> str:
    calm = np.concatenate([r["calm"] for r in runs])
    fading = np.concatenate([r["fading"] for r in runs])
    worst = max(r["worst"] for r in runs)
    met = np.percentile(fading, 95) <= 16.7 and max(fading) <= 33
    return (f"   {name:10} calm median {np.median(calm):5.1f} ms, p95 {np.percentile(calm, 95):5.1f} | fading "
            f"median {np.median(fading):5.1f} ms, p95 {np.percentile(fading, 95):5.1f}, worst fading frame "
            f"{max(fading):5.1f} ms ({len(fading)} frames) | worst frame {worst:5.1f} ms | target "
            f"{'met' if met else 'NOT met'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="measurements per build (default 3)")
    p.add_argument("--calm", type=float, default=4.0, help="seconds of calm frames per round (default 4)")
    p.add_argument("--switches", type=int, default=4, help="genre switches per round (default 4)")
    p.add_argument("--against", metavar="REV", help="also measure this git revision, interleaved")
    p.add_argument("--child", nargs=2, metavar=("TREE", "SCENE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), Path(args.child[1]), args.calm, args.switches)))
        return
    header("genre switches at 1920x1080: 2 clip layers + generator + mosaic + 2 effects, 1 s fades")
    from assets import make_show

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = make_show(tmp / "show")
        builds = {"this build": ROOT}
        if args.against:
            rev = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.strip()
            other = tmp / "other"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), rev], cwd=ROOT, check=True)
            builds[rev] = other
        results: dict[str, list[dict]] = {name: [] for name in builds}
        c0 = cpu_times()
        try:
            for r in range(args.rounds):
                order = list(builds.items()) if r % 2 == 0 else list(builds.items())[::-1]
                for name, tree in order:
                    out = subprocess.run([sys.executable, __file__, "--child", str(tree), str(scene), "--calm",
                                          str(args.calm), "--switches", str(args.switches)], check=True,
                                         capture_output=True, text=True, cwd=tree)
                    results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(f"   round {r + 1} {name}: fading p95 "
                          f"{np.percentile(results[name][-1]['fading'], 95):.1f} ms", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "other")], cwd=ROOT)
        for name, runs in results.items():
            print(summary(name, runs))
        print(f"   {steal_note(c0, cpu_times())}")


if __name__ == "__main__":
    main()
