"""``vj mosaic build | poster | plot | query``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mosaic.embed import METHODS
from vj.runs import DEFAULT_RUNS

log = logging.getLogger("vj")

BUILD_EPILOG = """\
examples:
  vj mosaic build ~/videos/perfume --name perfume                 # the seed: 1 fps, 60x30 triangles
  vj mosaic build a.mp4 b.mov stills/ --name mix --grid 40x20 --layout hex
  vj mosaic poster perfume --out poster.png --tile 128             # 3904x3840 for 60x30
  vj mosaic query perfume photo.jpg --k 8 --max-distance 0.35
Outputs in runs/mosaic/<name>/; grid.csv lists row, col, source file and timestamp of every cell.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("mosaic", help="build reframe mosaics, render posters, search frames",
                       description="Reframe mosaics: similar frames side by side.")
    msub = m.add_subparsers(dest="mosaic_cmd", required=True, metavar="{build,poster,plot,query}")

    b = msub.add_parser("build", help="frames -> features -> t-SNE -> grid (each stage cached)",
                        epilog=BUILD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("inputs", nargs="+", type=Path, help="videos, images or folders of them")
    b.add_argument("--name", required=True, help="mosaic name: runs/mosaic/<name>/")
    b.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")
    b.add_argument("--fps", type=float, default=1.0, help="frames per second of video (default 1, the seed's)")
    b.add_argument("--backbone", default="efficientnet_lite0",
                   help="efficientnet_lite0 (offline default), inception_v3 (the seed's), resnet50")
    b.add_argument("--perplexity", type=float, default=10.0, help="t-SNE perplexity (default 10)")
    b.add_argument("--embed", default="tsne", choices=METHODS,
                   help="tsne (FFT-accelerated t-SNE, float32 on every core; default), sklearn (the seed's "
                        "Barnes-Hut t-SNE, 5x slower at 23k frames) or pca (instant, clusters overlap)")
    b.add_argument("--grid", default="60x30", help="COLSxROWS (default 60x30)")
    b.add_argument("--layout", default="triangle", choices=("triangle", "square", "hex"))
    b.add_argument("--assign", default="optimal", choices=("optimal", "nearest"),
                   help="optimal: every cell a different frame (default); nearest: the seed's, with repeats")
    b.add_argument("--tile", type=int, default=128, help="atlas tile size in px (default 128)")
    b.add_argument("--dedupe", type=float, default=0.0, help="drop near-identical consecutive frames (e.g. 2)")
    b.add_argument("--device", default="cpu", help="cpu (default: ONNX Runtime) or a torch device such as cuda for the features")
    b.set_defaults(func=cmd_build)

    p = msub.add_parser("poster", help="render the mosaic as one big image")
    p.add_argument("name")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    p.add_argument("--out", type=Path, help="PNG (default runs/mosaic/<name>/poster.png)")
    p.add_argument("--tile", type=int, default=128, help="tile size in px (default 128, the seed's)")
    p.set_defaults(func=cmd_poster)

    pl = msub.add_parser("plot", help="thumbnails at their t-SNE positions")
    pl.add_argument("name")
    pl.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    pl.add_argument("--out", type=Path, help="PNG (default runs/mosaic/<name>/tsne.png)")
    pl.add_argument("--size", type=int, default=2000)
    pl.add_argument("--thumb", type=int, default=48)
    pl.set_defaults(func=cmd_plot)

    q = msub.add_parser("query", help="find the frames nearest to an image (or to A + B - C)")
    q.add_argument("name")
    q.add_argument("image", type=Path, help="query image (or a video: its first frame)")
    q.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    q.add_argument("--k", type=int, default=8, help="how many matches (default 8)")
    q.add_argument("--max-distance", type=float, help="cosine distance cut-off: no match beats a wrong match")
    q.add_argument("--plus", type=Path, action="append", default=[], help="add this image's features")
    q.add_argument("--minus", type=Path, action="append", default=[], help="subtract this image's features")
    q.add_argument("--out", type=Path, help="contact sheet PNG (default runs/mosaic/<name>/query.png)")
    q.set_defaults(func=cmd_query)


def cmd_build(args) -> int:
    from mosaic.grid import parse_grid
    from mosaic.pipeline import BuildSettings, build
    from vj.runs import mosaic_dir

    s = BuildSettings(fps=args.fps, tile=args.tile, backbone=args.backbone, perplexity=args.perplexity,
                      embed=args.embed, grid=parse_grid(args.grid), layout=args.layout, assign=args.assign,
                      dedupe=args.dedupe, device=args.device)
    run = mosaic_dir(args.runs, args.name)
    built = build(args.inputs, run, s)
    shown = len(set(built.grid.tolist()))
    log.info("mosaic %s: %d frames, %d cells, %d different frames shown; %s", args.name, len(built.atlas),
             len(built.grid), shown, run / "grid.csv")
    log.info("next: vj mosaic poster %s --runs %s", args.name, args.runs)
    return 0


def cmd_poster(args) -> int:
    import time

    from mosaic.render import render_poster_file
    from vj.runs import mosaic_dir

    run = mosaic_dir(args.runs, args.name)
    out = args.out or run / "poster.png"
    t0 = time.perf_counter()
    w, h = render_poster_file(run, out, args.tile)
    log.info("wrote %s (%dx%d, %.1f s)", out, w, h, time.perf_counter() - t0)
    return 0


def cmd_plot(args) -> int:
    from PIL import Image

    from mosaic.pipeline import load_built
    from mosaic.render import render_plot
    from vj.runs import mosaic_dir

    run = mosaic_dir(args.runs, args.name)
    built = load_built(run)
    out = args.out or run / "tsne.png"
    Image.fromarray(render_plot(built.atlas, built.coords, args.size, args.thumb)).save(out)
    log.info("wrote %s", out)
    return 0


def _image(path: Path, size: int):
    from vj.media import IMAGE_EXTS, read_frames, read_image

    if path.suffix.lower() in IMAGE_EXTS:
        return read_image(path, size)
    return next(read_frames(path, size=size))


def cmd_query(args) -> int:
    from PIL import Image

    from mosaic.features import FeatureExtractor
    from mosaic.pipeline import load_built
    from mosaic.search import combine, contact_sheet, nearest
    from vj.runs import mosaic_dir

    run = mosaic_dir(args.runs, args.name)
    built = load_built(run)
    ex = FeatureExtractor(built.settings.get("backbone", "efficientnet_lite0"))
    imgs = [_image(p, ex.spec.size) for p in [args.image, *args.plus]]
    minus = [_image(p, ex.spec.size) for p in args.minus]
    feats = ex(__import__("numpy").stack(imgs + minus))
    q = combine(list(feats[:len(imgs)]), list(feats[len(imgs):]))
    matches = nearest(built, q, args.k, args.max_distance)
    if not matches:
        print(f"no match within distance {args.max_distance:g}")
    for m in matches:
        print(f"{m.distance:.4f}  {m.source}  {m.time:.2f}s")
    out = args.out or run / "query.png"
    Image.fromarray(contact_sheet(imgs + minus, built, matches)).save(out)
    log.info("contact sheet: %s", out)
    return 0
