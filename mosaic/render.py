"""Rendering from the tile atlas, vectorised: posters (triangle / square / hex) and t-SNE plots.

A layout is turned once into an index map: for every output pixel, which pixel of which cell's tile it
shows. A poster is then the cells' tiles laid out as one sheet and a single nearest-neighbour
``cv2.remap`` through that map (SIMD, multi-threaded), with no per-tile Python work; sheets too large for
OpenCV's 16-bit maps fall back to one numpy gather of 32-bit RGBX words. Triangles follow the seed: each row alternates up and down triangles of a ``tile`` x ``tile``
box, neighbours overlapping by half a tile, so a row of ``cols`` cells is ``(cols + 1) * tile / 2`` wide.
Every pixel belongs to exactly one cell (edge pixels to the nearest edge cell): no gaps, no seams.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from mosaic.pipeline import load_built
from vj.core.runs import save_image


def canvas_size(layout: str, cols: int, rows: int, tile: int) -> tuple[int, int]:
    """(width, height) of a full poster."""
    if layout == "triangle":
        return (cols + 1) * tile // 2, rows * tile
    if layout == "hex":
        return cols * tile + tile // 2, int(round((rows * 0.75 + 0.25) * tile * 2 / np.sqrt(3)))
    return cols * tile, rows * tile


@lru_cache(maxsize=6)
def layout_maps(layout: str, cols: int, rows: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell, local) int32 maps of the poster's shape: the cell index and ``v * tile + u`` in its tile."""
    w, h = canvas_size(layout, cols, rows, tile)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x += 0.5
    y += 0.5
    t = float(tile)
    if layout == "square":
        c = np.minimum(x // t, cols - 1)
        r = np.minimum(y // t, rows - 1)
        u, v = x - c * t, y - r * t
    elif layout == "triangle":
        r = np.minimum(y // t, rows - 1)
        fy = (y - r * t) / t                      # 0 at the row's top, 1 at its bottom
        q = np.floor(x / (t / 2))                 # half-column: the boundary between cells q-1 and q
        up = ((r + q) % 2) == 0                   # cell (r, c) points up when r + c is even
        left_edge = q * t / 2 + np.where(up, (t / 2) * (1 - fy), (t / 2) * fy)
        c = np.clip(np.where(x >= left_edge, q, q - 1), 0, cols - 1)
        u, v = x - c * t / 2, y - r * t
    elif layout == "hex":
        hh = t * 2 / np.sqrt(3)                   # pointy-top hexagon height
        step = 0.75 * hh
        best = np.full(x.shape, np.inf, np.float32)
        c = np.zeros(x.shape, np.float32)
        r = np.zeros(x.shape, np.float32)
        r0 = np.floor((y - hh / 2) / step)
        for dr in (0, 1, 2):
            rr = np.clip(r0 - 1 + dr, 0, rows - 1)
            cc = np.clip(np.round(x / t - 0.5 - 0.5 * (rr % 2)), 0, cols - 1)
            cx, cy = (cc + 0.5 + 0.5 * (rr % 2)) * t, rr * step + hh / 2
            d = (x - cx) ** 2 + (y - cy) ** 2
            better = d < best
            best, c, r = np.where(better, d, best), np.where(better, cc, c), np.where(better, rr, r)
        u = x - ((c + 0.5 * (r % 2)) * t)
        v = y - (r * step + hh / 2 - t / 2)
    else:
        raise ValueError(f"layout {layout!r} is not one of triangle, square, hex")
    u = np.clip(u, 0, t - 1).astype(np.int32)
    v = np.clip(v, 0, t - 1).astype(np.int32)
    cell = (r * cols + c).astype(np.int32)
    return cell, v * tile + u


@lru_cache(maxsize=6)
def _flat_index(layout: str, cols: int, rows: int, tile: int) -> np.ndarray:
    cell, local = layout_maps(layout, cols, rows, tile)
    return cell * (tile * tile) + local


def cell_tiles(atlas: np.ndarray, grid: np.ndarray, tile: int) -> np.ndarray:
    """(cells, tile, tile, 3) uint8: each cell's frame at the poster's tile size."""
    tiles = atlas[grid]
    if tiles.shape[1] != tile:
        interp = cv2.INTER_AREA if tiles.shape[1] > tile else cv2.INTER_CUBIC
        tiles = np.stack([cv2.resize(t, (tile, tile), interpolation=interp) for t in tiles])
    return tiles


def to_rgbx(tiles: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint32 words (RGBX), so one gather moves a whole pixel."""
    rgbx = np.empty(tiles.shape[:-1] + (4,), np.uint8)
    rgbx[..., :3] = tiles
    rgbx[..., 3] = 255
    return rgbx.view(np.uint32)[..., 0]


def render_tiles(tiles_rgbx: np.ndarray, layout: str, cols: int, rows: int, tile: int) -> np.ndarray:
    """Poster from per-cell RGBX tiles (cells, tile, tile) uint32 -> (H, W, 3) uint8."""
    flat = _flat_index(layout, cols, rows, tile)
    words = np.take(tiles_rgbx.reshape(-1), flat)
    return words.view(np.uint8).reshape(flat.shape + (4,))[..., :3]


@lru_cache(maxsize=6)
def _sheet_map(layout: str, cols: int, rows: int, tile: int) -> np.ndarray:
    """(H, W, 2) int16 remap coordinates into the tile sheet (cell (r, c) at x = c * tile, y = r * tile)."""
    cell, local = layout_maps(layout, cols, rows, tile)
    x = (cell % cols) * tile + local % tile
    y = (cell // cols) * tile + local // tile
    return np.dstack([x.astype(np.int16), y.astype(np.int16)])


def render_poster(atlas: np.ndarray, grid: np.ndarray, layout: str, cols: int, rows: int, tile: int) -> np.ndarray:
    tiles = cell_tiles(atlas, grid, tile)                    # (cells, tile, tile, 3)
    w, h = canvas_size(layout, cols, rows, tile)
    if max(cols * tile, rows * tile, w, h) >= 32767:      # beyond cv2.remap's 16-bit coordinates
        return np.ascontiguousarray(render_tiles(to_rgbx(tiles), layout, cols, rows, tile))
    sheet = tiles.reshape(rows, cols, tile, tile, 3).transpose(0, 2, 1, 3, 4).reshape(rows * tile, cols * tile, 3)
    return cv2.remap(sheet, _sheet_map(layout, cols, rows, tile), None, cv2.INTER_NEAREST)


def render_poster_file(run_dir, out, tile: int = 128) -> tuple[int, int]:
    """Poster of a built mosaic to a PNG; returns its (width, height)."""
    built = load_built(run_dir)
    img = render_poster(built.atlas, built.grid, built.layout, built.cols, built.rows, tile)
    save_image(out, img)
    return img.shape[1], img.shape[0]


def render_plot(atlas: np.ndarray, coords: np.ndarray, size: int = 2000, thumb: int | None = None, seed: int = 0,
                max_thumbs: int = 4000) -> np.ndarray:
    """Thumbnails at their t-SNE positions on black (the 'images instead of points' plot). ``thumb`` None
    sizes them to the map's density: about the distance between a frame and its nearest neighbour, so the
    map is covered, not a few stamps on black."""
    canvas = np.zeros((size, size, 3), np.uint8)
    if len(coords) == 0:
        return canvas
    order = np.random.default_rng(seed).permutation(len(coords))[:max_thumbs]
    lo, hi = coords.min(0), coords.max(0)
    unit = (coords - lo) / np.maximum(hi - lo, 1e-9)                 # (N, 2) in [0, 1]
    if thumb is None:
        from scipy.spatial import cKDTree

        shown = unit[order]
        d, _ = cKDTree(shown).query(shown, k=min(2, len(shown)))
        spacing = float(np.median(d[:, -1])) if len(shown) > 1 else 0.25
        thumb = int(np.clip(spacing * size * 1.5, 12, size // 4))
    thumb = max(4, min(int(thumb), size // 2))
    pos = unit * (size - thumb)
    for i in order:
        x, y = int(pos[i, 0]), int(pos[i, 1])
        canvas[y:y + thumb, x:x + thumb] = cv2.resize(np.asarray(atlas[i]), (thumb, thumb),
                                                      interpolation=cv2.INTER_AREA)
    return canvas
