"""ConSE arithmetic on a hand-computed example, the variants, and word-vector loading."""
from __future__ import annotations

import numpy as np
import pytest

from hashtag_workbench.core.conse import ConSEConfig, ConSEError, ConSEModel, build_conse
from hashtag_workbench.core.wordvectors import KeyedVectorsEncoder, WordVectorsError, load_word2vec, tokens


class DictEncoder:
    """A real phrase encoder over a hand-written word table (mean of known words)."""
    name, spec = "table", "table"

    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        self.dim = len(next(iter(self.table.values())))

    def encode(self, phrases):
        out = np.zeros((len(phrases), self.dim), np.float32)
        mask = np.zeros(len(phrases), bool)
        for i, p in enumerate(phrases):
            vs = [self.table[t.lower()] for t in tokens(p) if t.lower() in self.table]
            if vs:
                out[i], mask[i] = np.mean(vs, axis=0), True
        return out, mask


TABLE = {"tabby": [1, 0], "cat": [1, 1], "tiger": [0, 1], "pot": [-1, 0], "dog": [0.9, 0.1], "beach": [-1, 1]}
NAMES = ["tabby cat", "tiger", "pot", "zzzunknown"]   # 'tabby cat' averages to [1, 0.5]; the last has no vector


def test_plain_conse_matches_hand_computation():
    model = build_conse(ConSEConfig(top_t=2), DictEncoder(TABLE), NAMES, ["dog", "beach"])
    assert model.report["imagenet_names_dropped"] == ["zzzunknown"]
    assert list(model.kept) == [0, 1, 2]
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))       # softmax gives back these probabilities
    # top-2 among names with vectors: tabby cat 0.5, tiger 0.3 -> renormalised 0.625, 0.375
    w = model.name_weights(logits)
    np.testing.assert_allclose(w, [[0.625, 0.375, 0.0]], atol=1e-9)
    # f = 0.625 * [1, 0.5] + 0.375 * [0, 1] = [0.625, 0.6875]
    np.testing.assert_allclose(model.embed(logits), [[0.625, 0.6875]], atol=1e-6)
    f = np.array([0.625, 0.6875])
    dog, beach = np.array([0.9, 0.1]), np.array([-1.0, 1.0])
    cos = [f @ dog / np.linalg.norm(f) / np.linalg.norm(dog), f @ beach / np.linalg.norm(f) / np.linalg.norm(beach)]
    np.testing.assert_allclose(model.similarities(logits), [cos], atol=1e-6)
    assert model.predict_logits(logits)[0].argmax() == 0          # dog
    np.testing.assert_allclose(model.predict_logits(logits).sum(), 1.0)


def test_centring_and_temperature_change_the_arithmetic_as_documented():
    enc = DictEncoder(TABLE)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    centred = build_conse(ConSEConfig(top_t=2, centre=True), enc, NAMES, ["dog", "beach"])
    mu = np.mean([[1, 0.5], [0, 1], [-1, 0]], axis=0)
    np.testing.assert_allclose(centred.embed(logits), [[0.625, 0.6875] - mu], atol=1e-6)
    warm = build_conse(ConSEConfig(temperature=2.0), enc, NAMES, ["dog", "beach"])
    p = np.array([0.5, 0.3, 0.15]) ** 0.5                         # softmax(log p / 2) over the kept names
    np.testing.assert_allclose(warm.name_weights(logits), [p / p.sum()], atol=1e-9)


def test_expansion_averages_word_with_its_hashtag_words():
    enc = DictEncoder(TABLE)
    m = build_conse(ConSEConfig(expand=True, expand_k=2), enc, NAMES, ["dog", "beach"],
                    hashtags={"dog": ["dog", "cat", "nosuchtag", "tiger"]})
    u = lambda v: np.asarray(v) / np.linalg.norm(v)  # noqa: E731
    expected = (u([0.9, 0.1]) + (u([1, 1]) + u([0, 1])) / 2) / 2
    np.testing.assert_allclose(m.targets[0], expected, atol=1e-6)
    assert m.report["expansions"] == {"dog": ["cat", "tiger"]}


def test_targets_without_vectors_are_dropped_and_bad_inputs_refused(tmp_path):
    m = build_conse(ConSEConfig(), DictEncoder(TABLE), NAMES, ["dog", "beach", "qqq"])
    assert m.classes == ["dog", "beach"] and m.report["targets_dropped"] == ["qqq"]
    with pytest.raises(ConSEError, match="1000|4 ImageNet logits"):
        m.name_weights(np.zeros((1, 7)))
    with pytest.raises(ConSEError, match="top_t"):
        ConSEConfig(top_t=0)
    m.save(tmp_path / "c.npz")
    back = ConSEModel.load(tmp_path / "c.npz", {**ConSEConfig().__dict__, "word_vectors_name": "x"}, m.classes)
    logits = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_allclose(back.predict_logits(logits), m.predict_logits(logits))


def test_word2vec_text_and_binary_files_load(tmp_path):
    from gensim.models import KeyedVectors
    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["dog", "Beach", "New_York"], np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    kv.save_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    kv.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    for name in ("v.txt", "v.bin"):
        enc = load_word2vec(tmp_path / name)
        vecs, mask = enc.encode(["dog", "beach", "New York", "qqq"])
        assert mask.tolist() == [True, True, True, False]
        np.testing.assert_allclose(vecs[2], [0, 0, 1])
    (tmp_path / "bad.txt").write_text("hello world\n")
    with pytest.raises(WordVectorsError, match="first line"):
        load_word2vec(tmp_path / "bad.txt")
    with pytest.raises(WordVectorsError, match="not found"):
        load_word2vec(tmp_path / "missing.bin")


def test_bundled_glove_covers_most_imagenet_names():
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.wordvectors import load_glove
    enc = load_glove()
    assert isinstance(enc, KeyedVectorsEncoder) and enc.dim == 50
    _, mask = enc.encode(imagenet_classes())
    assert 950 <= mask.sum() < 1000          # a few rare breed names have no GloVe vector


def test_hierse_label_vectors_mix_in_wordnet_ancestors():
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.linalg import unit
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    enc, names, words = cached_word_vectors("spacy"), imagenet_classes(), ["dog", "cat", "sky", "selfie"]
    base = dict(word_vectors="spacy", centre=True, temperature=3.0)
    plain = build_conse(ConSEConfig(**base), enc, names, words)
    hier = build_conse(ConSEConfig(**base, hierse=0.5), enc, names, words)
    assert len(hier.kept) == 1000 > len(plain.kept)      # a name without a vector is embedded through its ancestors
    cos = np.sum(unit(hier.targets) * unit(plain.targets), axis=1)
    assert 0.5 < cos[0] < 0.999                           # dog: its own vector plus canine, carnivore, mammal, ...
    assert cos[3] > 0.9999                                # selfie has no WordNet noun: its own vector only
    logits = np.zeros((1, 1000))
    logits[0, names.index("golden retriever")] = 12.0
    assert hier.classes[int(np.argmax(hier.predict_logits(logits)))] == "dog"
    assert hier.config.variant.endswith("hierse0.5")
    with pytest.raises(ConSEError, match="hierse"):
        ConSEConfig(hierse=1.5)
