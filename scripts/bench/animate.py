"""Animated mosaic frames/s per mode at 1920x1080 (target >= 60 fps, p95 <= 16.7 ms on 2 cores), against
the naive way: re-rendering every visible tile of the view each frame.

    python scripts/bench/animate.py [--frames 300] [--run runs/mosaic/NAME]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header, procedural_videos, stats_ms

MODES = {
    "drift": dict(drift=0.5, play=0, ripple=0, morph=0),
    "play": dict(drift=0.3, play=1, ripple=0, morph=0),
    "ripple": dict(drift=0.3, play=0, ripple=1, morph=0),
    "morph": dict(drift=0.3, play=0, ripple=0, morph=0.5),
    "follow": dict(drift=0.3, play=1, ripple=0, morph=0, follow=1.0),
    "all": dict(drift=0.3, play=1, ripple=4, morph=0, follow=0.5),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--run", type=Path, help="a built mosaic (default: builds a 30x15 one from procedural loops)")
    args = p.parse_args()
    header("animated mosaic, 1920x1080")
    from mosaic.animate import MosaicAnimator
    from mosaic.pipeline import BuildSettings, build, load_built
    from mosaic.render import render_poster

    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            built = load_built(args.run)
        else:
            videos = list(procedural_videos(Path(tmp) / "v").values())
            built = build(videos, Path(tmp) / "m", BuildSettings(fps=12, tile=128, grid=(30, 15)))
        print(f"   {built.cols}x{built.rows} cells, {len(built.atlas)} frames")
        for name, kw in MODES.items():
            anim = MosaicAnimator(built, (1920, 1080))
            if name == "follow":
                anim.follow_point(anim.centers[len(anim.centers) // 3])
            times = []
            for i in range(args.frames):
                t0 = time.perf_counter()
                anim.frame(i / 60, beat=i / 30, **kw)
                times.append(time.perf_counter() - t0)
            times = times[10:]
            print(f"   {name:7} {1 / np.mean(times):6.1f} fps, {stats_ms(times)}")
        # a genre switch, as the engine's mosaic layer makes it: tiles fly from one layout (another seed's
        # view) to the new one over the frames, the new view mixed over the old by the mix kernels
        from vj.effects import FrameContext
        from vj.mix import as_frame
        from vj.sources import MosaicSource

        run = args.run or Path(tmp) / "m"
        old = MosaicSource((1920, 1080), run, seed=1)
        new = MosaicSource((1920, 1080), run, seed=2)
        old.animator.follow_point(old.animator.centers[0])
        p = {**MosaicSource.defaults(), **MODES["all"]}
        times = []
        for i in range(args.frames):
            t0 = time.perf_counter()
            as_frame(new.transition(old, i / args.frames, FrameContext(t=i / 60, beat=i / 30), p))
            times.append(time.perf_counter() - t0)
        times = times[10:]
        print(f"   {'switch':7} {1 / np.mean(times):6.1f} fps, {stats_ms(times)} (genre switch, tiles in flight)")
        # the naive way: redraw the visible tiles of the view every frame
        anim = MosaicAnimator(built, (1920, 1080))
        vis = anim.visible_cells(anim.view, 2.5)
        t0 = time.perf_counter()
        for _ in range(10):
            render_poster(built.atlas, built.grid, built.layout, built.cols, built.rows, anim.tile)
        t_full = (time.perf_counter() - t0) / 10
        print(f"   naive full redraw of the map each frame: {t_full * 1000:.1f} ms ({len(vis)} visible tiles)")


if __name__ == "__main__":
    main()
