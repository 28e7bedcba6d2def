"""Zero-shot evidence from the WordNet hierarchy: a word's senses, the ImageNet mass beneath them, HierSE vectors.

The 1000 ImageNet-1k classes are WordNet noun synsets, so an ImageNet classifier's
probabilities can be summed up the hierarchy: the probability that a photo shows an "animal"
is the mass of the 398 ImageNet classes under animal.n.01. Summing favours big subtrees (any
photo puts a little mass on each of 398 classes), so the sum is divided by the subtree size
raised to an exponent `alpha` (0: plain mass, 1: the mean), chosen by measurement
(datasets/fit_zeroshot.py).

Sense choice: a word's noun senses come from WordNet (plural folded: "flowers" -> flower);
among them the one whose lemmas, gloss and hypernyms lie nearest in word-vector space to the
word's own hashtags wins ("fish" with #aquarium #sealife -> the animal, not the food), earlier
(more frequent) senses breaking near-ties. A word with no noun sense ("selfie") or none with
ImageNet classes beneath ("sky", "night") has no hierarchy evidence and falls back to the
word-vector path.

HierSE (Li et al., SIGIR 2015): a label's vector is its own vector averaged with its WordNet
ancestors' vectors, weighted decay**depth, for the ImageNet names and the target words alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hashtag_workbench.core.linalg import unit
from hashtag_workbench.core.wordnet import WordNet

RANK_PENALTY = 0.1     # per sense rank: frequent senses win unless the hashtags clearly point elsewhere
# A hashtag is about a photo, so a sense something can be a photo of (ImageNet classes beneath it) is preferred
# over a more frequent abstract one ("castle": the fortress, not "a stately mansion") unless the tags disagree.
PICTURABLE_BONUS = 0.15
_STOP = frozenset({"a", "an", "the", "of", "or", "and", "in", "on", "to", "for", "by", "with", "as", "from",
                   "that", "which", "is", "are", "its", "their", "any"})


@dataclass
class WordSenses:
    word: str
    senses: list[int]        # every noun sense (synset rows), most frequent first
    chosen: int | None       # the sense used (None: the word is not a WordNet noun)
    classes: list[int]       # ImageNet class indices under the chosen sense

    @property
    def has_hierarchy(self) -> bool:
        return bool(self.classes)

    def describe(self, wn: WordNet) -> dict:
        return {"word": self.word, "sense": wn.wnid(self.chosen) if self.chosen is not None else None,
                "sense_name": wn.names(self.chosen)[0] if self.chosen is not None else None,
                "gloss": wn.glosses[self.chosen] if self.chosen is not None else None,
                "n_senses": len(self.senses), "imagenet_classes": len(self.classes)}


def _signature(wn: WordNet, row: int) -> str:
    """What a sense is about, as text: its lemmas, its gloss and its hypernyms' lemmas."""
    words = wn.names(row) + [wn.glosses[row]] + [n for p in wn.parents(row) for n in wn.names(p)]
    return " ".join(t for t in re.findall(r"[a-z]+", " ".join(words).lower()) if t not in _STOP)


def choose_sense(wn: WordNet, word: str, hashtags: list[str], encoder=None) -> WordSenses:
    """The word's sense nearest its hashtags (first sense without an encoder or hashtags)."""
    senses = wn.senses(word)
    if not senses:
        return WordSenses(word, [], None, [])
    context = [t for t in hashtags if t.lower() != word.lower()]
    under = [wn.classes_under(r) for r in senses]
    score = PICTURABLE_BONUS * np.array([bool(u) for u in under]) - RANK_PENALTY * np.arange(len(senses))
    if encoder is not None and context and len(senses) > 1:
        cv, cm = encoder.encode(context)
        sv, sm = encoder.encode([_signature(wn, r) for r in senses])
        if cm.any() and sm.any():
            score = score + np.where(sm, unit(sv) @ unit(unit(cv[cm]).mean(axis=0)), -np.inf)
    best = int(np.argmax(score))
    return WordSenses(word, senses, senses[best], under[best])


def word_senses(wn: WordNet, words: list[str], hashtags: dict[str, list[str]] | None = None,
                encoder=None) -> list[WordSenses]:
    return [choose_sense(wn, w, (hashtags or {}).get(w, []), encoder) for w in words]


def membership(senses: list[WordSenses], alpha: float, n_classes: int = 1000) -> np.ndarray:
    """(n_classes, n_words): 1 / |subtree|**alpha where a class lies under the word's sense, else 0."""
    m = np.zeros((n_classes, len(senses)), dtype=np.float32)
    for j, s in enumerate(senses):
        if s.classes:
            m[s.classes, j] = 1.0 / len(s.classes) ** float(alpha)
    return m


def hierarchy_scores(probs: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(n, n_words) size-normalised ImageNet mass under each word's sense; 0 for words without classes."""
    return np.asarray(probs, dtype=np.float64) @ member


def _synset_phrase(wn: WordNet, row: int) -> str:
    return wn.names(row)[0]


def hierse_vectors(wn: WordNet, encoder, heads: list[np.ndarray | None], rows: list[int | None],
                   decay: float, max_depth: int = 6) -> np.ndarray:
    """HierSE: each label's own vector (heads[i]) averaged with its synset's ancestors' vectors, weight decay**depth.

    A label with no synset keeps its own vector; one with no own vector is built from its ancestors alone.
    """
    ancestors = [wn.ancestors(r) if r is not None else {} for r in rows]
    needed = sorted({a for anc in ancestors for a, d in anc.items() if 0 < d <= max_depth})
    vecs, mask = encoder.encode([_synset_phrase(wn, a) for a in needed]) if needed else (np.zeros((0, 1)), [])
    table = {a: unit(vecs[i]) for i, a in enumerate(needed) if mask[i]}
    dim = next((len(h) for h in heads if h is not None), vecs.shape[1])
    out = np.zeros((len(rows), dim), dtype=np.float32)
    for i, (head, anc) in enumerate(zip(heads, ancestors)):
        acc = unit(head) if head is not None else np.zeros(dim, dtype=np.float32)
        total = 1.0 if head is not None else 0.0
        for a, d in anc.items():
            if 0 < d <= max_depth and a in table:
                acc = acc + decay ** d * table[a]
                total += decay ** d
        out[i] = acc / total if total else acc
    return out
