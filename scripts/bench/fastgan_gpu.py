"""FastGAN on one GPU: training images a second at each size, and the quality curve of a short run.

Speed: the trainer's own step (cache on the GPU as uint8, channels_last, bf16 autocast, DiffAugment, the
self-supervised discriminator's reconstructions) at --sizes with --batch, after warm-up steps: replayed from
CUDA graphs (one per decoder quarter) and, as the baseline in the same run, eager.
Quality: a --minutes run at 256 px on the procedural genres' frames with the KID curve measured every
--kid-epochs epochs (the issue asks for 30 minutes; a session's device time allows a few).

    python scripts/bench/fastgan_gpu.py [--sizes 256,512] [--batch 16] [--steps 40] [--minutes 3]
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
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
    p.add_argument("--steps", type=int, default=40, help="timed steps per size (after 12 warm-up steps), graphed and eager")
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
        for size, graphed in [(int(s), g) for s in args.sizes.split(",") if s for g in (True, False)]:
            cfg = replace(base, size=size, genre=f"s{size}{'g' if graphed else 'e'}", cuda_graph=graphed)
            cache = build_cache(videos, tmp / f"c{size}", size, cfg.fps, progress=False)
            torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
            trainer = Trainer(tmp / "runs" / cfg.genre, cfg)
            store = trainer.upload(cache.frames) if trainer.device.type == "cuda" else cache.frames
            n = len(cache.active)
            sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

            def steps(k):
                for _ in range(k):
                    idx = torch.as_tensor(cache.active[torch.randint(0, n, (cfg.batch,)).numpy()],
                                          device=trainer.device)
                    trainer.train_batch(store, idx)
                sync()

            steps(12)  # FastGAN captures one graph per decoder quarter as it meets them
            t0 = time.perf_counter()
            steps(args.steps)
            dt = time.perf_counter() - t0
            mem = torch.cuda.max_memory_allocated() / 2**30 if trainer.device.type == "cuda" else 0
            print(f"   {size} px, batch {cfg.batch}, {'CUDA graphs' if trainer.graphed else 'eager'}: {args.steps * cfg.batch / dt:.0f} images/s "
                  f"({dt / args.steps * 1000:.1f} ms a step; {n} frames; peak GPU memory {mem:.1f} GiB)")
            del trainer, store
        if args.minutes > 0:
            # the run lives under $OUT on the device machine, so its log.csv (a row an epoch, KID included)
            # comes back even when the call runs out of time; its epoch lines stream to stderr
            logging.basicConfig(level=logging.INFO, format="   %(message)s")
            run = Path(os.environ["OUT"]) / "fastgan256" if os.environ.get("OUT") else tmp / "runs" / "q"
            cfg = replace(base, size=256, genre="q", epochs=0, hours=args.minutes / 60, kid_epochs=args.kid_epochs)
            out = train_genre(cfg, run, progress=False)
            rows = []
            if (run / "log.csv").exists():  # none when no epoch ended before the deadline
                with open(run / "log.csv") as f:
                    rows = [r for r in csv.DictReader(f) if r["kid"]]
            curve = ", ".join(f"epoch {r['epoch']} ({float(r['elapsed_s'] or 0) / 60:.1f} min): {float(r['kid']):.4f}"
                              for r in rows)
            print(f"   quality run, 256 px, {args.minutes:g} min: {out.status} at epoch {out.epoch} (step {out.step}); "
                  f"KID {curve or 'not measured (no epoch ended)'}")


if __name__ == "__main__":
    main()
