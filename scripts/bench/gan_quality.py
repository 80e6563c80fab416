"""The pictures, measured: KID curves of CPU training runs (EfficientNet-Lite0 features, lower is better).

defaults (default): every genre (the four procedural ones of the demo and two of ffmpeg's lavfi sources,
mandelbrot and life) trained with NO tuning flags (the profile `auto` picks the CPU settings here) for
--minutes (4) at 64 px. Target: KID after training at most half its epoch-0 value, and samples neither grey
(pixel spread under half the frames') nor collapsed (feature spread under 0.35 of the frames'), per genre.
--baseline also trains one genre with --profile none and no weight average (the plain DCGAN defaults a new
user used to get: grey static).
--set KEY=VALUE (repeatable) tries a change to the profile on every genre, to compare before adopting it.

fastgan (--fastgan): FastGAN against DCGAN at 128 px on the same frames for the same wall time (--minutes,
15 in the issue). DCGAN trains with the `cpu` profile at 128 px; FastGAN with the `gpu` profile's learning
rate and batch (the paper's 2e-4, 8) at widths 16. Target: FastGAN's KID lower at equal time. Both curves are printed.

    python scripts/bench/gan_quality.py [--minutes 4] [--genres plasma,life] [--baseline]
    python scripts/bench/gan_quality.py --genres typography --set augment=translation,cutout
    python scripts/bench/gan_quality.py --fastgan --minutes 15 --genres particles --keep /tmp/fastgan-runs
"""
from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, header, procedural_videos

LAVFI = {"mandelbrot": "mandelbrot=size=256x144:rate=24", "life": "life=size=256x144:rate=24:mold=10:ratio=0.3"}


def lavfi_genre(out: Path, name: str, count: int = 3, seconds: float = 4.0) -> Path:
    from vj.core.media import ffmpeg_exe

    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        src = LAVFI[name] + (f":seed={i}" if name == "life" else f":start_scale={3.0 / (i + 1):g}")
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src,
                        "-t", str(seconds), "-pix_fmt", "yuv420p", str(out / f"{name}_{i:02d}.mp4")], check=True)
    return out


def genres(root: Path, names: list[str]) -> dict[str, Path]:
    proc = procedural_videos(root / "procedural")
    out = {}
    for name in names:
        out[name] = proc[name] if name in proc else lavfi_genre(root / "lavfi" / name, name)
    return out


def train(videos: Path, runs: Path, genre: str, minutes: float, *flags: str) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "vj", "gan", "train", str(videos), "--genre", genre, "--runs", str(runs),
                    "--hours", f"{minutes / 60:.6f}", "--no-progress", *flags], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def curve(run: Path) -> list[tuple[int, float, float]]:
    with open(run / "log.csv") as f:
        return [(int(r["epoch"]), float(r["kid"]), float(r["elapsed_s"] or 0)) for r in csv.DictReader(f) if r["kid"]]


def looks(run: Path) -> tuple[float, float]:
    """(pixel spread of the last sample grid's images, 0-255: grey static is low), the last measured feature
    spread of the samples (a collapsed generator's are close to each other)."""
    from PIL import Image

    from vj.core.runs import GanRun

    grid = np.asarray(Image.open(GanRun(run).sample_files()[-1]).convert("RGB"), np.float32)
    with open(run / "log.csv") as f:
        spreads = [float(r["spread"]) for r in csv.DictReader(f) if r["spread"]]
    return float(grid.std()), spreads[-1] if spreads else float("nan")


def defaults(args, tmp: Path) -> None:
    from gan.quality import Features, real_features, spread
    from gan.data import build_cache

    tried = [f for kv in args.set for f in ("--set", kv)]
    header(f"GAN quality with the default profile{' and ' + ', '.join(args.set) if args.set else ''}: "
           f"{args.minutes:g} min of CPU training at 64 px per genre")
    videos = genres(tmp, args.genres)
    print(f"   {'genre':12} {'epochs':>6} {'KID epoch 0':>12} {'KID after':>10} {'ratio':>6} {'pixel spread (frames)':>22} "
          f"{'feature spread (frames)':>24}  met")
    met_all = True
    for name, folder in videos.items():
        runs = tmp / "runs"
        train(folder, runs, name, args.minutes, *tried)
        run = runs / "gan" / name
        points = curve(run)
        first, last = points[0][1], points[-1][1]
        pixel, feat = looks(run)
        cache = build_cache(folder, run / "frames", 64, 6.0, progress=False)
        real = spread(real_features(cache.frames, cache.active))
        # grey static is flat next to the genre's own frames (a dark genre's are flat too: particles' spread ~20)
        real_pixel = float(np.asarray(cache.frames)[cache.active].std())
        met = last <= 0.5 * first and pixel > 0.5 * real_pixel and feat > 0.35 * real
        met_all &= met
        print(f"   {name:12} {points[-1][0]:>6} {first:>12.4f} {last:>10.4f} {last / first:>6.2f} {pixel:>14.1f} "
              f"({real_pixel:>5.1f}) {feat:>17.2f} ({real:.2f})  {'yes' if met else 'NO'}")
        print(f"   {'':12} curve (epoch: KID): " + ", ".join(f"{e}: {k:.3f}" for e, k, _ in points))
    if args.baseline:
        name = args.genres[0]
        train(videos[name], tmp / "base", name, args.minutes, "--profile", "none", "--set", "ema=0")
        points = curve(tmp / "base" / "gan" / name)
        pixel, feat = looks(tmp / "base" / "gan" / name)
        print(f"   baseline --profile none ({name}, the plain defaults): KID {points[0][1]:.4f} -> {points[-1][1]:.4f} "
              f"({points[-1][1] / points[0][1]:.2f}), pixel spread {pixel:.1f}")
    print(f"   target: KID after <= 0.5 x epoch 0, not grey, not collapsed: {'met' if met_all else 'NOT met'} for "
          f"every genre")


def fastgan(args, tmp: Path) -> None:
    header(f"FastGAN vs DCGAN at 128 px, {args.minutes:g} min of CPU training each on the same frames")
    for name, folder in genres(tmp, args.genres).items():
        res = {}
        for arch, flags in (("dcgan", ["--arch", "dcgan", "--size", "128"]),
                            ("fastgan", ["--arch", "fastgan", "--size", "128", "--set", "ngf=16", "--set", "ndf=16",
                                         "--set", "nz=128", "--batch", "8", "--set", "lr=2e-4"])):
            runs = tmp / arch
            train(folder, runs, name, args.minutes, "--set", "kid_minutes=1", *flags)
            res[arch] = curve(runs / "gan" / name)
            print(f"   {name} {arch:8}: " + ", ".join(f"{t / 60:.1f} min: {k:.3f}" for _, k, t in res[arch]))
        d, f = res["dcgan"][-1][1], res["fastgan"][-1][1]
        print(f"   {name}: final KID DCGAN {d:.4f}, FastGAN {f:.4f}: FastGAN {'lower (met)' if f < d else 'NOT lower'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--genres", default="plasma,tunnel,particles,typography,mandelbrot,life")
    p.add_argument("--baseline", action="store_true", help="also one genre with --profile none")
    p.add_argument("--fastgan", action="store_true", help="FastGAN vs DCGAN at 128 px instead")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="defaults mode: a change to the profile to try (repeatable)")
    p.add_argument("--keep", type=Path, metavar="DIR", help="train under DIR and keep the runs (samples, logs)")
    args = p.parse_args()
    args.genres = args.genres.split(",")
    # a terminated bench stops the run it is training too (subprocess.run kills its child on the exit), not
    # leaving it to share the 2 cores with the next measurement
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:  # the runs stay, to look at their samples and loss plots
        if args.keep.exists() and any(args.keep.iterdir()):
            p.error(f"--keep {args.keep}: not empty (its runs would be resumed, not measured); name a new folder")
        args.keep.mkdir(parents=True, exist_ok=True)
        (fastgan if args.fastgan else defaults)(args, args.keep)
        return
    with tempfile.TemporaryDirectory() as tmp:
        (fastgan if args.fastgan else defaults)(args, Path(tmp))


if __name__ == "__main__":
    main()
