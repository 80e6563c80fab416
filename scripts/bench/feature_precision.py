"""What a feature model's precision does to the mosaic: the same frames described by ONNX Runtime fp32 (the
reference: the features every earlier mosaic was built with), OpenVINO fp32, OpenVINO bf16 and ONNX Runtime
int8, then embedded by t-SNE (several seeds) and assigned to a grid, as ``vj mosaic build`` does.

Per precision: the features' cosine to the reference (mean, worst frame); each frame's 10 nearest frames in
feature space shared with the reference's; the grid's neighbour agreement (the share of adjacent cells whose
frames come from the same genre); the map's 10-NN preservation against the reference feature space.

With ``--posters DIR`` it also writes each precision's poster (seed 0) and all of them side by side, labelled,
to DIR/precisions.png.

    python scripts/bench/feature_precision.py [--fps 12] [--seeds 3] [--grid 24x12] [--posters DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common import header, procedural_videos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--grid", default="24x12")
    p.add_argument("--posters", type=Path, help="write the posters here (seed 0), and precisions.png")
    args = p.parse_args()
    header("feature precision and the mosaic")
    from mosaic.embed import embed, exact_knn, knn_preservation
    from mosaic.grid import assign, neighbour_agreement, parse_grid
    from mosaic.render import render_poster
    from vj.core.runs import save_image
    from vj.core.features import FeatureExtractor
    from vj.core.media import find_media, read_frames
    from vj.core.onnx import FeatureModel, native_bf16

    cols, rows = parse_grid(args.grid)
    with tempfile.TemporaryDirectory() as tmp:
        folders = procedural_videos(Path(tmp) / "v")
        frames, labels = [], []
        for g, (name, folder) in enumerate(folders.items()):
            for v in find_media([folder]):
                for f in read_frames(v, fps=args.fps, size=224):
                    frames.append(f)
                    labels.append(g)
        frames, labels = np.stack(frames), np.array(labels)
        print(f"   {len(frames)} frames of {len(folders)} genres ({', '.join(folders)}); this CPU "
              f"{'computes' if native_bf16() else 'does not compute'} bfloat16 natively")
        ex = FeatureExtractor("efficientnet_lite0")
        ex.save_onnx(Path(tmp) / "fp32.onnx")
        ex.save_onnx(Path(tmp) / "int8.onnx", frames[::max(1, len(frames) // 64)][:64])
        models = [FeatureModel(Path(tmp) / "fp32.onnx", runtime="onnx"), FeatureModel(Path(tmp) / "fp32.onnx"),
                  FeatureModel(Path(tmp) / "fp32.onnx", precision="bf16"), FeatureModel(Path(tmp) / "int8.onnx")]
        variants = {f"{m.runtime}{' (asked bf16)' if m.precision == 'bf16' else ''}": m(frames) for m in models}
        reference = variants[models[0].runtime]
        ref_nn, _ = exact_knn(reference, 10)
        posters = []
        for name, feats in variants.items():
            cos = (feats * reference).sum(1) / np.linalg.norm(feats, axis=1) / np.linalg.norm(reference, axis=1)
            nn, _ = exact_knn(feats, 10)
            shared = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nn, ref_nn)])
            agree, keep = [], []
            for seed in range(args.seeds):
                coords = embed(feats, seed=seed)
                grid = assign(coords, cols, rows, "optimal")
                agree.append(neighbour_agreement(grid, labels, cols, rows))
                if args.posters and seed == 0:
                    poster = render_poster(frames, grid, "triangle", cols, rows, 48)
                    args.posters.mkdir(parents=True, exist_ok=True)
                    save_image(args.posters / f"{name.split(' (')[0].replace(' ', '_')}.png", poster)
                    label = f"{name.split(' (')[0]}: agreement {agree[-1]:.3f}"
                    posters.append(cv2.putText(cv2.copyMakeBorder(poster, 40, 8, 8, 8, cv2.BORDER_CONSTANT),
                                               label, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2))
                keep.append(knn_preservation(reference, coords, sample=None, high_nn=ref_nn))
            print(f"   {name:28} cosine to fp32 mean {cos.mean():.5f} min {cos.min():.5f}; 10 nearest shared "
                  f"{shared:.3f}; {cols}x{rows} agreement {' / '.join(f'{a:.3f}' for a in agree)}; "
                  f"map 10-NN {' / '.join(f'{k:.3f}' for k in keep)}", flush=True)
        if posters:
            h = max(p.shape[0] for p in posters)
            pad = [cv2.copyMakeBorder(p, 0, h - p.shape[0], 0, 0, cv2.BORDER_CONSTANT) for p in posters]
            sheet = np.vstack([np.hstack(pad[i:i + 2]) for i in range(0, len(pad) - 1, 2)] +
                              ([np.hstack([pad[-1], np.zeros_like(pad[-1])])] if len(pad) % 2 else []))
            save_image(args.posters / "precisions.png", sheet)
            print(f"   posters: {args.posters}/precisions.png")


if __name__ == "__main__":
    main()
