"""WordNet 3.0 nouns, offline: synsets, hypernyms, a word's senses, and the ImageNet classes beneath a synset.

Reads the compact file derived by `python datasets/build_wordnet.py` and shipped as package data
(hashtag_workbench/data/wordnet_nouns.json.gz, WordNet's licence beside it). Synsets are addressed
by their row in that file; `offset(row)` gives the WordNet 3.0 offset, so ImageNet id n01440764 is
the synset with offset 1440764. The 1000 ImageNet-1k classes are stored in torchvision's order.
"""
from __future__ import annotations

import functools
import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from hashtag_workbench.core.errors import InputError

WORDNET_FILE = Path(__file__).resolve().parent.parent / "data" / "wordnet_nouns.json.gz"
REBUILD = "python datasets/build_wordnet.py"
_KEYS = ("offsets", "lemmas", "hypernyms", "instance_hypernyms", "glosses", "index", "exceptions", "imagenet")
# Regular plural endings -> singular, WordNet's own detachment rules for nouns (morphy(7WN)).
_SUFFIXES = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y"), ("s", ""))


class WordNetError(InputError):
    """The derived WordNet file is missing or damaged."""


@dataclass
class WordNet:
    offsets: list[int]
    lemmas: list[str]                    # 'dog|domestic_dog|Canis_familiaris' per synset
    hypernyms: list[list[int]]           # rows of hypernyms, per synset
    instance_hypernyms: list[list[int]]
    glosses: list[str]
    index: dict[str, list[int]]          # lemma -> synset rows, most frequent sense first
    exceptions: dict[str, str]           # irregular plural -> base form
    imagenet: list[int]                  # the 1000 ImageNet classes' synset rows, torchvision order
    _class_ancestors: list[frozenset] = field(default_factory=list, repr=False)

    def parents(self, row: int) -> list[int]:
        return self.hypernyms[row] + self.instance_hypernyms[row]

    def names(self, row: int) -> list[str]:
        return [lemma.replace("_", " ") for lemma in self.lemmas[row].split("|")]

    def wnid(self, row: int) -> str:
        return f"n{self.offsets[row]:08d}"

    def ancestors(self, row: int) -> dict[int, int]:
        """Every hypernym of a synset (instance hypernyms too) -> its shortest distance (the synset itself: 0)."""
        depth, frontier = {row: 0}, [row]
        while frontier:
            nxt = []
            for r in frontier:
                for p in self.parents(r):
                    if p not in depth:
                        depth[p] = depth[r] + 1
                        nxt.append(p)
            frontier = nxt
        return depth

    def base_forms(self, word: str) -> list[str]:
        """The lemma keys a word may stand for: itself, its irregular or regular singular ('flowers' -> 'flower')."""
        key = word.strip().lower().replace(" ", "_").replace("-", "_")
        forms = [key]
        if key in self.exceptions:
            forms.append(self.exceptions[key])
        forms += [key[: -len(suf)] + rep for suf, rep in _SUFFIXES if key.endswith(suf) and len(key) > len(suf) + 1]
        return [f for f in dict.fromkeys(forms) if f in self.index]

    def senses(self, word: str) -> list[int]:
        """The word's noun synsets (most frequent first; the word's own lemma before its singular's)."""
        return list(dict.fromkeys(r for form in self.base_forms(word) for r in self.index[form]))

    def class_ancestors(self) -> list[frozenset]:
        """Per ImageNet class: the synset rows it lies under (itself included)."""
        if not self._class_ancestors:
            self._class_ancestors = [frozenset(self.ancestors(r)) for r in self.imagenet]
        return self._class_ancestors

    def classes_under(self, row: int) -> list[int]:
        """Indices (0-999) of the ImageNet classes at or below a synset."""
        return [i for i, anc in enumerate(self.class_ancestors()) if row in anc]


def _damaged(path: Path, why: str) -> WordNetError:
    return WordNetError(f"the WordNet file {path} is missing or damaged ({why}); rebuild it with `{REBUILD}`")


@functools.lru_cache(maxsize=2)
def load_wordnet(path: Path | str | None = None) -> WordNet:
    """The shipped WordNet nouns (cached per process); a damaged file raises one line naming the rebuild."""
    path = Path(path or WORDNET_FILE)
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, zlib.error, ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {str(exc)[:80]}") from None
    missing = [k for k in _KEYS if k not in data] if isinstance(data, dict) else list(_KEYS)
    if missing:
        raise _damaged(path, f"no {', '.join(missing)}")
    n = len(data["offsets"])
    if any(len(data[k]) != n for k in ("lemmas", "hypernyms", "instance_hypernyms", "glosses")) \
            or len(data["imagenet"]) != 1000:
        raise _damaged(path, "its tables disagree in length")
    return WordNet(**{k: data[k] for k in _KEYS})
