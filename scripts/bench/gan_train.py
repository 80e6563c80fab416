"""Training throughput: our trainer vs the usual pipeline, on the same frames.

Baseline (the usual DCGAN recipe): frames as PNG files, torchvision ImageFolder + DataLoader, fp32, NCHW.
Ours: the memory-mapped uint8 cache, channels_last, (on CUDA) bf16, the whole cache on the GPU and the
step captured as one CUDA graph (``--set cuda_graph=false`` in ``vj gan train`` turns that off).
Prints images/s of both, the ratio, and peak memory; with --frames N x2 shows that our memory does not
grow with the number of cached frames.

With --fit-epochs N (default: 6 on a GPU, 0 on the CPU) it also runs the real training loop (samples,
checkpoints, log) for N epochs of 5,000 frames and extrapolates the seed's 1000-epoch workload from the
epochs after the first (the first pays for cuDNN autotuning and compilation).

    python scripts/bench/gan_train.py [--size 64] [--batch 64] [--steps 20] [--device auto] [--compile]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import header, peak_rss_mb, procedural_videos, rss_mb


def baseline_loader(folder: Path, size: int, batch: int):
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = datasets.ImageFolder(str(folder), tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, drop_last=True,
                                       persistent_workers=True)


def run_baseline(trainer_cls, cfg, run_dir, folder, steps) -> float:
    """The same DCGAN step on batches from PNG files, fp32 NCHW (no channels_last)."""
    tr = trainer_cls(run_dir, replace(cfg, augment=""), progress=False)
    tr.G.to(memory_format=torch.contiguous_format)
    tr.D.to(memory_format=torch.contiguous_format)
    loader = baseline_loader(folder, cfg.size, cfg.batch)
    it = iter(loader)
    done, t0 = 0, None
    while done < steps + 2:
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if done == 2:
            t0 = time.perf_counter()  # two warm-up steps
        tr.train_step(x.to(tr.device).contiguous())
        done += 1
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.batch / (time.perf_counter() - t0)


def run_ours(trainer_cls, cfg, run_dir, frames, steps) -> float:
    tr = trainer_cls(run_dir, cfg, progress=False)
    store = tr.upload(frames) if tr.device.type == "cuda" else frames
    rng = np.random.default_rng(0)
    # batch indices made up front and (on a GPU) uploaded once, as Trainer.fit does per epoch
    idxs = np.sort(np.stack([rng.choice(len(frames), cfg.batch, replace=False) for _ in range(steps + 2)]), axis=1)
    if tr.device.type == "cuda":
        idxs = torch.from_numpy(idxs).to(tr.device)
    t0 = None
    for i in range(steps + 2):
        if i == 2:
            if tr.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        tr.train_batch(store, idxs[i])
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile our networks")
    p.add_argument("--no-graph", action="store_true", help="ours without the CUDA graph")
    p.add_argument("--fps", type=float, default=12)
    p.add_argument("--fit-epochs", type=int, default=None,
                   help="epochs of the full loop on 5,000 frames for the seed's workload (default 6 on a GPU)")
    args = p.parse_args()
    header("GAN training throughput")
    from PIL import Image

    from gan.config import TrainConfig
    from gan.data import build_cache
    from gan.train import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = procedural_videos(tmp / "videos")
        cfg = TrainConfig(genre="bench", size=args.size, batch=args.batch, device=args.device, compile=args.compile,
                          cuda_graph=not args.no_graph, kid_minutes=0)
        caches = [build_cache(folder, tmp / "cache" / g, args.size, args.fps, progress=False)
                  for g, folder in videos.items()]
        frames = np.concatenate([np.asarray(c.frames) for c in caches])
        png = tmp / "png" / "all"
        png.mkdir(parents=True)
        for i, f in enumerate(frames):
            Image.fromarray(f).save(png / f"{i:06d}.png")
        print(f"   {len(frames)} frames of {args.size}px, batch {args.batch}, {args.steps} timed steps")
        rss0 = rss_mb()
        ours = run_ours(Trainer, cfg, tmp / "ours", frames, args.steps)
        rss_ours = rss_mb() - rss0
        base = run_baseline(Trainer, cfg, tmp / "base", png.parent, args.steps)
        print(f"   baseline (PNG + ImageFolder + DataLoader, fp32 NCHW): {base:.1f} images/s")
        how = ", compiled" if args.compile else ", CUDA graph" if torch.cuda.is_available() and not args.no_graph else ""
        print(f"   ours (uint8 memmap cache, channels_last{how}): {ours:.1f} images/s")
        print(f"   ratio ours/baseline: {ours / base:.2f}x   (CPU target >= 1.15, GPU target >= 3)")
        # memory does not grow with the cache: the memmap is paged in on demand
        big = np.lib.format.open_memmap(tmp / "big.npy", "w+", np.uint8, (len(frames) * 8, args.size, args.size, 3))
        for k in range(8):
            big[k * len(frames):(k + 1) * len(frames)] = frames
        big.flush()
        big = np.load(tmp / "big.npy", mmap_mode="r")
        rss1 = rss_mb()
        run_ours(Trainer, cfg, tmp / "ours8", big, args.steps)
        print(f"   memory for ours: +{rss_ours:.0f} MB with {len(frames)} frames, +{rss_mb() - rss1:.0f} MB with "
              f"{len(big)} frames (memory-mapped; peak RSS {peak_rss_mb():.0f} MB)")
        fit_epochs = args.fit_epochs if args.fit_epochs is not None else (6 if torch.cuda.is_available() else 0)
        if fit_epochs >= 3:
            fit_cfg = replace(cfg, epochs=fit_epochs, genre="fit")
            per_epoch, per_ckpt = fit_seconds_per_epoch(Trainer, fit_cfg, tmp / "fit", frames)
            print(f"   full loop (a sample grid per epoch, log): {per_epoch:.3f} s per 5,000-frame epoch = "
                  f"{5000 / per_epoch:.0f} images/s; a checkpoint {per_ckpt:.2f} s")
            total = 1000 * per_epoch
            total += per_ckpt * (1 + total // (fit_cfg.ckpt_minutes * 60))  # every ckpt_minutes, and the last
            print(f"   seed's workload (1000 epochs x 5000 frames at {args.size}px, checkpoints every "
                  f"{fit_cfg.ckpt_minutes:g} min): {total / 60:.1f} min "
                  f"(the seed: 2-3 days on a K40; target under 5 min on one H100 at 96px)")


def fit_seconds_per_epoch(trainer_cls, cfg, run_dir, frames) -> tuple[float, float]:
    """Seconds per epoch of Trainer.fit on 5,000 frames (from log.csv; the first epoch, which pays for
    autotuning, and the last, which writes the final checkpoint, left out), and seconds per checkpoint."""
    import csv

    seed_frames = np.resize(frames, (5000, *frames.shape[1:]))  # the seed's epoch: 5,000 frames
    tr = trainer_cls(run_dir, cfg, progress=False)
    tr.fit(seed_frames, np.arange(len(seed_frames)))
    with open(run_dir / "log.csv") as f:
        elapsed = [float(r["elapsed_s"]) for r in csv.DictReader(f)]
    t0 = time.perf_counter()
    tr.save()
    return (elapsed[-2] - elapsed[0]) / (len(elapsed) - 2), time.perf_counter() - t0


if __name__ == "__main__":
    main()
