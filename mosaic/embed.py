"""Features -> 2-D: PCA, then t-SNE (openTSNE's FFT method by default; scikit-learn's, the seed's, too)."""
from __future__ import annotations

import numpy as np

METHODS = ("opentsne", "sklearn", "pca")


def pca(x: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[0], x.shape[1])
    return PCA(dims, random_state=seed).fit_transform(x.astype(np.float32))


def embed(features: np.ndarray, method: str = "opentsne", perplexity: float = 10.0, pca_dims: int = 50,
          seed: int = 0, n_jobs: int = 2) -> np.ndarray:
    """(N, D) features -> (N, 2) float32 coordinates. Fixed seed: the same input gives the same map."""
    if method not in METHODS:
        raise ValueError(f"embedding {method!r} is not one of {', '.join(METHODS)}")
    n = len(features)
    if n < 2:
        return np.zeros((n, 2), np.float32)
    x = features.astype(np.float32)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)  # cosine geometry, like the search
    reduced = pca(x, pca_dims, seed) if x.shape[1] > pca_dims else x
    if method == "pca" or n < 8:
        return pca(reduced, 2, seed).astype(np.float32) if reduced.shape[1] > 2 else reduced.astype(np.float32)
    perplexity = min(perplexity, (n - 1) / 3.0)  # t-SNE needs 3 * perplexity < N
    if method == "sklearn":
        from sklearn.manifold import TSNE

        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=n_jobs).fit_transform(
            reduced).astype(np.float32)
    from openTSNE import TSNE as OpenTSNE

    return np.asarray(OpenTSNE(n_components=2, perplexity=perplexity, initialization="pca", random_state=seed,
                               n_jobs=n_jobs, negative_gradient_method="fft", verbose=False).fit(reduced),
                      dtype=np.float32)


def knn_preservation(high: np.ndarray, low: np.ndarray, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    """Share of each point's k nearest neighbours in ``high`` that stay among its k nearest in ``low``."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(high), min(sample, len(high)), replace=False)
    nn_hi = NearestNeighbors(n_neighbors=k + 1).fit(high).kneighbors(high[idx], return_distance=False)[:, 1:]
    nn_lo = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low[idx], return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(nn_hi, nn_lo)]))
