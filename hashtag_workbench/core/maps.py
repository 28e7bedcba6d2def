"""2-D maps of feature vectors for plotting: PCA or t-SNE (arrays in, arrays out)."""
from __future__ import annotations

import numpy as np

from hashtag_workbench.core.errors import InputError

METHODS = ("pca", "tsne")


def principal_components(X: np.ndarray, k: int) -> np.ndarray:
    """The centred rows of X on their first k principal axes (n x min(k, d, n))."""
    Xc = X - X.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    return Xc @ vt[:k].T


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
        out = principal_components(X, 2)
        if out.shape[1] < 2:
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out.astype(np.float32)
    from sklearn.manifold import TSNE
    perp = float(min(perplexity, max(2.0, (n - 1) / 3)))
    Xr = principal_components(X, 50) if X.shape[1] > 50 else X
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(Xr).astype(np.float32)


MAP_SAMPLE = 3000  # t-SNE is O(n log n) but slow in practice: a larger set is mapped on a fixed sample


def maps_2d(P: np.ndarray, *, sample: int = MAP_SAMPLE, seed: int = 0,
            methods: tuple[str, ...] = METHODS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """2-D maps of PCA projections P (n x k): {method: (row indices mapped, n_rows x 2 coordinates)}.

    PCA: the first two components of P (already PCA), every row. t-SNE: every row, or a fixed
    random sample of `sample` rows when there are more.
    """
    P = np.asarray(P, dtype=np.float32)
    if P.ndim != 2 or P.shape[0] == 0:
        raise InputError(f"expected a non-empty 2-D array of projections, got shape {P.shape}")
    every = np.arange(P.shape[0])
    pca = P[:, :2] if P.shape[1] >= 2 else np.pad(P, ((0, 0), (0, 2 - P.shape[1])))
    keep = every if len(every) <= sample else np.sort(np.random.default_rng(seed).choice(len(every), sample,
                                                                                       replace=False))
    out = {"pca": (every, pca.astype(np.float32))}
    if "tsne" in methods:
        out["tsne"] = (keep, to_2d(P[keep], method="tsne", seed=seed))
    return out


def distinct_colours(n: int) -> list[str]:
    """n clearly different colours ('#rrggbb'): hues spread by the golden angle, lightness in three bands,
    so neighbouring words never share a colour however many there are."""
    import colorsys
    out = []
    for i in range(max(0, int(n))):
        h = (i * 0.618033988749895) % 1.0
        light, sat = (0.45, 0.75) if i % 3 == 0 else ((0.32, 0.85) if i % 3 == 1 else (0.60, 0.65))
        r, g, b = colorsys.hls_to_rgb(h, light, sat)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return out


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
