"""The live generator layer: how many images a second a genre's generator makes, on the CPU and the GPU.

Baseline (named, same run): batch-statistics rendering, the way DCGAN training samples are made and the
way the layer first ran: the run's 64-latent reference batch plus the new latent through train-mode
BatchNorm, for every image. Ours: the reference batch's BatchNorm statistics frozen once
(``gan.walk.BatchStatsRenderer``), one image per forward; on a GPU also in batches (throughput for
several generator layers or a wall of latents). Then the whole layer at 1920x1080: ``GeneratorSource``
making a new image for every 60 fps frame (``rate`` 60), blend and cubic upscale included; and on the CPU
again at the layer's default ``rate`` 20, where the network runs on a worker 20 times a second and the frames
between are blends (the frame loop's cost, and the worker's share of a core).

Untrained weights: speed does not depend on what a generator learned.

    python scripts/bench/generator.py [--sizes 64,96,128] [--seconds 3] [--device auto]
    python scripts/bench/generator.py --arch fastgan --sizes 256 [--ngf 64]
    python scripts/bench/generator.py --sizes 64 --ngf 24 --upsample resize --g-norm modulated  # the cpu profile's
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import header, stats_ms


def per_second(fn, seconds: float, sync) -> tuple[float, list[float]]:
    """Calls of ``fn`` per second over ``seconds`` (after 5 warm-up calls), and each call's time."""
    for _ in range(5):
        fn()
    sync()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return len(times) / sum(times), times


def main() -> None:
    from gan.config import G_NORMS, PROFILES, UPSAMPLES, TrainConfig  # torch-free: --help stays quick

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64,96,128")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per line")
    p.add_argument("--device", default="auto", help="auto: the CPU, then cuda where there is one")
    p.add_argument("--arch", default="dcgan", help="dcgan (64, 96, 128) or fastgan (128-1024)")
    p.add_argument("--ngf", type=int, help="generator width (default: the arch's default)")
    p.add_argument("--upsample", default="deconv", choices=UPSAMPLES,
                   help="DCGAN's doubling: deconv (the seed's), resize (the cpu profile's) or bilinear")
    p.add_argument("--g-norm", default="batch", choices=G_NORMS,
                   help="DCGAN's generator BatchNorm: batch (the seed's) or modulated (the cpu profile's)")
    args = p.parse_args()
    header("live generator")
    from gan.fastgan import bake
    from gan.model import build_networks
    from gan.walk import BatchStatsRenderer, LatentWalk, to_uint8

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        if device == "cpu":
            torch.set_num_threads(1)  # as the live layer runs: one thread beside the compositor
        for size in map(int, args.sizes.split(",")):
            extra = {"nz": PROFILES["gpu"]["nz"]} if args.arch == "fastgan" else {}
            cfg = TrainConfig(arch=args.arch, size=size, ngf=args.ngf or TrainConfig.ngf, upsample=args.upsample,
                              g_norm=args.g_norm if args.arch == "dcgan" else "batch", **extra)
            torch.manual_seed(0)
            g, _ = build_networks(cfg)
            state = {k: v.clone() for k, v in g.state_dict().items()}  # as a checkpoint holds it
            if args.arch == "fastgan":
                bake(g)
            g = g.to(device).eval()
            reference = torch.randn(64, cfg.nz)
            walk = LatentWalk(cfg.nz)
            t = iter(np.arange(0, 1e6, 1 / 60))
            train_mode = BatchStatsRenderer(g, size=0)

            def baseline():
                z = torch.cat([reference, walk(next(t)).unsqueeze(0)])
                return to_uint8(train_mode(z)[-1:])

            frozen = BatchStatsRenderer(g, reference)

            def ours():
                return to_uint8(frozen(walk(next(t)).unsqueeze(0)))

            base_ips, _ = per_second(baseline, args.seconds, sync)
            ours_ips, times = per_second(ours, args.seconds, sync)
            print(f"   {device} {args.arch} {size}px: baseline (reference batch of 64 + 1, train-mode BN) {base_ips:.1f} images/s; "
                  f"ours (frozen BN, 1 image) {ours_ips:.1f} images/s ({stats_ms(times)}); ratio {ours_ips / base_ips:.1f}x")
            if device == "cuda":
                for batch in (16, 64):
                    zs = torch.randn(batch, cfg.nz, device=device)
                    ips, _ = per_second(lambda: to_uint8(frozen(zs)), args.seconds, sync)
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        ips16, _ = per_second(lambda: to_uint8(frozen(zs)), args.seconds, sync)
                    print(f"      batches of {batch}: {ips * batch:.0f} images/s fp32, {ips16 * batch:.0f} images/s bf16")
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = Path(tmp) / "ckpt.pt"
                torch.save({"G": state, "cfg": cfg.to_dict(), "fixed_noise": reference}, ckpt)
                for rate in (60, 20) if device == "cpu" else (60,):
                    layer_line(ckpt, device, rate, args.seconds, sync)


def layer_line(ckpt: Path, device: str, rate: int, seconds: float, sync) -> None:
    """The generator layer at 1920x1080 for ``seconds`` of 60 fps frames at ``rate`` images a second:
    offline (``exact``) at 60, where every frame renders its image on the frame loop; live at 20, the
    network on the layer's worker and each frame a blend and an upscale, paced at 60 fps as the show is."""
    from vj.effects import FrameContext
    from vj.mix import mix, mode_code
    from vj.sources import GeneratorSource

    live = rate < 60
    src = GeneratorSource((1920, 1080), ckpt, exact=not live, device=device)
    params = {**GeneratorSource.defaults(), "rate": rate}
    out = np.zeros((1080, 1920, 3), np.uint8)
    t0, frame_no = time.perf_counter(), iter(range(10**9))
    cpu0 = time.process_time()

    def layer_frame():  # the source's frame, then the engine's mix finishes its upscale
        i = next(frame_no)
        t = time.perf_counter() - t0 if live else i / 60
        mix(out, src.frame(FrameContext(t=t, index=i), params), mode_code("lighten"), 0.6)

    if live:  # paced like the show: 60 frames a second of wall time, the worker rendering beside them
        times, frames = [], 0
        end = time.perf_counter() + seconds + 1.0
        while time.perf_counter() < end:
            due = t0 + frames / 60
            time.sleep(max(0.0, due - time.perf_counter()))
            a = time.perf_counter()
            layer_frame()
            if a - t0 > 1.0:  # the first second fills the pair of images
                times.append(time.perf_counter() - a)
            frames += 1
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - t0)
        per_image = src._render_s
        src.close()
        print(f"      the layer at 1920x1080, live, rate {rate}: {stats_ms(times)} per frame on the frame loop; the "
              f"worker {per_image * 1000:.0f} ms an image ({min(rate, 1 / per_image):.1f} images/s, each blended over "
              f"{max(1 / rate, per_image) * 1000:.0f} ms); the process used {cpu:.2f} cores at 60 fps")
        return
    fps, times = per_second(layer_frame, seconds, sync)
    src.close()
    print(f"      the layer at 1920x1080, a new image every frame (rate {rate}, offline): {stats_ms(times)} per "
          f"frame ({fps:.0f} frames/s)")


if __name__ == "__main__":
    main()
