"""``vj gan ...``: train genres (one or a queue), render learning clips and latent walks."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vj.runs import DEFAULT_RUNS

log = logging.getLogger("vj")

TRAIN_EPILOG = """\
examples:
  vj gan train ~/loops/particles --genre particles --epochs 200 --size 96
  vj gan train ~/loops/particles ~/loops/type --until 07:30        # queue; genre = folder name
  vj gan train --preset presets/genres/particles.toml --hours 8
  vj gan train ~/loops/particles --genre particles --resume --epochs 400
Ctrl-C checkpoints and says how to resume. Samples go to runs/gan/<genre>/samples/.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    gan = sub.add_parser("gan", help="train genre DCGANs, make learning clips and latent walks",
                         description="DCGAN genre models: train, then render clips.")
    gsub = gan.add_subparsers(dest="gan_cmd", required=True, metavar="{train,clip,walk}")

    from gan.config import TrainConfig
    from vj.config import describe

    t = gsub.add_parser("train", help="train one genre, or a queue of genres under one deadline",
                        epilog=TRAIN_EPILOG + "\nsettings (preset keys and --set KEY=VALUE):\n" + describe(TrainConfig), formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("videos", nargs="*", type=Path, help="folder(s) of a genre's video loops")
    t.add_argument("--genre", help="genre name (default: the folder's name)")
    t.add_argument("--preset", action="append", type=Path, default=[],
                   help="genre preset TOML (presets/genres/*.toml); repeat to queue several")
    t.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")
    t.add_argument("--size", type=int, choices=(64, 96, 128), help="image size (default 64; the seed used 96)")
    stop = t.add_mutually_exclusive_group()
    stop.add_argument("--epochs", type=int, help="total epochs (a resumed run trains the missing ones)")
    stop.add_argument("--until", metavar="HH:MM", help="stop at this local time (the queue shares it)")
    stop.add_argument("--hours", type=float, help="stop after H hours (the queue shares it)")
    t.add_argument("--batch", type=int, help="batch size (default 64)")
    t.add_argument("--fps", type=float, help="frames per second of video to cache (default 10)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="default auto")
    t.add_argument("--augment", help="DiffAugment policy, e.g. color,translation,cutout (small genres)")
    t.add_argument("--resume", action="store_true", help="continue the run's checkpoint exactly")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any training setting (listed below)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    t.set_defaults(func=cmd_train)

    c = gsub.add_parser("clip", help="the learning-process clip: one frame per recorded sample")
    c.add_argument("genre")
    c.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    c.add_argument("--out", type=Path, help="output file (default runs/gan/<genre>/clips/learning.mp4)")
    c.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    c.add_argument("--latent", type=int, help="one latent's frames instead of the grid (0..singles-1)")
    c.add_argument("--height", type=int, help="upscale to this height, e.g. 1080")
    c.add_argument("--blend", type=int, default=0, help="crossfaded in-between frames per sample (default 0)")
    c.set_defaults(func=cmd_clip)

    w = gsub.add_parser("walk", help="a seamless looping latent walk from the trained generator")
    w.add_argument("genre")
    w.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    w.add_argument("--out", type=Path, help="output file (default runs/gan/<genre>/clips/walk.mp4)")
    w.add_argument("--seconds", type=float, default=10.0, help="loop length (default 10)")
    w.add_argument("--fps", type=float, default=30.0)
    w.add_argument("--height", type=int, help="frame side, e.g. 512 (default: the model's size)")
    w.add_argument("--keys", type=int, default=8, help="latent key points in the loop (default 8)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--device", default="cpu")
    w.set_defaults(func=cmd_walk)


def _jobs(args) -> list:
    from gan.config import TrainConfig, load_preset
    from vj.config import build, parse_sets
    from vj.runs import gan_dir

    flags = {k: getattr(args, k) for k in ("size", "epochs", "until", "hours", "batch", "fps", "device", "augment")
             if getattr(args, k) is not None}
    flags.update(parse_sets(args.set))
    if args.hours is not None or args.until is not None:
        flags.setdefault("epochs", 10**9)  # the deadline decides
    bases = [(load_preset(p), str(p)) for p in args.preset]
    if len(args.videos) > 1 and args.genre:
        raise ValueError("--genre names one genre; with several folders each genre is named after its folder")
    for folder in args.videos:
        bases.append((TrainConfig(videos=str(folder), genre=args.genre or folder.resolve().name), str(folder)))
    if not bases:
        raise ValueError("give a videos folder or --preset FILE (see vj gan train --help)")
    jobs = []
    for base, where in bases:
        cfg = build(TrainConfig, flags, where="command line", base=base)
        if not cfg.genre or not cfg.videos:
            raise ValueError(f"{where}: a genre needs both 'genre' and 'videos'")
        jobs.append((cfg, gan_dir(args.runs, cfg.genre)))
    return jobs


def cmd_train(args) -> int:
    from gan.train import dist_info, train_queue

    jobs = _jobs(args)
    outcomes = train_queue(jobs, resume=args.resume, progress=not args.no_progress)
    if dist_info()[0] != 0:
        return 0 if all(o.status != "failed" for o in outcomes) else 1
    for (cfg, run_dir), o in zip(jobs, outcomes):
        line = f"{o.genre}: {o.status} at epoch {o.epoch} (step {o.step})"
        if o.message:
            line += f": {o.message}"
        if o.status in ("interrupted", "deadline"):
            line += f"; resume with: vj gan train {cfg.videos} --genre {cfg.genre} --runs {args.runs} --resume"
        elif o.status == "done":
            line += f"; samples in {run_dir / 'samples'}; clip with: vj gan clip {cfg.genre} --runs {args.runs}"
        log.info(line)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_clip(args) -> int:
    from gan.clips import learning_clip
    from vj.runs import gan_dir

    run = gan_dir(args.runs, args.genre)
    out = args.out or run / "clips" / ("learning.mp4" if args.latent is None else f"learning_z{args.latent:02d}.mp4")
    n = learning_clip(run, out, fps=args.fps, latent=args.latent, height=args.height, blend=args.blend)
    log.info("wrote %s (%d frames at %g fps)", out, n, args.fps)
    return 0


def cmd_walk(args) -> int:
    from gan.clips import walk_clip
    from vj.runs import gan_dir

    run = gan_dir(args.runs, args.genre)
    if not (run / "ckpt.pt").exists():
        raise FileNotFoundError(f"{run}: no checkpoint (train first: vj gan train ... --genre {args.genre})")
    out = args.out or run / "clips" / "walk.mp4"
    n = walk_clip(run, out, args.seconds, args.fps, args.height, args.keys, args.seed, args.device)
    log.info("wrote %s (%d frames at %g fps, loops seamlessly)", out, n, args.fps)
    return 0
