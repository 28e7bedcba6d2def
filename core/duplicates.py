"""Exact and near-duplicate groups from perceptual hashes and feature cosine similarity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

BLOCK = 2048  # rows per block when comparing all pairs, to bound memory at BLOCK x n


def phash_hex(img: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits."""
    import imagehash
    return str(imagehash.phash(img))


def _hash_ints(hashes: Sequence[str]) -> np.ndarray:
    try:
        return np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"perceptual hashes must be hex strings of up to 16 digits ({exc})") from None


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


@dataclass
class DuplicateGroup:
    """Images that are copies of one another; `distances[i]` = hash bits from members[0]."""
    kind: str                  # exact (same bytes or identical hash) | near
    members: list[int]         # positions into the caller's arrays, first = lowest position
    distances: list[float]


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def find_duplicates(*, hashes: Sequence[str], shas: Sequence[str] | None = None,
                    features: np.ndarray | None = None, max_hash_distance: int = 6,
                    min_cosine: float = 0.97) -> list[DuplicateGroup]:
    """Group images that are the same picture.

    Linked when: same SHA-256 or identical perceptual hash (exact), or hash
    Hamming distance <= `max_hash_distance` or feature cosine >= `min_cosine`
    (near). Groups are connected components of those links; a group is 'exact'
    when every member has the same hash as the first.
    """
    n = len(hashes)
    if shas is not None and len(shas) != n:
        raise ValueError(f"{len(shas)} SHA-256 values for {n} hashes")
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != n:
            raise ValueError(f"features must be a 2-d array with one row per hash ({n}), got {features.shape}")
    if not 0 <= max_hash_distance <= 64:
        raise ValueError(f"max_hash_distance must be between 0 and 64 bits, got {max_hash_distance}")
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be between -1 and 1, got {min_cosine}")
    ints = _hash_ints(hashes)
    uf = _UnionFind(n)
    if shas is not None:
        first: dict[str, int] = {}
        for i, s in enumerate(shas):
            if s is not None:
                uf.union(first.setdefault(s, i), i)
    for start in range(0, n, BLOCK):
        block = ints[start:start + BLOCK]
        dist = np.bitwise_count(block[:, None] ^ ints[None, :])
        ii, jj = np.nonzero(dist <= max_hash_distance)
        for i, j in zip(ii + start, jj):
            if i < j:
                uf.union(int(i), int(j))
    if features is not None and n:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        Z = features / np.where(norms > 0, norms, 1.0)
        for start in range(0, n, BLOCK):
            sims = Z[start:start + BLOCK] @ Z.T
            ii, jj = np.nonzero(sims >= min_cosine)
            for i, j in zip(ii + start, jj):
                if i < j:
                    uf.union(int(i), int(j))
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(uf.find(i), []).append(i)
    groups = []
    for members in comps.values():
        if len(members) < 2:
            continue
        d = [float(np.bitwise_count(ints[members[0]] ^ ints[m])) for m in members]
        groups.append(DuplicateGroup("exact" if max(d) == 0 else "near", members, d))
    return sorted(groups, key=lambda g: g.members[0])
