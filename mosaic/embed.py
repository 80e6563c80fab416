"""Features -> 2-D: PCA, then t-SNE (openTSNE's FFT method by default; scikit-learn's, the seed's, too)."""
from __future__ import annotations

import numpy as np

METHODS = ("opentsne", "sklearn", "pca")


def pca(x: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[0], x.shape[1])
    return PCA(dims, random_state=seed).fit_transform(x.astype(np.float32))


EMBED_VERSION = 2  # part of the build's cache key: coordinates from an older method are recomputed


def embed(features: np.ndarray, method: str = "opentsne", perplexity: float = 10.0, pca_dims: int = 50,
          seed: int = 0, n_jobs: int = 2, n_iter: int = 400) -> np.ndarray:
    """(N, D) features -> (N, 2) float32 coordinates. Fixed seed: the same input gives the same map.

    ``opentsne`` (default): exact nearest neighbours on the raw features (one matrix product per block,
    the seed's neighbourhoods, seconds for 23k frames), openTSNE's perplexity affinities on them, PCA
    initialisation, then 250 early-exaggeration and ``n_iter`` FFT-accelerated gradient iterations.
    ``sklearn``: the seed's Barnes-Hut t-SNE (on PCA-``pca_dims``). ``pca``: the first two components.
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
    from openTSNE import TSNEEmbedding, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    k = min(n - 1, int(3 * perplexity) + 1)
    idx, dist = exact_knn(x, k)
    aff = affinity.PerplexityBasedNN(perplexity=perplexity, knn_index=PrecomputedNeighbors(idx, dist),
                                     n_jobs=n_jobs, random_state=seed)
    init = initialization.rescale(pca(x, 2, seed).astype(np.float64))
    emb = TSNEEmbedding(init, aff, negative_gradient_method="fft", n_jobs=n_jobs, random_state=seed)
    emb = emb.optimize(250, exaggeration=12, momentum=0.5).optimize(n_iter, momentum=0.8)
    return np.asarray(emb, dtype=np.float32)


def exact_knn(x: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows (indices, Euclidean distances), by blocks of matrix products."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    sq = (t * t).sum(1)
    idx = np.empty((len(x), k), np.int64)
    dist = np.empty((len(x), k), np.float32)
    with torch.no_grad():
        for a in range(0, len(x), block):
            b = min(len(x), a + block)
            d2 = sq[a:b, None] - 2 * (t[a:b] @ t.T) + sq[None]
            d2[torch.arange(b - a), torch.arange(a, b)] = float("inf")  # not its own neighbour
            vals, nn = torch.topk(d2, k, dim=1, largest=False, sorted=True)
            idx[a:b] = nn.numpy()
            dist[a:b] = vals.clamp_min(0).sqrt().numpy()
    return idx, dist


def knn_preservation(high: np.ndarray, low: np.ndarray, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    """Share of each point's k nearest neighbours in ``high`` that stay among its k nearest in ``low``."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(high), min(sample, len(high)), replace=False)
    nn_hi = NearestNeighbors(n_neighbors=k + 1).fit(high).kneighbors(high[idx], return_distance=False)[:, 1:]
    nn_lo = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low[idx], return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(nn_hi, nn_lo)]))
