"""``vj mosaic build | poster | plot | query``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mosaic.embed import METHODS
from vj.core.config import arg_number
from vj.core.runs import DEFAULT_RUNS, MosaicRun, image_out

log = logging.getLogger("vj")
RAW = argparse.RawDescriptionHelpFormatter

BUILD_EPILOG = """\
examples:
  vj mosaic build ~/videos/perfume --name perfume                 # the seed: 1 fps, 60x30 triangles
  vj mosaic build ~/loops/type --name type                        # a few minutes of loops: more fps, a fitted grid
  vj mosaic build a.mp4 b.mov stills/ --name mix --grid 40x20 --layout hex
  vj mosaic build ~/videos --name all --no-progress > build.log   # plain lines for a log file
Outputs in runs/mosaic/<name>/; grid.csv lists row, col, source file and timestamp of every cell.
Ctrl-C stops the build (exit code 130); finished stages stay cached and the next build goes on from there.
"""


def _name_and_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the mosaic's name: runs/mosaic/<name>/")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("mosaic", help="build reframe mosaics, render posters, search frames",
                       description="Reframe mosaics: similar frames side by side.",
                       epilog="examples:\n  vj mosaic build ~/videos --name all\n  vj mosaic poster all\n",
                       formatter_class=RAW)
    msub = m.add_subparsers(dest="mosaic_cmd", required=True, metavar="{build,poster,plot,query}")

    b = msub.add_parser("build", help="frames -> features -> t-SNE -> grid (each stage cached)",
                        description="Build a reframe mosaic: frames of videos and images, ImageNet features, "
                                    "t-SNE, a one-to-one grid, and the tile clips the live layer plays.",
                        epilog=BUILD_EPILOG, formatter_class=RAW)
    b.add_argument("inputs", nargs="+", type=Path, help="videos, images or folders of them")
    b.add_argument("--name", required=True, help="mosaic name: runs/mosaic/<name>/")
    b.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")
    b.add_argument("--fps", type=arg_number(0.01, 60), default=0.0,
                   help="frames per second of video (default: the seed's 1 for half an hour of video or more; "
                        "for less, up to 6, for about 1,800 frames)")
    b.add_argument("--backbone", default="efficientnet_lite0",
                   help="efficientnet_lite0 (offline default), inception_v3 (the seed's), resnet50")
    b.add_argument("--perplexity", type=arg_number(1, 500), default=10.0, help="t-SNE perplexity (default 10)")
    b.add_argument("--embed", default="tsne", choices=METHODS,
                   help="tsne (FFT-accelerated t-SNE, float32 on every core; default), sklearn (the seed's "
                        "Barnes-Hut t-SNE, 5x slower at 23k frames) or pca (instant, clusters overlap)")
    b.add_argument("--grid", help="COLSxROWS, at most 400x400 (default: the seed's 60x30, or as much of it as "
                                  "the frames fill, each cell a different frame: 500 frames make 30x15)")
    b.add_argument("--layout", default="triangle", choices=("triangle", "square", "hex"),
                   help="cell shape: triangle (the seed's, alternating up and down; default), square or hex")
    b.add_argument("--assign", default="optimal", choices=("optimal", "nearest"),
                   help="optimal: every cell a different frame (default); nearest: the seed's, with repeats")
    b.add_argument("--tile", type=arg_number(16, 512, int), default=128, help="atlas tile size in px (default 128)")
    b.add_argument("--dedupe", type=arg_number(0, 255), default=0.0,
                   help="drop near-identical consecutive frames, mean |difference| 0-255 (default 0: keep all; "
                        "e.g. 2)")
    b.add_argument("--device", default="cpu",
                   help="cpu (default: OpenVINO, else ONNX Runtime) or a torch device such as cuda for the features")
    b.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                   help="the CPU feature model: auto (default: bf16 where the CPU computes it natively, else "
                        "fp32), fp32, bf16 (about 2x fp32 on such a CPU, maps within noise of fp32), or int8 "
                        "(calibrated on the library's own frames; neighbours agree less); kept in the mosaic as "
                        "features.onnx, which queries use")
    b.add_argument("--no-progress", action="store_true",
                   help="no progress bars: plain lines every 10 s (the default when output is not a terminal)")
    b.set_defaults(func=cmd_build)

    p = msub.add_parser("poster", help="render the mosaic as one big image",
                        description="The whole mosaic as one PNG, every cell's frame in its triangle.",
                        epilog="examples:\n  vj mosaic poster perfume                       # 128 px tiles\n"
                               "  vj mosaic poster perfume --tile 64 --out small.png\n", formatter_class=RAW)
    _name_and_runs(p)
    p.add_argument("--out", type=image_out,
                   help="image, .png .jpg .webp or .tif (default runs/mosaic/<name>/poster.png)")
    p.add_argument("--tile", type=arg_number(8, 512, int), default=128,
                   help="tile size in px (default 128, the seed's)")
    p.set_defaults(func=cmd_poster)

    pl = msub.add_parser("plot", help="thumbnails at their t-SNE positions",
                         description="Every frame's thumbnail at its t-SNE position: the map before the grid.",
                         epilog="examples:\n  vj mosaic plot perfume\n  vj mosaic plot perfume --size 4000 "
                                "--out map.png\n", formatter_class=RAW)
    _name_and_runs(pl)
    pl.add_argument("--out", type=image_out,
                    help="image, .png .jpg .webp or .tif (default runs/mosaic/<name>/tsne.png)")
    pl.add_argument("--size", type=arg_number(256, 16384, int), default=2000,
                    help="side of the square image in px (default 2000)")
    pl.add_argument("--thumb", type=arg_number(0, 512, int), default=0,
                    help="thumbnail side in px (default 0: sized to the map's density)")
    pl.set_defaults(func=cmd_plot)

    q = msub.add_parser("query", help="find the frames nearest to an image (or to A + B - C)",
                        description="Search the mosaic's frames by feature distance (cosine: 0 identical, about "
                                    "0.5 unrelated), with a contact sheet of the matches.",
                        epilog="examples:\n  vj mosaic query perfume photo.jpg --k 8 --max-distance 0.35\n"
                               "  vj mosaic query perfume a.jpg --plus b.jpg --minus c.jpg   # a + b - c\n",
                        formatter_class=RAW)
    _name_and_runs(q)
    q.add_argument("image", type=Path, help="query image (or a video: its first frame)")
    q.add_argument("--k", type=arg_number(1, 1000, int), default=8, help="how many matches (default 8)")
    q.add_argument("--max-distance", type=arg_number(0, 2),
                   help="cosine distance cut-off: no match beats a wrong match (default: none)")
    q.add_argument("--plus", type=Path, action="append", default=[],
                   help="add this image's features (repeatable; default: none)")
    q.add_argument("--minus", type=Path, action="append", default=[],
                   help="subtract this image's features (repeatable; default: none)")
    q.add_argument("--out", type=image_out, help="contact sheet, .png .jpg .webp or .tif (default "
                   "runs/mosaic/<name>/query.png)")
    q.set_defaults(func=cmd_query)


def cmd_build(args) -> int:
    from mosaic.grid import parse_grid
    from mosaic.pipeline import BuildSettings, build

    grid = parse_grid(args.grid) if args.grid else (0, 0)  # (0, 0): fitted to the frames
    s = BuildSettings.make(dict(fps=args.fps, tile=args.tile, backbone=args.backbone, perplexity=args.perplexity,
                                embed=args.embed, grid=grid, layout=args.layout, assign=args.assign,
                                dedupe=args.dedupe, device=args.device, precision=args.precision), "command line")
    run = MosaicRun.of(args.runs, args.name)
    built = build(args.inputs, run, s, progress=False if args.no_progress else None)
    shown = len(set(built.grid.tolist()))
    log.info("mosaic %s: %d frames, %d cells, %d different frames shown; %s", args.name, len(built.atlas),
             len(built.grid), shown, run.grid_csv)
    log.info("next: vj mosaic poster %s --runs %s", args.name, args.runs)
    return 0


def cmd_poster(args) -> int:
    import time

    from mosaic.render import render_poster_file

    run = MosaicRun.of(args.runs, args.name)
    out = args.out or run.poster
    t0 = time.perf_counter()
    w, h = render_poster_file(run, out, args.tile)
    log.info("wrote %s (%dx%d, %.1f s)", out, w, h, time.perf_counter() - t0)
    return 0


def cmd_plot(args) -> int:
    from mosaic.pipeline import load_built
    from mosaic.render import render_plot
    from vj.core.runs import save_image

    run = MosaicRun.of(args.runs, args.name)
    built = load_built(run)
    out = args.out or run.plot
    save_image(out, render_plot(built.atlas, built.coords, args.size, args.thumb or None))
    log.info("wrote %s", out)
    return 0


def cmd_query(args) -> int:
    from mosaic.search import Searcher
    from vj.core.runs import save_image

    run = MosaicRun.of(args.runs, args.name)
    searcher = Searcher.open(run)
    result = searcher.query(args.image, args.plus, args.minus, args.k, args.max_distance)
    print(result.table())
    out = args.out or run.query
    save_image(out, result.sheet())
    log.info("contact sheet: %s", out)
    return 0
