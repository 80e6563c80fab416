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
    """Stretch the embedding onto [0, 1]^2 by rank per axis, so the map fills the whole grid evenly."""
    out = np.empty_like(coords, dtype=np.float64)
    n = len(coords)
    for d in range(2):
        out[np.argsort(coords[:, d], kind="stable"), d] = (np.arange(n) + 0.5) / n
    # blend with min-max so local geometry survives the rank stretch
    mm = (coords - coords.min(0)) / np.maximum(np.ptp(coords, 0), 1e-9)
    return 0.5 * out + 0.5 * mm


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
    cost = ((cells[:, None, :] - pts[cand][None, :, :]) ** 2).sum(-1)  # (cells, candidates)
    from scipy.optimize import linear_sum_assignment

    row, col = linear_sum_assignment(cost)
    out = np.empty(m, np.int64)
    out[row] = cand[col]
    return out


def neighbour_agreement(grid: np.ndarray, labels: np.ndarray, cols: int, rows: int) -> float:
    """Share of horizontally/vertically adjacent cells whose frames share a label (e.g. genre)."""
    g = labels[grid].reshape(rows, cols)
    same = np.concatenate([(g[:, 1:] == g[:, :-1]).ravel(), (g[1:] == g[:-1]).ravel()])
    return float(same.mean())
