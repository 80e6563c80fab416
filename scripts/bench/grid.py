"""Grid assignment time: one-to-one (ours: candidate pruning + scipy's Jonker-Volgenant) for 60x30 and
120x60 cells, against the same solver on the full cells x frames cost matrix, and the seed's nearest
(k=1, repeats). Also prints distinct frames shown and the neighbour agreement of labelled clusters.

    python scripts/bench/grid.py [--frames 23135]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import header


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=23135)
    args = p.parse_args()
    header("grid assignment")
    from scipy.optimize import linear_sum_assignment

    from mosaic.grid import assign, cell_centers, neighbour_agreement, normalise

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, args.frames)
    centres = rng.random((12, 2)) * 100
    coords = centres[labels] + rng.normal(0, 4, (args.frames, 2))
    assign(coords[:100], 8, 4)  # numba's first call (0.4 s), paid in `vj mosaic build` by its t-SNE stage
    for cols, rows in ((60, 30), (120, 60)):
        t0 = time.perf_counter()
        near = assign(coords, cols, rows, "nearest")
        t_near = time.perf_counter() - t0
        t0 = time.perf_counter()
        opt = assign(coords, cols, rows, "optimal")
        t_opt = time.perf_counter() - t0
        line = (f"   {cols}x{rows}: ours one-to-one {t_opt:.2f} s ({len(set(opt.tolist()))} distinct, agreement "
                f"{neighbour_agreement(opt, labels, cols, rows):.3f}); seed nearest {t_near:.3f} s "
                f"({len(set(near.tolist()))} distinct, agreement {neighbour_agreement(near, labels, cols, rows):.3f})")
        if cols * rows <= 1800:
            cells, pts = cell_centers(cols, rows), normalise(coords)
            t0 = time.perf_counter()
            linear_sum_assignment(((cells[:, None] - pts[None]) ** 2).sum(-1))
            t_full = time.perf_counter() - t0
            line += f"; full {cols * rows}x{args.frames} matrix {t_full:.2f} s (ratio {t_full / t_opt:.1f}x)"
        print(line)
    print("   targets: 60x30 one-to-one under 2 s")
    real_quality()


def real_quality() -> None:
    """On real features of frames from labelled genres (the procedural loops): distinct frames shown and
    the share of adjacent cells whose frames share a genre, nearest vs optimal."""
    import tempfile
    from pathlib import Path

    from common import procedural_videos
    from mosaic.grid import assign, neighbour_agreement
    from mosaic.pipeline import BuildSettings, build

    with tempfile.TemporaryDirectory() as tmp:
        videos = procedural_videos(Path(tmp) / "v")
        b = build(list(videos.values()), Path(tmp) / "m", BuildSettings(fps=6, tile=32, grid=(20, 10), strip_frames=1))
        names = list(videos)
        labels = np.array([names.index(Path(src).parent.name) for src, _ in b.index])
        print(f"   real features, {len(labels)} frames of {len(names)} genres:")
        for cols, rows in ((20, 10), (16, 8), (12, 6)):
            near, opt = assign(b.coords, cols, rows, "nearest"), assign(b.coords, cols, rows, "optimal")
            print(f"     {cols}x{rows}: nearest {len(set(near.tolist()))} distinct, agreement "
                  f"{neighbour_agreement(near, labels, cols, rows):.3f}; optimal {len(set(opt.tolist()))} distinct, "
                  f"agreement {neighbour_agreement(opt, labels, cols, rows):.3f}")


if __name__ == "__main__":
    main()
