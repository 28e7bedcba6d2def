"""Exact and near-duplicate groups from perceptual hashes and feature cosine similarity."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.linalg import l2_rows

BLOCK = 2048  # rows per block when comparing all pairs, to bound memory at BLOCK x n


def phash_hex(img: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits."""
    import imagehash
    return str(imagehash.phash(img))


def _hash_ints(hashes: Sequence[str]) -> np.ndarray:
    try:
        return np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"perceptual hashes must be hex strings of up to 16 digits ({exc})") from None


def _hash_links(ints: np.ndarray, max_distance: int) -> np.ndarray:
    """(i, j) pairs, i < j, whose hashes differ in at most `max_distance` bits; compared block by block."""
    pairs = []
    for start in range(0, len(ints), BLOCK):
        dist = np.bitwise_count(ints[start:start + BLOCK, None] ^ ints[None, :])
        ii, jj = np.nonzero(dist <= max_distance)
        pairs.append(np.column_stack([ii + start, jj])[ii + start < jj])
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def _cosine_links(features: np.ndarray, min_cosine: float) -> np.ndarray:
    """(i, j) pairs, i < j, whose feature cosine is at least `min_cosine`."""
    Z = l2_rows(features)
    pairs = []
    for start in range(0, len(Z), BLOCK):
        ii, jj = np.nonzero(Z[start:start + BLOCK] @ Z.T >= min_cosine)
        pairs.append(np.column_stack([ii + start, jj])[ii + start < jj])
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


@dataclass
class DuplicateGroup:
    """Images that are copies of one another; `distances[i]` = hash bits from members[0]."""
    kind: str                  # exact (same bytes or identical hash) | near
    members: list[int]         # positions into the caller's arrays, first = lowest position
    distances: list[float]


def find_duplicates(*, hashes: Sequence[str], shas: Sequence[str] | None = None,
                    features: np.ndarray | None = None, max_hash_distance: int = 6,
                    min_cosine: float = 0.97) -> list[DuplicateGroup]:
    """Group images that are the same picture.

    Linked when: same SHA-256 or identical perceptual hash (exact), or hash
    Hamming distance <= `max_hash_distance` or feature cosine >= `min_cosine`
    (near). Groups are the connected components of those links (scipy.sparse.csgraph);
    a group is 'exact' when every member has the same hash as the first.
    """
    n = len(hashes)
    if shas is not None and len(shas) != n:
        raise InputError(f"{len(shas)} SHA-256 values for {n} hashes")
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != n:
            raise InputError(f"features must be a 2-d array with one row per hash ({n}), got {features.shape}")
    if not 0 <= max_hash_distance <= 64:
        raise InputError(f"max_hash_distance must be between 0 and 64 bits, got {max_hash_distance}")
    if not -1.0 <= min_cosine <= 1.0:
        raise InputError(f"min_cosine must be between -1 and 1, got {min_cosine}")
    ints = _hash_ints(hashes)
    links = [_hash_links(ints, max_hash_distance)]
    if shas is not None:
        first: dict[str, int] = {}
        links.append(np.array([(first.setdefault(s, i), i) for i, s in enumerate(shas) if s is not None],
                              dtype=np.int64).reshape(-1, 2))
    if features is not None and n:
        links.append(_cosine_links(features, min_cosine))
    edges = np.concatenate(links)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    comps: dict[int, list[int]] = {}
    for i, c in enumerate(component.tolist()):
        comps.setdefault(c, []).append(i)
    groups = []
    for members in comps.values():
        if len(members) < 2:
            continue
        d = [float(np.bitwise_count(ints[members[0]] ^ ints[m])) for m in members]
        groups.append(DuplicateGroup("exact" if max(d) == 0 else "near", members, d))
    return sorted(groups, key=lambda g: g.members[0])
