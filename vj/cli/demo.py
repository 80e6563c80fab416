"""``vj demo``: the whole product on embedded material, offline, in a few minutes on two cores.

1. draws procedural genre loops (plasma, tunnel, particles, typography),
2. trains a small DCGAN per genre under a shared time budget and writes its learning clip and a walk,
3. builds a reframe mosaic of all the loops,
4. renders a showcase of the demo scene and cue list (genre switches, effects), or plays it live.
Each step is skipped when its output is already there, so a second run goes straight to the show.
"""
from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

from vj.core.config import PRESETS, arg_number

log = logging.getLogger("vj")
SCENE = PRESETS / "scenes" / "demo.toml"
CUES = PRESETS / "cues" / "demo.toml"
GENRES = ("plasma", "tunnel", "particles", "typography")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on built-in material (no media, no network)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  vj demo                          # render demo-out/showcase.mp4\n"
                              "  vj demo --live                   # play it in a window, with the control page\n"
                              "  vj demo --fresh --train-seconds 600 --size 1920x1080\n")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: %(default)s)")
    p.add_argument("--seconds", type=arg_number(1, 3600), default=20.0, help="showcase length (default 20)")
    p.add_argument("--size", default="1280x720", help="showcase size WxH, at most 8K (default 1280x720)")
    p.add_argument("--train-seconds", type=arg_number(1, 7 * 24 * 3600), default=120.0,
                   help="GAN training budget shared by the four genres, 1 s to a week (default 120)")
    p.add_argument("--live", action="store_true", help="play the show in a window instead of rendering it")
    p.add_argument("--web", default="127.0.0.1:8080", metavar="[HOST:]PORT",
                   help="with --live: the control page's address (default %(default)s; 'off' for none)")
    p.add_argument("--fresh", action="store_true", help="redo every step even if its output exists")
    p.set_defaults(func=cmd_demo)


def make_videos(out: Path) -> dict[str, Path]:
    from vj.procedural import write_genre_videos

    folders = {}
    for genre in GENRES:
        write_genre_videos(out / "videos" / genre, genre, count=3, seconds=4.0, fps=24, size=(256, 144))
        folders[genre] = out / "videos" / genre
    return folders


def train_genres(out: Path, folders: dict[str, Path], budget: float) -> None:
    from gan.clips import learning_clip, walk_clip
    from gan.config import settings
    from gan.data import training_files
    from vj.core.media import library_size
    from gan.train import train_queue
    from vj.core.runs import GanRun

    runs = out / "runs"
    jobs = []
    for genre, folder in folders.items():
        run = GanRun.of(runs, genre)
        if not run.ckpt.exists():
            # no tuning here: the profile that suits the machine and the loops (the cpu one: small, quick,
            # augmented; on a CUDA GPU FastGAN at 256 px), with the demo's time budget and a small sample grid
            cfg = settings({"genre": genre, "videos": str(folder.resolve()), "epochs": 0, "hours": budget / 3600,
                            "n_fixed": 36, "kid_minutes": 0.0}, "vj demo",
                           data=library_size(training_files(folder), genre))
            jobs.append((cfg, run))
    if jobs:
        log.info("demo: training %d genre GANs for %.0f s in all", len(jobs), budget)
        for o in train_queue(jobs, resume=False):
            log.info("demo: %s %s after %d epochs%s", o.genre, o.status, o.epoch, f" ({o.message})" if o.message else "")
    for genre in folders:
        run = GanRun.of(runs, genre)
        if not run.clip("learning").exists():
            learning_clip(run, run.clip("learning"), fps=30, height=360, blend=2, progress=False)
        if not run.clip("walk").exists():
            walk_clip(run, run.clip("walk"), seconds=8, fps=30, height=256, progress=False)


def build_mosaic(out: Path, folders: dict[str, Path]):
    from mosaic.pipeline import BuildSettings, build
    from mosaic.render import render_poster_file
    from vj.core.runs import MosaicRun

    run = MosaicRun.of(out / "runs", "demo")
    settings = BuildSettings(fps=6.0, grid=(20, 10), tile=96, perplexity=10)
    build(list(folders.values()), run, settings)
    render_poster_file(run, out / "poster.png", tile=64)
    return run


def scene_for(out: Path) -> Path:
    """The demo scene from presets/, re-rooted at ``out`` (one source of truth for the show)."""
    text = SCENE.read_text()
    text = re.sub(r'^root = .*$', 'root = "."', text, count=1, flags=re.M)
    path = out / "scene.toml"
    path.write_text(text)
    return path


def cmd_demo(args) -> int:
    from vj.scene import parse_size

    parse_size(args.size, "--size")  # refused now, not after minutes of training
    t0 = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        import shutil

        for sub in ("videos", "runs"):
            shutil.rmtree(out / sub, ignore_errors=True)
    log.info("demo: [1/4] drawing procedural genre loops")
    folders = make_videos(out)
    log.info("demo: [2/4] training genre GANs and writing their learning clips")
    train_genres(out, folders, args.train_seconds)
    log.info("demo: [3/4] building the reframe mosaic")
    mosaic = build_mosaic(out, folders)
    scene = scene_for(out)
    from vj.procedural import write_beat_track

    track = write_beat_track(out / "beat.wav", seconds=args.seconds, bpm=124)
    from vj.cli.show import build_engine, render_show

    if args.live:
        from vj.live import LiveControl, play_live

        log.info("demo: [4/4] playing live (keys 1-4 genres, space tap, h help, Esc quits)")
        play_live(build_engine(scene, False, CUES, args.size, log_file=out / "show.log"),
                  control=LiveControl(web=args.web))
    else:
        log.info("demo: [4/4] rendering the %g s showcase", args.seconds)
        render_show(scene, out / "showcase.mp4", args.seconds, CUES, track, args.size, log_file=out / "show.log")
    log.info("\ndemo finished in %.0f s. Outputs in %s/:", time.time() - t0, out)
    if not args.live:
        log.info("  showcase.mp4                  the rendered show with its beat (scene.toml, presets/cues/demo.toml)")
    log.info("  runs/gan/<genre>/clips/       learning clips and latent walks; samples/ has every epoch")
    if mosaic:
        log.info("  poster.png, runs/mosaic/demo  the reframe mosaic and its grid.csv")
    log.info("  show.log                      genre switches and cues as they happened")
    log.info("Play it live: vj live %s   (or vj demo --live)", scene)
    log.info("Your own loops: vj gan train ~/loops/NAME, then vj scene && vj live --web (README: from your own "
             "loops to a show)")
    return 0
