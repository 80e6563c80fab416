"""Features -> 2-D: PCA, then t-SNE (openTSNE's FFT method by default; scikit-learn's, the seed's, too)."""
from __future__ import annotations

import numpy as np

from vj.core.progress import Progress

METHODS = ("tsne", "sklearn", "pca")


def pca(x: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[0], x.shape[1])
    return PCA(dims, random_state=seed).fit_transform(x.astype(np.float32))


EMBED_VERSION = 4  # part of the build's cache key: coordinates from an older method are recomputed

# t-SNE's schedule: (iterations, exaggeration, momentum, learning rate as a multiple of N). The early phase
# is openTSNE's (rate N / 12). The main phase's rate 2N and 600 iterations were chosen by measurement at
# 23k points (scripts/bench/tsne.py): 10-NN preservation per second of optimisation beat rate N with
# 500-800 iterations, rate 4N, and momentum 0.9 (which spreads the map faster, so every FFT grows).
EARLY = (150, 12.0, 0.5, 1 / 12)
MAIN = (600, 1.0, 0.8, 2.0)


def embed(features: np.ndarray, method: str = "tsne", perplexity: float = 10.0, pca_dims: int = 50,
          seed: int = 0, n_jobs: int = 2, progress: bool = False) -> np.ndarray:
    """(N, D) features -> (N, 2) float32 coordinates. Fixed seed: the same input gives the same map.

    ``tsne`` (default): exact nearest neighbours on the raw features (one matrix product per block, the
    seed's neighbourhoods, seconds for 23k frames), openTSNE's perplexity affinities on them, PCA
    initialisation, then this project's FFT-accelerated gradient descent (``mosaic.fitsne``: float32,
    batched transforms on every core) with the EARLY and MAIN schedules above. openTSNE's own optimiser (the
    same scheme in float64 with one-threaded transforms) took 4x as long at 23k points and 40x on a few
    hundred (its smallest grid costs more than summing every pair, which small maps here do).
    ``sklearn``: the seed's Barnes-Hut t-SNE (on PCA-``pca_dims``). ``pca``: the first two components.
    ``progress``: a bar over the iterations (lines every 10 s when not on a terminal).
    """
    if method not in METHODS:
        raise ValueError(f"embedding {method!r} is not one of {', '.join(METHODS)}")
    n = len(features)
    if n < 2:
        return np.zeros((n, 2), np.float32)
    x = np.ascontiguousarray(features, dtype=np.float32)
    if method == "pca" or n < 8:
        return pca(x, 2, seed).astype(np.float32)
    perplexity = min(perplexity, (n - 1) / 3.0)  # t-SNE needs 3 * perplexity < N
    if method == "sklearn":
        from sklearn.manifold import TSNE

        reduced = pca(x, pca_dims, seed) if x.shape[1] > pca_dims else x
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=n_jobs).fit_transform(
            reduced).astype(np.float32)
    from openTSNE import affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    from mosaic.fitsne import TSNE  # numba and openTSNE load when a t-SNE runs, not for `vj --help` or a poster



    k = min(n - 1, int(3 * perplexity) + 1)
    idx, dist = exact_knn(x, k)
    aff = affinity.PerplexityBasedNN(perplexity=perplexity, knn_index=PrecomputedNeighbors(idx, dist),
                                     n_jobs=n_jobs, random_state=seed)
    with np.errstate(invalid="ignore", divide="ignore"):  # identical frames: zero variance to divide by
        start = pca(x, 2, seed).astype(np.float64)
    if not np.isfinite(start).all() or start[:, 0].std() < 1e-12:  # identical frames: no direction to follow
        start = np.random.default_rng(seed).normal(0, 1, (n, 2))
    init = initialization.rescale(start)
    opt = TSNE(init, aff.P, n_jobs=n_jobs)
    bar = Progress(EARLY[0] + MAIN[0], "t-SNE", "it", bar=None if progress else False,
                   every=10.0 if progress else float("inf"))
    try:
        for iters, exaggeration, momentum, rate in (EARLY, MAIN):
            opt.run(iters, exaggeration, momentum, rate * n, progress=bar.update)
    finally:
        bar.close()
    return opt.y.copy()


def exact_knn(x: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows (indices, Euclidean distances), by blocks of matrix products.

    Distances are symmetric, so only the blocks on and above the diagonal are multiplied (half the work);
    each block updates the running nearest of its rows and, transposed, of its columns.
    """
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n = len(t)
    k = min(k, n - 1)
    sq = (t * t).sum(1)
    best_d = torch.full((n, k), float("inf"))
    best_i = torch.zeros((n, k), dtype=torch.int64)

    def merge(rows: slice, d2: torch.Tensor, col0: int, dim: int) -> None:
        kk = min(k, d2.shape[dim])
        vals, nn = torch.topk(d2, kk, dim=dim, largest=False, sorted=False)
        if dim == 0:
            vals, nn = vals.T, nn.T
        vals = torch.cat([best_d[rows], vals], 1)
        nn = torch.cat([best_i[rows], nn + col0], 1)
        best_d[rows], pick = torch.topk(vals, k, dim=1, largest=False, sorted=True)
        best_i[rows] = torch.gather(nn, 1, pick)

    with torch.no_grad():
        for a in range(0, n, block):
            ra = slice(a, min(n, a + block))
            for b in range(a, n, block):
                rb = slice(b, min(n, b + block))
                d2 = sq[ra, None] - 2 * (t[ra] @ t[rb].T) + sq[None, rb]
                if a == b:
                    d2.fill_diagonal_(float("inf"))  # not its own neighbour
                merge(ra, d2, b, 1)
                if a != b:
                    merge(rb, d2, a, 0)
    return best_i.numpy(), best_d.clamp_min(0).sqrt().numpy()


def knn_preservation(high: np.ndarray, low: np.ndarray, k: int = 10, sample: int | None = 2000, seed: int = 0,
                     high_nn: np.ndarray | None = None) -> float:
    """Share of each point's k nearest neighbours in ``high`` that stay among its k nearest in ``low``.

    ``sample``: that many random points (None: all). ``high_nn``: the exact high-dimensional neighbours,
    (N, >=k) indices (from ``exact_knn``), when they are already known.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(low)
    idx = np.arange(n) if sample is None or sample >= n else \
        np.random.default_rng(seed).choice(n, sample, replace=False)
    if high_nn is not None:
        nn_hi = high_nn[idx, :k]
    else:
        nn_hi = NearestNeighbors(n_neighbors=k + 1).fit(high).kneighbors(high[idx], return_distance=False)[:, 1:]
    nn_lo = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low[idx], return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(nn_hi, nn_lo)]))
