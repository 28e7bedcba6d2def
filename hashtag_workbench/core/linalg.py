"""Small array operations used across core: softmax and row L2-normalisation, written once."""
from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so large values cannot overflow."""
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def unit(x: np.ndarray) -> np.ndarray:
    """`x` scaled to length 1 along its last axis (a vector, or each row of a matrix); zeros stay zero."""
    x = np.asarray(x)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def l2_rows(X: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean length; all-zero rows stay zero."""
    X = np.asarray(X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)
