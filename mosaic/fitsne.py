"""t-SNE's gradient descent with FFT-accelerated repulsion, in float32 on every core.

The repulsive half of the t-SNE gradient couples every pair of points. FIt-SNE (Linderman et al., Nature
Methods 2019) evaluates it by interpolation: the map is covered by a square grid of boxes, each point
spreads four charges (1, x, y, x^2 + y^2) onto its box's 3x3 Lagrange nodes, the node grid is convolved
with the squared Cauchy kernel 1 / (1 + d^2)^2 by FFT, and each point reads its four potentials back with
the same weights. The attractive half runs over the sparse affinities only. openTSNE implements this
scheme in float64 with numpy's single-threaded FFT, and at 23k points the FFTs and grid passes are 80% of
its time. Here, measured on the 2-core machine:

- three charges do instead of four (see ``_repulsion``), and their grids go through one batched
  transform on every core (``scipy.fft``, ``workers``), in single precision (t-SNE's gradient needs no
  more; the tests compare it with the exact gradient and with openTSNE's);
- the transform is pruned: the charges fill a quarter of the zero-padded grid, so the first pass runs
  over the filled rows only, and the inverse computes only the quarter that is read back;
- the padded size is FFT-friendly (``next_fast_len``) instead of exactly twice the grid;
- the kernel is even, so its transform is real and the product is a real scaling; it depends only on
  the grid, whose boxes are exactly BOX_SIZE wide once the map is large, so it is kept between iterations;
- scatter, gather, attraction and the update are numba loops, the per-point ones split across threads;
- maps under EXACT_BELOW points sum every pair instead (cheaper than the smallest grid's transforms).

Measured at 23k points: an iteration late in the run 120 -> 50 ms, the whole optimisation 4x faster.

The optimiser is openTSNE's, step for step: gradient descent with momentum and per-coordinate gains
(+0.2 on a sign flip, x0.8 otherwise, floor 0.01), learning rate N / exaggeration unless given (``mosaic.embed``
runs its main phase at 2N), steps clipped to norm 5,
the map re-centred every iteration, and the gradient without t-SNE's constant factor 4 (the learning rate
absorbs it).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy import fft as sfft

N_INTERP = 3            # Lagrange nodes per box and axis (FIt-SNE's and openTSNE's default)
MIN_BOXES = 50          # the grid never has fewer boxes per axis than this
BOX_SIZE = 1.0          # at most this many map units per box (openTSNE's ``ints_in_interval``)
MAX_STEP = 5.0          # openTSNE's ``max_step_norm``
MIN_GAIN = 0.01
EXACT_BELOW = 2500      # smaller maps sum every pair (measured: cheaper than the smallest grid's transforms)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _lagrange(t: float, out: np.ndarray) -> None:
    """Weights of the 3 nodes at 1/6, 1/2, 5/6 of a box for a point at ``t`` (0..1) of it."""
    a = t - np.float32(1 / 6)
    b = t - np.float32(0.5)
    c = t - np.float32(5 / 6)
    out[0] = b * c * np.float32(4.5)      # 1 / ((1/6 - 1/2) (1/6 - 5/6)) = 9/2
    out[1] = a * c * np.float32(-9.0)     # 1 / ((1/2 - 1/6) (1/2 - 5/6)) = -9
    out[2] = a * b * np.float32(4.5)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _scatter(y, lo, box, nb, charges, node, wts):
    """Spread each point's charges (1, x, y) onto its box's 3x3 nodes of ``charges`` (3, G, G).

    Remembers each point's first node (``node``) and its 9 weights (``wts``) for the gather."""
    ax = np.empty(3, np.float32)
    ay = np.empty(3, np.float32)
    inv = np.float32(1.0) / box
    for i in range(y.shape[0]):
        x0 = y[i, 0]
        x1 = y[i, 1]
        u = (x0 - lo) * inv
        v = (x1 - lo) * inv
        bu = min(int(u), nb - 1)
        bv = min(int(v), nb - 1)
        _lagrange(u - bu, ax)
        _lagrange(v - bv, ay)
        r0 = bu * N_INTERP
        c0 = bv * N_INTERP
        node[i, 0] = r0
        node[i, 1] = c0
        for a in range(3):
            for b in range(3):
                w = ax[a] * ay[b]
                wts[i, a * 3 + b] = w
                charges[0, r0 + a, c0 + b] += w
                charges[1, r0 + a, c0 + b] += w * x0
                charges[2, r0 + a, c0 + b] += w * x1


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _kernel(g, h, out):
    """The squared Cauchy kernel between nodes ``h`` apart, laid out for a circular convolution of size M.

    ``out`` (M, M) is zero on entry; offsets -(g-1)..g-1 land at their index modulo M (M >= 2g - 1)."""
    m = out.shape[0]
    for a in range(-(g - 1), g):
        ra = a % m
        da = np.float32(a) * h
        for b in range(-(g - 1), g):
            db = np.float32(b) * h
            q = np.float32(1.0) / (np.float32(1.0) + da * da + db * db)
            out[ra, b % m] = q * q


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _scale(spectrum, k_hat):
    """Multiply complex ``spectrum`` (3, M, C), seen as interleaved float32 pairs, by the real ``k_hat``."""
    for t in range(spectrum.shape[0]):
        for r in range(spectrum.shape[1]):
            for c in range(k_hat.shape[1]):
                k = k_hat[r, c]
                spectrum[t, r, 2 * c] *= k
                spectrum[t, r, 2 * c + 1] *= k


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _repulsion(y, pot, node, wts, start, stop, rep):
    """Read back each point's potentials; ``rep`` gets y * phi1 - (phi_x, phi_y). Returns this range's
    share of the normaliser Z + N: sum of (1 + 2 |y|^2) phi1 - 2 y . phi_xy.

    FIt-SNE spreads a fourth charge |y|^2 for Z; its potentials are only ever summed over all points, and
    sum_i sum_j K_ij |y_j|^2 = sum_j |y_j|^2 phi1_j because the interpolated kernel is symmetric, so
    three transforms do instead of four."""
    z = 0.0
    for i in range(start, stop):
        r0 = node[i, 0]
        c0 = node[i, 1]
        p0 = np.float32(0.0)
        p1 = np.float32(0.0)
        p2 = np.float32(0.0)
        for a in range(3):
            for b in range(3):
                w = wts[i, a * 3 + b]
                p0 += w * pot[0, r0 + a, c0 + b]
                p1 += w * pot[1, r0 + a, c0 + b]
                p2 += w * pot[2, r0 + a, c0 + b]
        x0 = y[i, 0]
        x1 = y[i, 1]
        z += (1.0 + 2.0 * (x0 * x0 + x1 * x1)) * p0 - 2.0 * (x0 * p1 + x1 * p2)
        rep[i, 0] = x0 * p0 - p1
        rep[i, 1] = x1 * p0 - p2
    return z


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _exact_repulsion(y, start, stop, rep):
    """Every pair summed, for small maps: ``rep`` gets sum_j q_ij^2 (y_i - y_j); returns sum_j q_ij."""
    z = 0.0
    n = y.shape[0]
    for i in range(start, stop):
        x0 = y[i, 0]
        x1 = y[i, 1]
        r0 = np.float32(0.0)
        r1 = np.float32(0.0)
        zi = np.float32(0.0)
        for j in range(n):
            d0 = x0 - y[j, 0]
            d1 = x1 - y[j, 1]
            q = np.float32(1.0) / (np.float32(1.0) + d0 * d0 + d1 * d1)
            zi += q
            r0 += q * q * d0
            r1 += q * q * d1
        z += zi - 1.0  # j == i added q = 1
        rep[i, 0] = r0
        rep[i, 1] = r1
    return z


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _gradient(y, indptr, indices, p, exaggeration, rep, inv_z, start, stop, grad):
    """grad = exaggeration * sum_j p_ij q_ij (y_i - y_j) - rep / Z, for rows start..stop."""
    for i in range(start, stop):
        x0 = y[i, 0]
        x1 = y[i, 1]
        g0 = np.float32(0.0)
        g1 = np.float32(0.0)
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            d0 = x0 - y[j, 0]
            d1 = x1 - y[j, 1]
            pq = p[k] / (np.float32(1.0) + d0 * d0 + d1 * d1)
            g0 += pq * d0
            g1 += pq * d1
        grad[i, 0] = exaggeration * g0 - rep[i, 0] * inv_z
        grad[i, 1] = exaggeration * g1 - rep[i, 1] * inv_z


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _step(y, grad, update, gains, momentum, rate):
    """openTSNE's update: gains, momentum, a step clipped to norm MAX_STEP, then the map re-centred."""
    n = y.shape[0]
    m0 = 0.0
    m1 = 0.0
    for i in range(n):
        for d in range(2):
            g = grad[i, d]
            u = update[i, d]
            if (u > 0) != (g > 0) or (u == 0) != (g == 0):  # np.sign differs
                gains[i, d] += np.float32(0.2)
            else:
                gains[i, d] = gains[i, d] * np.float32(0.8) + np.float32(MIN_GAIN)
            update[i, d] = momentum * u - rate * gains[i, d] * g
        norm = np.sqrt(update[i, 0] * update[i, 0] + update[i, 1] * update[i, 1])
        if norm > MAX_STEP:
            s = np.float32(MAX_STEP) / norm
            update[i, 0] *= s
            update[i, 1] *= s
        y[i, 0] += update[i, 0]
        y[i, 1] += update[i, 1]
        m0 += y[i, 0]
        m1 += y[i, 1]
    m0 /= n
    m1 /= n
    for i in range(n):
        y[i, 0] -= m0
        y[i, 1] -= m1


class TSNE:
    """One map being optimised: ``run(n_iter, exaggeration, momentum)`` as many phases as wanted."""

    def __init__(self, init: np.ndarray, affinities, n_jobs: int = 2, exact_below: int = EXACT_BELOW):
        """``init`` (N, 2); ``affinities`` a symmetric CSR matrix of p_ij summing to 1 (openTSNE's ``P``).
        Maps of fewer than ``exact_below`` points sum the repulsion over every pair instead."""
        self.y = np.array(init, np.float32, order="C")
        p = affinities.tocsr()
        self.indptr = p.indptr.astype(np.int64)
        self.indices = p.indices.astype(np.int32)
        self.p = p.data.astype(np.float32)
        n = len(self.y)
        self.update = np.zeros_like(self.y)
        self.gains = np.ones_like(self.y)
        self.grad = np.empty_like(self.y)
        self.rep = np.empty_like(self.y)
        self.node = np.empty((n, 2), np.int32)
        self.wts = np.empty((n, 9), np.float32)
        self.jobs = max(1, n_jobs)
        self.exact = n < exact_below
        self._k = None
        # rows split so each thread gets an equal share of the affinities (the attraction's work)
        cuts = np.searchsorted(self.indptr, np.linspace(0, self.indptr[-1], self.jobs + 1)[1:-1])
        bounds = [0, *cuts.tolist(), n]
        self.parts = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def _grid(self, span: float) -> tuple[int, float]:
        """Boxes per axis and box width for a map ``span`` wide: MIN_BOXES boxes while the map is small,
        then boxes exactly BOX_SIZE wide, their count rounded up to a multiple of 8 so the grid (and the
        kernel's transform, which depends only on the grid) changes every few iterations, not every one."""
        if span <= MIN_BOXES * BOX_SIZE:
            return MIN_BOXES, span / MIN_BOXES * (1 + 1e-6)   # the largest coordinate stays in the last box
        return -(-int(span / BOX_SIZE + 1) // 8) * 8, BOX_SIZE

    def _kernel_hat(self, g: int, h: float) -> tuple[int, np.ndarray]:
        """The kernel's transform for g nodes ``h`` apart, remembered while g and h stay (real: it is even)."""
        if self._k is None or self._k[0] != (g, h):
            m = sfft.next_fast_len(2 * g - 1, real=True)
            kernel = np.zeros((m, m), np.float32)
            _kernel(g, np.float32(h), kernel)
            self._k = ((g, h), m, sfft.rfft2(kernel, workers=self.jobs).real.astype(np.float32))
        return self._k[1], self._k[2]

    def gradient(self, exaggeration: float = 1.0, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """The (N, 2) gradient of KL(P || Q) at the current map (times exaggeration on P; no factor 4)."""
        y = self.y
        run = pool.submit if pool is not None else _now
        if self.exact:
            z = sum(j.result() for j in [run(_exact_repulsion, y, a, b, self.rep) for a, b in self.parts])
            return self._attract(y, exaggeration, z, run)
        lo = float(y.min())
        nb, box = self._grid(max(float(y.max()) - lo, 1e-6))
        g = nb * N_INTERP
        m, k_hat = self._kernel_hat(g, box / N_INTERP)
        charges = np.zeros((3, g, g), np.float32)
        _scatter(y, np.float32(lo), np.float32(box), nb, charges, self.node, self.wts)
        workers = self.jobs
        f = sfft.rfft(charges, n=m, axis=2, workers=workers)                   # only the g filled rows
        f = sfft.fft(f, n=m, axis=1, workers=workers, overwrite_x=True)
        _scale(f.view(np.float32), k_hat)
        f = sfft.ifft(f, axis=1, workers=workers, overwrite_x=True)[:, :g]     # only the rows read back
        pot = np.ascontiguousarray(sfft.irfft(f, n=m, axis=2, workers=workers)[:, :, :g])
        zs = [run(_repulsion, y, pot, self.node, self.wts, a, b, self.rep) for a, b in self.parts]
        return self._attract(y, exaggeration, sum(j.result() for j in zs) - len(y), run)

    def _attract(self, y, exaggeration, z, run) -> np.ndarray:
        inv_z = np.float32(1.0 / max(z, 1e-12))
        jobs = [run(_gradient, y, self.indptr, self.indices, self.p, np.float32(exaggeration), self.rep, inv_z,
                    a, b, self.grad) for a, b in self.parts]
        for j in jobs:
            j.result()
        return self.grad

    def run(self, n_iter: int, exaggeration: float = 1.0, momentum: float = 0.8,
            learning_rate: float | None = None, progress=None) -> np.ndarray:
        """``n_iter`` steps of gradient descent; returns the map (N, 2), float32."""
        rate = np.float32(learning_rate or len(self.y) / exaggeration)
        with ThreadPoolExecutor(self.jobs) as pool:
            for _ in range(n_iter):
                grad = self.gradient(exaggeration, pool)
                _step(self.y, grad, self.update, self.gains, np.float32(momentum), rate)
                if progress is not None:
                    progress(1)
        return self.y


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _now(fn, *args):
    return _Done(fn(*args))
