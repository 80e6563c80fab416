"""``vj gan ...``: train genres (one or a queue), render learning clips and latent walks, export generators."""
from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from vj.core.config import arg_number
from vj.core.runs import DEFAULT_RUNS, GanRun, name_from

log = logging.getLogger("vj")
RAW = argparse.RawDescriptionHelpFormatter

TRAIN_EPILOG = """\
profiles (--profile auto picks gpu where a CUDA device is, else cpu, and the run's first line says what it
chose; a flag or --set KEY=VALUE overrides any of it):
{profiles}

examples:
  vj gan train ~/loops/particles --genre particles --epochs 200 --size 96
  vj gan train ~/loops/particles ~/loops/type --until 07:30        # queue; genre = folder name
  vj gan train --preset presets/genres/particles.toml --hours 8
  vj gan train ~/loops/plasma --set upsample=bilinear               # soft material: smoother generator
  vj gan train ~/loops/type --preset presets/genres/typography.toml # its settings on your loops (dedupe=2)
  vj gan train ~/posters --genre posters --arch fastgan             # a folder of stills (few-shot)
  vj gan train ~/loops/type --preset presets/genres/overnight-gpu.toml --until 07:30
  vj gan train --genre particles --resume                          # continue with the run's own settings
  vj gan train --genre particles --resume --epochs 400             # ... and train to epoch 400
Ctrl-C checkpoints, says how to resume and exits 130. Samples go to runs/gan/<genre>/samples/.
A resumed run keeps its config.toml: flags that change the model or its data are refused.
"""

# flags that are settings (TrainConfig fields) when given
SETTING_FLAGS = ("profile", "arch", "size", "epochs", "until", "hours", "batch", "fps", "device", "augment")


def add_parser(sub: argparse._SubParsersAction, monitor=None) -> None:
    """``monitor(runs, address)``: a context manager serving the training monitor (the ``vj`` command hands
    in its web server; gan/ itself stands on vj.core only)."""
    gan = sub.add_parser("gan", help="train genre GANs, make learning clips and latent walks",
                         description="Genre GANs: train, then render clips and walks, or export for a show laptop.",
                         epilog="examples:\n  vj gan train ~/loops/particles --hours 8\n  vj gan clip particles "
                                "--height 1080\n", formatter_class=RAW)
    gsub = gan.add_subparsers(dest="gan_cmd", required=True, metavar="{train,clip,walk,score,export}")

    from gan.config import TrainConfig, describe_profiles
    from vj.core.config import describe

    t = gsub.add_parser("train", help="train one genre, or a queue of genres under one deadline",
                        description="Train a GAN per genre on frames cut from its video loops (and on any "
                                    "still images beside them).",
                        epilog=TRAIN_EPILOG.format(profiles=describe_profiles()) + "\nsettings (preset keys and --set KEY=VALUE):\n" + describe(TrainConfig),
                        formatter_class=RAW)
    t.add_argument("videos", nargs="*", type=Path, help="folder(s) of a genre's video loops, or of still images "
                   "(one frame each), or both (not needed with --resume)")
    t.add_argument("--genre", help="genre name (default: the folder's name, e.g. 'my loops' -> my-loops)")
    t.add_argument("--preset", action="append", type=Path, default=[],
                   help="genre preset TOML (presets/genres/*.toml); repeat to queue several; with a folder: its "
                        "settings on that folder")
    t.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")
    t.add_argument("--profile", choices=("auto", "cpu", "gpu", "none"),
                   help="settings that learn on this machine (default auto: gpu with a CUDA device, else cpu; "
                        "listed below); any flag or --set wins over the profile")
    t.add_argument("--arch", choices=("dcgan", "fastgan"),
                   help="dcgan (the seed's, 64-128 px; the cpu profile's) or fastgan (128-1024 px from few "
                        "images; the gpu profile's)")
    t.add_argument("--size", type=int, choices=(64, 96, 128, 256, 512, 1024),
                   help="image size (dcgan 64, 96 or 128; fastgan 128-1024; default: the profile's)")
    stop = t.add_mutually_exclusive_group()
    stop.add_argument("--epochs", type=arg_number(1, 10**7, int), help="total epochs (default 25; a resumed run "
                                                                       "trains the missing ones)")
    stop.add_argument("--until", metavar="HH:MM", help="stop at this local time (the queue shares it)")
    stop.add_argument("--hours", type=arg_number(0.001, 24 * 365), help="stop after H hours (the queue shares it)")
    t.add_argument("--batch", type=arg_number(1, 4096, int), help="batch size (default: the profile's; 64 with --profile none)")
    t.add_argument("--fps", type=arg_number(0.01, 120),
                   help="frames per second of video to cache (default: the profile's, fitted to the library; 10 "
                        "with --profile none)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="where to train (default auto)")
    t.add_argument("--augment", help="DiffAugment policy: any of color,translation,cutout, e.g. translation,color (small genres; "
                                        "default: the profile's; none with --profile none)")
    t.add_argument("--resume", action="store_true", help="continue the run's checkpoint exactly, with its settings")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any training setting (listed below)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bars: one line per epoch and every 30 s (the default when not on a terminal)")
    if monitor is not None:
        t.add_argument("--web", nargs="?", const="127.0.0.1:8080", metavar="[HOST:]PORT",
                       help="serve the training monitor while training (default address with the flag alone: "
                            "127.0.0.1:8080)")
    t.set_defaults(func=cmd_train, monitor=monitor)

    c = gsub.add_parser("clip", help="the learning-process clip: one frame per recorded sample",
                        description="The learning process as a video: every recorded sample of the fixed latents, "
                                    "in order (a clip worth playing on stage).",
                        epilog="examples:\n  vj gan clip particles --height 1080 --blend 2\n"
                               "  vj gan clip particles type photoreal --seconds 20   # each genre's\n"
                               "  vj gan clip particles --latent 0 --out z0.mp4      # one latent's own track\n",
                        formatter_class=RAW)
    _genre_and_runs(c, several=True)
    c.add_argument("--out", type=Path, help="output file (default runs/gan/<genre>/clips/learning.mp4)")
    c.add_argument("--fps", type=arg_number(1, 240), default=30.0, help="frames per second (default 30)")
    c.add_argument("--latent", type=arg_number(0, 1023, int),
                   help="one latent's frames instead of the grid (0..singles-1; default: the grid)")
    c.add_argument("--height", type=arg_number(16, 4320, int), help="upscale to this height, e.g. 1080 "
                                                                     "(default: the samples' own)")
    c.add_argument("--blend", type=arg_number(0, 60, int), default=0,
                   help="crossfaded in-between frames per sample (default 0)")
    c.add_argument("--seconds", type=arg_number(0.1, 3600),
                   help="the clip's length: the samples spread over it, blended (default: one frame each)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar (lines every 10 s)")
    c.set_defaults(func=cmd_clip)

    w = gsub.add_parser("walk", help="a seamless looping latent walk from the trained generator",
                        description="A latent walk that loops seamlessly: spherical interpolation through key "
                                    "latents, eased at each.",
                        epilog="examples:\n  vj gan walk particles --seconds 16 --height 512\n"
                               "  vj gan walk particles type photoreal               # each genre's\n"
                               "  vj gan walk particles --keys 4 --seed 7 --out calm.mp4\n", formatter_class=RAW)
    _genre_and_runs(w, several=True)
    w.add_argument("--out", type=Path, help="output file (default runs/gan/<genre>/clips/walk.mp4)")
    w.add_argument("--seconds", type=arg_number(0.1, 3600), default=10.0, help="loop length (default 10)")
    w.add_argument("--fps", type=arg_number(1, 240), default=30.0, help="frames per second (default 30)")
    w.add_argument("--height", type=arg_number(16, 4320, int),
                   help="frame side in px, e.g. 512, upscaled with Lanczos (default: the model's size)")
    w.add_argument("--keys", type=arg_number(2, 256, int), default=8, help="latent key points in the loop (default 8)")
    w.add_argument("--seed", type=arg_number(0, 2**32 - 1, int), default=0, help="picks the key latents (default 0)")
    w.add_argument("--device", default="cpu", help="torch device to run the generator on (default cpu)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar (lines every 10 s)")
    w.set_defaults(func=cmd_walk)

    sc = gsub.add_parser("score", help="the quality (KID) of a run's generator against its frames",
                         description="KID (kernel inception distance, unbiased, in EfficientNet-Lite0 features) "
                                     "of the run's generator against the genre's frames: 0 is the frames' own "
                                     "distribution, lower is better.",
                         epilog="examples:\n  vj gan score particles\n  vj gan score particles --samples 512\n",
                         formatter_class=RAW)
    _genre_and_runs(sc)
    sc.add_argument("--samples", type=arg_number(16, 5000, int), default=256,
                    help="generated images to score (default 256)")
    sc.set_defaults(func=cmd_score)

    e = gsub.add_parser("export", help="the generator alone, small, for a show laptop",
                        description="Write the generator alone (no discriminator or optimiser state): a file a "
                                    "scene or the live layer loads like a checkpoint.",
                        epilog="examples:\n  vj gan export particles --out particles-g.pt\n"
                               "  vj gan export particles            # runs/gan/particles/generator.pt\n",
                        formatter_class=RAW)
    _genre_and_runs(e)
    e.add_argument("--out", type=Path, help="output file (default runs/gan/<genre>/generator.pt)")
    e.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16 where it is exact "
                                                       "enough, half the size)")
    e.set_defaults(func=cmd_export)


def _genre_and_runs(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("genres", nargs="+", metavar="genre", help="the genres' names: runs/gan/<genre>/")
    else:
        p.add_argument("genre", help="the genre's name: runs/gan/<genre>/")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="runs folder (default: %(default)s)")


def _jobs(args) -> list:
    from gan.config import (TrainConfig, layered, load_run_config, preset_values, resume_config, settings,
                            with_clip_length)
    from vj.core.media import library_size
    from gan.model import pick_device
    from vj.core.config import build, parse_sets

    flags = {k: getattr(args, k) for k in SETTING_FLAGS if getattr(args, k) is not None}
    flags.update(parse_sets(args.set))
    build(TrainConfig, flags, where="command line")  # a bad key or value is named as the flag it came from
    if args.hours is not None or args.until is not None:
        flags.setdefault("epochs", 0)  # the deadline decides
    presets = [(preset_values(p), str(p)) for p in args.preset]
    # a preset that names its videos is a genre of the queue; one that does not (quick-cpu, overnight-gpu)
    # is settings for the folders given on the command line, and so is a genre preset given with folders
    # (its settings on your loops: vj gan train ~/loops/type --preset presets/genres/typography.toml)
    bases = [(v, w) for v, w in presets if v.get("videos")]
    if len(args.videos) > 1 and args.genre:
        raise ValueError("--genre names one genre; with several folders each genre is named after its folder")
    named = None
    if args.videos and bases:
        if len(bases) > 1:
            raise ValueError(f"{bases[0][1]} and {bases[1][1]} name their own videos: give them without folders "
                             f"(a queue of their genres), or one of them with your folders")
        (values, where), bases = bases[0], []
        named = values.get("genre") if len(args.videos) == 1 else None
        log.info("%s: its settings for %s (not its videos = %s)", where, ", ".join(map(str, args.videos)),
                 values["videos"])
    # the settings for the folders, a later preset's over an earlier one's
    shared = layered(*({k: v for k, v in values.items() if k not in ("videos", "genre")}
                       for values, _ in presets if args.videos or not values.get("videos")))
    for folder in args.videos:
        genre = args.genre or named or _genre_of(folder)
        bases.append(({**shared, "videos": str(folder), "genre": genre}, str(folder)))
    if shared and not args.videos:
        raise ValueError("the preset names no videos: give the genre's folder too, e.g. vj gan train ~/loops/x "
                         f"--preset {args.preset[0]}")
    if not bases and args.resume and args.genre:
        bases.append(({"genre": args.genre}, f"runs/gan/{args.genre}"))
    if not bases:
        raise ValueError("give a videos folder, --preset FILE, or --genre NAME --resume (see vj gan train --help)")
    jobs = []
    for base, where in bases:
        run = GanRun.of(args.runs, str(base.get("genre") or "?"))
        if args.resume and run.config.exists():
            given = {**flags, **({"videos": base["videos"]} if base.get("videos") else {})}
            saved = load_run_config(run.config)
            if "videos" in given and Path(given["videos"]).resolve() == Path(saved.videos).resolve():
                given.pop("videos")
            given.pop("profile", None)  # a run keeps the settings its profile chose
            cfg = resume_config(saved, given, str(run.config))
            _media_of(cfg.videos, cfg.genre, run, str(run.config))
        else:
            if args.resume and not base.get("videos"):
                raise ValueError(f"no run to resume in {run.path}: start it with vj gan train VIDEOS --genre "
                                 f"{base.get('genre')} (runs there: {', '.join(_run_names(args.runs)) or 'none'})")
            if args.resume:
                log.info("%s: no run to resume in %s; starting it", base.get("genre"), run.path)
            files = _media_of(base.get("videos"), base.get("genre"), run, where)
            if base.get("videos"):  # the run records where its loops are, so a resume works from any folder
                base = {**base, "videos": str(Path(base["videos"]).expanduser().resolve())}
            cfg = with_clip_length(settings(layered(base, flags), where, data=library_size(files, run.name)))
        if not cfg.genre or not cfg.videos:
            raise ValueError(f"{where}: a genre needs both 'genre' and 'videos'")
        jobs.append((cfg, run))
    for device in {cfg.device for cfg, _ in jobs}:  # --device cuda on a laptop: one line, not one per genre
        pick_device(device)
    twice = sorted({cfg.genre for cfg, _ in jobs if sum(c.genre == cfg.genre for c, _ in jobs) > 1})
    if twice:  # the second would find the first's checkpoint, hours later
        raise ValueError(f"two folders of the queue make the genre {twice[0]!r}: rename one, or train it alone "
                         f"with --genre NAME")
    return jobs


def _genre_of(folder: Path) -> str:
    """The genre a folder names when --genre does not: its name, made a valid run name."""
    name = folder.resolve().name
    genre = name_from(name)
    if not genre:
        raise ValueError(f"{folder}: the folder's name makes no genre name: give one with --genre NAME "
                         f"(letters, digits, '_', '-' or '.')")
    if genre != name:
        log.info("%s: genre %r (from the folder's name)", folder, genre)
    return genre


def _media_of(videos, genre, run, where: str) -> list[Path]:
    """A genre's videos and stills; a folder that is missing or holds none is refused now, before any genre
    of the queue trains (a typo in a queue's last folder is not found after the others' hours). ``where``:
    the preset or run config that named the folder, said with it when it is not the folder itself."""
    from gan.data import training_files
    from vj.core.media import MediaError

    named = "" if not videos or Path(where) == Path(videos) else f"{where}: videos = {videos}: "
    try:
        files = training_files(videos, skip=(run.root,)) if videos else []
    except MediaError:
        if not named:
            raise
        advice = ("did the loops move? edit videos there" if Path(where) == run.config else
                  f"edit it there, or give your folder with it: vj gan train FOLDER --preset {where}")
        raise MediaError(f"{named}no such folder ({advice})") from None
    if videos and not files:
        raise MediaError(f"{named or f'{videos}: '}no videos or images found (genre {genre}); nothing was started")
    return files


def _run_names(runs: Path) -> list[str]:
    """The genres with a run under ``runs`` (``runs/gan/<genre>/config.toml``)."""
    return sorted(p.parent.name for p in (Path(runs) / GanRun.KIND).glob("*/config.toml"))


def resume_command(args, genre: str) -> str:
    runs = "" if Path(args.runs) == DEFAULT_RUNS else f" --runs {args.runs}"
    return f"vj gan train --genre {genre}{runs} --resume"


def cmd_train(args) -> int:
    from gan.train import close_dist, dist_info, train_queue

    jobs = _jobs(args)
    serving = args.monitor(args.runs, getattr(args, "web", None)) if args.monitor else contextlib.nullcontext()
    with serving:
        outcomes = train_queue(jobs, resume=args.resume, progress=False if args.no_progress else None)
    close_dist()  # under torchrun: not after an exception (the others may be inside a collective)
    if dist_info()[0] != 0:
        return 0 if all(o.status != "failed" for o in outcomes) else 1
    for (cfg, run), o in zip(jobs, outcomes):
        line = f"{o.genre}: {o.status}" + ("" if o.status == "failed" and not o.step else
                                           f" at epoch {o.epoch} (step {o.step})")
        if o.message:
            line += f": {o.message}"
        if o.status in ("interrupted", "deadline") or (o.status == "failed" and o.step and run.ckpt.exists()):
            line += f"; resume with: {resume_command(args, cfg.genre)}"
        elif o.status == "done":
            line += f"; samples in {run.samples}; clip with: vj gan clip {cfg.genre}" + (
                "" if Path(args.runs) == DEFAULT_RUNS else f" --runs {args.runs}")
        log.info(line)
    if any(o.status == "interrupted" for o in outcomes):
        return 130
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _runs_of(args, need_generator: bool) -> list[GanRun]:
    """The runs of the genres named, all checked before any clip is made (a typo in the last of five)."""
    genres = list(dict.fromkeys(args.genres))
    if args.out and len(genres) > 1:
        raise ValueError(f"--out names one file: give one genre (not {len(genres)}), or leave --out out "
                         f"(each genre's clips/ folder)")
    found = [GanRun.of(args.runs, g) for g in genres]
    for run in found:
        if not run.path.is_dir() or (need_generator and run.generator() is None):
            raise FileNotFoundError(f"{run.path}: no checkpoint (train first: vj gan train ... --genre "
                                    f"{run.name}; runs there: {', '.join(_run_names(args.runs)) or 'none'})")
    return found


def cmd_clip(args) -> int:
    from gan.clips import learning_clip

    for run in _runs_of(args, need_generator=False):
        out = args.out or run.clip("learning" if args.latent is None else f"learning_z{args.latent:02d}")
        n = learning_clip(run, out, fps=args.fps, latent=args.latent, height=args.height, blend=args.blend,
                          seconds=args.seconds, progress=False if args.no_progress else None)
        log.info("wrote %s (%d frames at %g fps)", out, n, args.fps)
    return 0


def cmd_walk(args) -> int:
    from gan.clips import walk_clip

    for run in _runs_of(args, need_generator=True):
        out = args.out or run.clip("walk")
        n = walk_clip(run, out, args.seconds, args.fps, args.height, args.keys, args.seed, args.device,
                      progress=False if args.no_progress else None)
        log.info("wrote %s (%d frames at %g fps, loops seamlessly)", out, n, args.fps)
    return 0


def cmd_score(args) -> int:
    from gan.quality import score_run

    run = GanRun.of(args.runs, args.genre)
    if run.generator() is None:
        raise FileNotFoundError(f"{run.path}: no checkpoint to score (train first: vj gan train ... --genre "
                                f"{args.genre})")
    result = score_run(run, args.samples)
    print(f"{args.genre}: KID {result['kid']} at epoch {result['epoch']} ({result['samples']} generated images "
          f"against {result['frames']} frames; sample spread {result['spread']:.2f}, the frames' "
          f"{result['real_spread']:.2f})")
    return 0


def cmd_export(args) -> int:
    from gan.model import export_generator

    run = GanRun.of(args.runs, args.genre)
    if not run.ckpt.exists():
        raise FileNotFoundError(f"{run.path}: no checkpoint to export (train first: vj gan train ... --genre "
                                f"{args.genre})")
    out = args.out or run.exported
    before, after, dtype = export_generator(run.ckpt, out, half=not args.fp32)
    log.info("wrote %s (%s, %.1f MB; the checkpoint is %.1f MB); use it as generator = \"%s\" in a scene", out,
             dtype, after / 1e6, before / 1e6, out)
    return 0
