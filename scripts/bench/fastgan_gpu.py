"""FastGAN on one GPU: training images a second at each size, and the quality curve of a short run.

Speed: the trainer's own step (cache on the GPU as uint8, channels_last, bf16 autocast, DiffAugment, the
self-supervised discriminator's reconstructions) at --sizes with --batch, after warm-up steps.
Quality: a --minutes run at 256 px on the procedural genres' frames with the KID curve measured every
--kid-epochs epochs (the issue asks for 30 minutes; a session's device time allows a few).

    python scripts/bench/fastgan_gpu.py [--sizes 256,512] [--batch 16] [--steps 40] [--minutes 3]
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import header, procedural_videos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=40, help="timed steps per size (after 8 warm-up steps)")
    p.add_argument("--minutes", type=float, default=3.0, help="the quality run's length (0: none)")
    p.add_argument("--kid-epochs", type=int, default=10)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    header("FastGAN training on the GPU")
    from gan.config import settings
    from gan.data import build_cache
    from gan.train import Trainer, train_genre

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = procedural_videos(tmp / "v")
        videos = tmp / "v"
        base = settings({"genre": "all", "videos": str(videos), "profile": "gpu", "device": args.device,
                         "batch": args.batch, "kid_minutes": 0, "kid_epochs": 0, "fps": 12.0})
        for size in map(int, args.sizes.split(",")):
            cfg = replace(base, size=size, genre=f"s{size}")
            cache = build_cache(videos, tmp / f"c{size}", size, cfg.fps, progress=False)
            trainer = Trainer(tmp / "runs" / f"s{size}", cfg)
            store = trainer.upload(cache.frames) if trainer.device.type == "cuda" else cache.frames
            n = len(cache.active)
            sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

            def steps(k):
                for _ in range(k):
                    idx = torch.as_tensor(cache.active[torch.randint(0, n, (cfg.batch,)).numpy()],
                                          device=trainer.device)
                    trainer.train_batch(store, idx)
                sync()

            steps(8)
            t0 = time.perf_counter()
            steps(args.steps)
            dt = time.perf_counter() - t0
            mem = torch.cuda.max_memory_allocated() / 2**30 if trainer.device.type == "cuda" else 0
            print(f"   {size} px, batch {cfg.batch}: {args.steps * cfg.batch / dt:.0f} images/s "
                  f"({dt / args.steps * 1000:.1f} ms a step; {n} frames; peak GPU memory {mem:.1f} GiB)")
            del trainer, store
        if args.minutes > 0:
            cfg = replace(base, size=256, genre="q", epochs=0, hours=args.minutes / 60, kid_epochs=args.kid_epochs)
            out = train_genre(cfg, tmp / "runs" / "q", progress=False)
            with open(tmp / "runs" / "q" / "log.csv") as f:
                rows = [r for r in csv.DictReader(f) if r["kid"]]
            curve = ", ".join(f"epoch {r['epoch']} ({float(r['elapsed_s'] or 0) / 60:.1f} min): {float(r['kid']):.4f}"
                              for r in rows)
            print(f"   quality run, 256 px, {args.minutes:g} min: {out.status} at epoch {out.epoch} (step {out.step}); "
                  f"KID {curve}")
            for name in ("epoch_00000.png", sorted(p.name for p in (tmp / "runs" / "q" / "samples").glob("epoch_*.png"))[-1]):
                import shutil
                import os

                if os.environ.get("OUT"):
                    shutil.copy(tmp / "runs" / "q" / "samples" / name, Path(os.environ["OUT"]) / f"fastgan256_{name}")


if __name__ == "__main__":
    main()
