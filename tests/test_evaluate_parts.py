"""evaluate scores models that read stored outputs a part of the photos at a time: the same scores as all at once."""
import numpy as np
import pytest

from hashtag_workbench.core.predictor import ImageBatch, LoadedModel
from hashtag_workbench.core.probe import ProbeConfig, ProbeModel
from hashtag_workbench.jobs import evaluate as ev


def _unreadable(i):
    raise AssertionError(f"a model reading stored features must not decode photo {i}")


@pytest.mark.parametrize("rows", [7, 50, 4096])
def test_scores_in_parts_equal_scores_at_once(monkeypatch, rows):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 8)).astype(np.float32)
    words = ["a", "b", "c"]
    probe = ProbeModel(ProbeConfig(), words).fit_features(feats, [words[i % 3] for i in range(50)])
    model = LoadedModel(1, "linear_probe", "probe", words, probe, ProbeConfig().backbone)
    batch = ImageBatch(50, _unreadable, {ProbeConfig().backbone: (feats, None)})
    monkeypatch.setattr(ev, "SCORE_ROWS", rows)
    for restrict_to in (None, ["c", "a"]):
        parts = ev._scored(model, batch, [], restrict_to, None, "probe")
        np.testing.assert_allclose(parts, model.predict(batch, restrict_to), rtol=0, atol=1e-12)
    assert batch.part(45, 60).n == 5 and batch.part(45, 60).known[ProbeConfig().backbone][0].base is not None


def test_zero_shot_models_are_evaluated_first():
    recs = [{"kind": "bovw_svm"}, {"kind": "conse"}, {"kind": "finetune"}, {"kind": "fused"}, {"kind": "gone"}]
    assert [r["kind"] for r in sorted(recs, key=ev._zero_shot_first)] == ["conse", "fused", "bovw_svm", "finetune",
                                                                          "gone"]
