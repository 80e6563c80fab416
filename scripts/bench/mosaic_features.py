"""Feature extraction images/s: ours (EfficientNet-Lite0, 224 px, batched, on ONNX Runtime when installed,
decoding overlapped with inference) vs the seed's (InceptionV3 fp32 eager at 299 px, one image at a time as in Keras' predict
loop of the post), on the same frames. Inception's timing does not depend on its weights, so it runs with
random weights here (no download).

    python scripts/bench/mosaic_features.py [--frames 256] [--seed-batch 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import header, procedural_videos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=192)
    p.add_argument("--seed-batch", type=int, default=1, help="the seed predicted one frame at a time")
    args = p.parse_args()
    header("mosaic features")
    import timm

    from vj.core.features import FeatureExtractor
    from vj.core.media import find_media, read_frames
    from vj.core.onnx import FeatureModel

    with tempfile.TemporaryDirectory() as tmp:
        videos = find_media(procedural_videos(Path(tmp)).values())

        def frames(size):
            n = 0
            while True:
                for v in videos:
                    for f in read_frames(v, fps=12, size=size):
                        yield f
                        n += 1
                        if n >= args.frames:
                            return

        ours = FeatureExtractor("efficientnet_lite0")  # batch 16: measured faster than 32 or 64 on 2 cores
        list(ours.stream(frames(224)))  # warm-up
        t0 = time.perf_counter()
        n_ours = sum(len(b) for b, _ in ours.stream(frames(224)))
        t_ours = time.perf_counter() - t0
        # --precision int8: the network quantised on 64 of the library's frames, as `vj mosaic build` does
        calibration = np.stack(list(frames(224))[::3][:64])
        ours.save_onnx(Path(tmp) / "int8.onnx", calibration)
        int8 = FeatureModel(Path(tmp) / "int8.onnx")
        list(int8.stream(frames(224)))
        t0 = time.perf_counter()
        n_int8 = sum(len(b) for b, _ in int8.stream(frames(224)))
        t_int8 = time.perf_counter() - t0

        incep = timm.create_model("inception_v3", pretrained=False, num_classes=0).eval()
        seed_frames = list(frames(299))
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(seed_frames), args.seed_batch):
                x = torch.from_numpy(np.stack(seed_frames[i:i + args.seed_batch])).permute(0, 3, 1, 2).float()
                incep((x / 127.5) - 1)
        t_seed = time.perf_counter() - t0 + 0.0
        # the seed also decoded before predicting: add its decode time
        t0 = time.perf_counter()
        list(frames(299))
        t_seed += time.perf_counter() - t0
    r_ours, r_seed = n_ours / t_ours, len(seed_frames) / t_seed
    print(f"   seed (InceptionV3 299px fp32 eager, batch {args.seed_batch}, decode then predict): {r_seed:.1f} images/s")
    print(f"   ours (EfficientNet-Lite0 224px on {ours.runtime}, batch 16, decode overlapped): {r_ours:.1f} images/s")
    print(f"   ratio: {r_ours / r_seed:.1f}x   (target >= 10)")
    r_int8 = n_int8 / t_int8
    print(f"   ours --precision int8 (static, calibrated on 64 library frames): {r_int8:.1f} images/s, "
          f"{r_int8 / r_seed:.1f}x the seed")
    print(f"   23,135 frames (the seed's library): ours {23135 / r_ours / 60:.1f} min, seed {23135 / r_seed / 3600:.1f} h")


if __name__ == "__main__":
    main()
