"""2-D coordinates -> grid cells. ``nearest`` is the seed's (each cell takes its nearest frame, repeats
allowed); ``optimal`` (default) is a one-to-one linear assignment, so every cell shows a different frame.
Layouts: triangle (the seed's alternating up/down), square and hex.
"""
from __future__ import annotations

import logging

import numpy as np

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
    return out


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

