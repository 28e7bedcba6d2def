"""2-D maps of feature vectors for plotting: PCA or t-SNE (arrays in, arrays out)."""
from __future__ import annotations

import numpy as np

from hashtag_workbench.core.errors import InputError

METHODS = ("pca", "tsne")


def to_2d(X: np.ndarray, *, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """n x d -> n x 2. PCA is exact and fast; t-SNE shows local neighbourhoods (slower)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise InputError(f"expected a non-empty 2-D array of vectors, got shape {X.shape}")
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    n = X.shape[0]
    if n == 1:
        return np.zeros((1, 2), dtype=np.float32)
    if method == "pca" or n < 5:
        Xc = X - X.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        out = Xc @ vt[:2].T
        if out.shape[1] < 2:
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out.astype(np.float32)
    from sklearn.manifold import TSNE
    perp = float(min(perplexity, max(2.0, (n - 1) / 3)))
    Xr = X
    if X.shape[1] > 50:
        Xc = X - X.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        Xr = Xc @ vt[:50].T
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(Xr).astype(np.float32)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the indices and cosine similarities of its k most similar pool rows."""
    Q = np.asarray(queries, dtype=np.float32)
    P = np.asarray(pool, dtype=np.float32)
    if Q.ndim != 2 or P.ndim != 2 or Q.shape[1] != P.shape[1]:
        raise InputError(f"queries and pool must be 2-D with the same width, got {Q.shape} and {P.shape}")
    k = max(1, min(int(k), P.shape[0]))
    Qn = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
    Pn = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
    sims = Qn @ Pn.T
    idx = np.argsort(-sims, axis=1)[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)
