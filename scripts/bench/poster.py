"""Poster render (60x30 triangles, 128 px, the seed's reference case) vs the seed's method: for every cell,
PIL opens the extracted 1080p frame (JPEG), crops the centre square, resizes to 128, masks a triangle and
pastes it. Ours gathers every pixel from the tile atlas in one vectorised step. PNG encoding is timed apart.

    python scripts/bench/poster.py [--distinct 240] [--cols 60] [--rows 30]
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common import header


def seed_render(paths: list[Path], grid: np.ndarray, cols: int, rows: int, tile: int) -> Image.Image:
    canvas = Image.new("RGB", ((cols + 1) * tile // 2, rows * tile))
    up = Image.new("L", (tile, tile))
    ImageDraw.Draw(up).polygon([(tile / 2, 0), (0, tile), (tile, tile)], fill=255)
    down = up.transpose(Image.FLIP_TOP_BOTTOM)
    for cell, frame in enumerate(grid):
        r, c = divmod(cell, cols)
        im = Image.open(paths[frame]).convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((tile, tile))
        canvas.paste(im, (c * tile // 2, r * tile), up if (r + c) % 2 == 0 else down)
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--distinct", type=int, default=240, help="distinct 1080p frames on disk")
    p.add_argument("--cols", type=int, default=60)
    p.add_argument("--rows", type=int, default=30)
    p.add_argument("--tile", type=int, default=128)
    args = p.parse_args()
    header("poster render")
    from mosaic.render import render_poster
    from vj.procedural import GENRES

    cols, rows, tile = args.cols, args.rows, args.tile
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths, atlas = [], []
        draws = list(GENRES.values())
        for i in range(args.distinct):  # small procedural frames upscaled to 1080p and saved as JPEG
            small = draws[i % len(draws)](i * 0.37, 480, 270, seed=i % 3)
            big = Image.fromarray(small).resize((1920, 1080))
            paths.append(Path(tmp) / f"{i:05d}.jpg")
            big.save(paths[-1], quality=90)
            atlas.append(np.asarray(big.crop((420, 0, 1500, 1080)).resize((tile, tile))))
        atlas = np.stack(atlas)
        grid = rng.integers(0, args.distinct, cols * rows)
        t_seed = min(time_it(lambda: seed_render(paths, grid, cols, rows, tile)) for _ in range(1))
        render_poster(atlas, grid, "triangle", cols, rows, tile)  # builds the cached index map once
        times = [time_it(lambda: render_poster(atlas, grid, "triangle", cols, rows, tile)) for _ in range(5)]
        img = render_poster(atlas, grid, "triangle", cols, rows, tile)
        t0 = time.perf_counter()
        Image.fromarray(img).save(io.BytesIO(), format="PNG", compress_level=1)
        t_png = time.perf_counter() - t0
    t_ours = float(np.median(times))
    print(f"   {cols}x{rows} triangles of {tile}px -> {img.shape[1]}x{img.shape[0]}")
    print(f"   seed (PIL open/crop/resize/mask/paste per cell): {t_seed * 1000:.0f} ms")
    print(f"   ours (tile sheet + one cv2.remap): {t_ours * 1000:.0f} ms median of 5 (target < 150 ms); "
          f"PNG encoding apart: {t_png * 1000:.0f} ms")
    print(f"   ratio: {t_seed / t_ours:.1f}x   (target >= 30)")


def time_it(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
