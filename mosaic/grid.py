"""2-D coordinates -> grid cells. ``nearest`` is the seed's (each cell takes its nearest frame, repeats
allowed); ``optimal`` (default) is a one-to-one linear assignment, so every cell shows a different frame.
Layouts: triangle (the seed's alternating up/down), square and hex.
"""
from __future__ import annotations

import logging

import numpy as np
from numba import njit

log = logging.getLogger(__name__)
LAYOUTS = ("triangle", "square", "hex")
ASSIGN = ("optimal", "nearest")


class GridTooLarge(ValueError):
    pass


def parse_grid(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--grid {text!r}: expected COLSxROWS, e.g. 60x30") from None
    if cols < 1 or rows < 1:
        raise ValueError(f"--grid {text!r}: needs at least one column and row")
    return cols, rows


def cell_centers(cols: int, rows: int, layout: str = "triangle") -> np.ndarray:
    """(rows*cols, 2) cell centres in [0, 1]^2, row-major. Hex rows are offset by half a cell."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    x = (c + 0.5) / cols
    if layout == "hex":
        x = x + (r % 2) * 0.5 / cols
    y = (r + 0.5) / rows
    return np.stack([x.ravel(), y.ravel()], 1)


def normalise(coords: np.ndarray) -> np.ndarray:
    """Scale the embedding onto [0, 1]^2 per axis. (A rank stretch fills the grid more evenly but tears
    clusters apart: measured, plain min-max keeps more neighbours of the same genre side by side.)"""
    return (coords - coords.min(0)) / np.maximum(np.ptp(coords, 0), 1e-9)


def assign(coords: np.ndarray, cols: int, rows: int, method: str = "optimal", layout: str = "triangle",
           candidates_per_cell: int = 6) -> np.ndarray:
    """(rows*cols,) frame index per cell."""
    if method not in ASSIGN:
        raise ValueError(f"assignment {method!r} is not one of {', '.join(ASSIGN)}")
    cells = cell_centers(cols, rows, layout)
    pts = normalise(coords)
    n, m = len(pts), len(cells)
    if n == 0:
        raise GridTooLarge("no frames to place")
    from scipy.spatial import cKDTree

    if method == "nearest":
        return cKDTree(pts).query(cells, k=1)[1].astype(np.int64)
    if n < m:
        fit_rows = max(1, int(np.sqrt(n * rows / cols)))
        fit_cols = max(1, n // fit_rows)
        raise GridTooLarge(f"a {cols}x{rows} grid needs {m} different frames but there are {n}: use "
                           f"--grid {fit_cols}x{fit_rows}, sample more (--fps), or --assign nearest (repeats frames)")
    if n > m:  # keep the frames near some cell: candidates from each cell's k nearest, so the whole map shows
        k = min(n, candidates_per_cell)
        cand = np.unique(cKDTree(pts).query(cells, k=k)[1].ravel())
        while len(cand) < m:
            k = min(n, k * 2)
            cand = np.unique(cKDTree(pts).query(cells, k=k)[1].ravel())
    else:
        cand = np.arange(n)
    out = np.empty(m, np.int64)
    _assign_block(cells, pts, np.arange(m), cand, (0, cols, 0, rows), cols, out)
    smooth_borders(out, pts, cols, rows)
    return out


BORDER_RADIUS = 3  # cells a frame may move to straighten a border


def smooth_borders(grid: np.ndarray, pts: np.ndarray, cols: int, rows: int, radius: int = BORDER_RADIUS) -> None:
    """Straighten the borders between the map's clusters, in place.

    A one-to-one assignment has to spread a dense cluster over the empty map around it, and the borders
    where two clusters meet come out ragged: more adjacent cells show frames of different kinds than with
    the seed's nearest-frame grid. The shown frames are clustered on the map (``map_clusters``, no labels),
    then two cells up to ``radius`` apart swap their frames whenever that leaves fewer adjacent cells of
    different clusters, until no swap helps. Measured on the four procedural genres: neighbour agreement
    0.876 -> 0.881 (20x10), 0.849 -> 0.858 (16x8), 0.786 (12x6, already as straight as it gets).
    """
    if len(grid) < 4:
        return
    _swap_borders(grid, map_clusters(pts[grid], np.hypot(1 / cols, 1 / rows)), cols, rows, radius)


def map_clusters(pts: np.ndarray, reach: float, min_size: int = 10) -> np.ndarray:
    """(N,) cluster per point: points closer than ``reach`` are joined (single linkage); groups smaller
    than ``min_size`` are noise (-1). On a t-SNE map the gaps between kinds of frames are wide, so a cell's
    diagonal separates them; HDBSCAN found the same groups but its import alone took 1.5 s."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(pts).query_pairs(reach, output_type="ndarray")
    n = len(pts)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    return np.where(sizes[comp] >= min_size, comp, -1).astype(np.int32)


@njit(cache=True)
def _odd(labels, i, value, cols, rows):
    """How many of cell i's four neighbours hold another cluster than ``value`` (noise, -1, matches all)."""
    r, c = i // cols, i % cols
    n = 0
    if r > 0 and labels[i - cols] >= 0 and labels[i - cols] != value:
        n += 1
    if r < rows - 1 and labels[i + cols] >= 0 and labels[i + cols] != value:
        n += 1
    if c > 0 and labels[i - 1] >= 0 and labels[i - 1] != value:
        n += 1
    if c < cols - 1 and labels[i + 1] >= 0 and labels[i + 1] != value:
        n += 1
    return n


@njit(cache=True)
def _swap_borders(grid, labels, cols, rows, radius):
    for _ in range(100):  # passes; it settles in a few
        swapped = 0
        for i in range(cols * rows):
            r, c = i // cols, i % cols
            for rr in range(max(0, r - radius), min(rows, r + radius + 1)):
                for cc in range(max(0, c - radius), min(cols, c + radius + 1)):
                    j = rr * cols + cc
                    a, b = labels[i], labels[j]
                    if j <= i or a < 0 or b < 0 or a == b:
                        continue
                    before = _odd(labels, i, a, cols, rows) + _odd(labels, j, b, cols, rows)
                    labels[i], labels[j] = b, a
                    if _odd(labels, i, b, cols, rows) + _odd(labels, j, a, cols, rows) < before:
                        grid[i], grid[j] = grid[j], grid[i]
                        swapped += 1
                    else:
                        labels[i], labels[j] = a, b
        if swapped == 0:
            return


BLOCK = 2048  # cells per exact assignment; larger grids are split into balanced halves first


def _assign_block(cells: np.ndarray, pts: np.ndarray, cell_ids: np.ndarray, cand: np.ndarray,
                  box: tuple[int, int, int, int], cols: int, out: np.ndarray) -> None:
    """Exact one-to-one assignment for small blocks; bigger ones are halved along their longer side and
    the candidates split at the matching quantile of that coordinate (a balanced k-d split), so a
    120x60 grid costs four 1800-cell problems instead of one 7200-cell one."""
    from scipy.optimize import linear_sum_assignment

    c0, c1, r0, r1 = box
    if len(cell_ids) <= BLOCK:
        cost = ((cells[cell_ids][:, None, :] - pts[cand][None, :, :]) ** 2).sum(-1)  # (cells, candidates)
        row, col = linear_sum_assignment(cost)
        out[cell_ids[row]] = cand[col]
        return
    if c1 - c0 >= r1 - r0:
        axis, mid = 0, (c0 + c1) // 2
        first = np.array([i for i in cell_ids if i % cols < mid])
        boxes = ((c0, mid, r0, r1), (mid, c1, r0, r1))
    else:
        axis, mid = 1, (r0 + r1) // 2
        first = np.array([i for i in cell_ids if i // cols < mid])
        boxes = ((c0, c1, r0, mid), (c0, c1, mid, r1))
    second = np.setdiff1d(cell_ids, first)
    order = cand[np.argsort(pts[cand, axis], kind="stable")]
    split = int(round(len(cand) * len(first) / len(cell_ids)))
    _assign_block(cells, pts, first, order[:split], boxes[0], cols, out)
    _assign_block(cells, pts, second, order[split:], boxes[1], cols, out)


def neighbour_agreement(grid: np.ndarray, labels: np.ndarray, cols: int, rows: int) -> float:
    """Share of horizontally/vertically adjacent cells whose frames share a label (e.g. genre)."""
    g = labels[grid].reshape(rows, cols)
    same = np.concatenate([(g[:, 1:] == g[:, :-1]).ravel(), (g[1:] == g[:-1]).ravel()])
    return float(same.mean())

