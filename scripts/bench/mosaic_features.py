"""Feature extraction images/s: ours (EfficientNet-Lite0 at 224 px in batches of 16, as `vj mosaic build` runs
it: the saved ONNX model on OpenVINO, decoding overlapped with inference) in each precision, and the same model
on ONNX Runtime (the build before), vs the seed's (InceptionV3 fp32 eager at 299 px, one image at a time as in
Keras' predict loop of the post), on the same frames. Inception's timing does not depend on its weights, so it
runs with random weights here (no download). What the precisions do to the maps: feature_precision.py.

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
    from mosaic.pipeline import float_precision
    from vj.core.onnx import FeatureModel, native_bf16

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

        # what `vj mosaic build` runs: the network saved as ONNX, run by feature_session (OpenVINO when
        # installed); each precision once to warm up, then timed over the same decoded stream
        ex = FeatureExtractor("efficientnet_lite0")  # batch 16: measured faster than 32 or 64 on 2 cores
        ex.save_onnx(Path(tmp) / "fp32.onnx")
        calibration = np.stack(list(frames(224))[::3][:64])  # --precision int8: 64 of the library's frames
        ex.save_onnx(Path(tmp) / "int8.onnx", calibration)
        models = {"fp32": FeatureModel(Path(tmp) / "fp32.onnx"),
                  "onnx fp32": FeatureModel(Path(tmp) / "fp32.onnx", runtime="onnx")}  # the build before OpenVINO
        if native_bf16():
            models["bf16"] = FeatureModel(Path(tmp) / "fp32.onnx", precision="bf16")
        models["int8"] = FeatureModel(Path(tmp) / "int8.onnx")
        rates = {}
        for name, model in models.items():
            list(model.stream(frames(224)))  # warm-up
            t0 = time.perf_counter()
            n = sum(len(b) for b, _ in model.stream(frames(224)))
            rates[name] = n / (time.perf_counter() - t0)

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
    r_seed = len(seed_frames) / t_seed
    print(f"   seed (InceptionV3 299px fp32 eager, batch {args.seed_batch}, decode then predict): {r_seed:.1f} images/s")
    for name, model in models.items():
        print(f"   ours {name:9} (EfficientNet-Lite0 224px on {model.runtime}, batch 16, decode overlapped): "
              f"{rates[name]:.1f} images/s, {rates[name] / r_seed:.1f}x the seed")
    default = float_precision()  # what --precision auto picks here
    print(f"   ratio, the default (auto: {default} here): {rates[default] / r_seed:.1f}x; fp32 {rates['fp32'] / r_seed:.1f}x"
          f"   (target >= 10)")
    print(f"   23,135 frames (the seed's library): ours {23135 / rates[default] / 60:.1f} min, seed "
          f"{23135 / r_seed / 3600:.1f} h")


if __name__ == "__main__":
    main()
