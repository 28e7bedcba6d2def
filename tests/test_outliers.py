"""Outlier detectors on planted outliers, duplicate grouping, and the outliers job on a real warehouse."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hashtag_workbench.core.duplicates import find_duplicates, phash_hex
from hashtag_workbench.core.outliers import (
    DETECTORS,
    OutliersConfig,
    confident_learning,
    kmeans_sigma,
    knn_distance,
    precision_recall_f1,
    run_detectors,
)
from hashtag_workbench.warehouse import outliers as wh_outliers
from hashtag_workbench.warehouse import runs


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _planted(seed=0, words=4, per_word=40, dim=16):
    """Gaussian clusters per word; 2 far-away points and 2 points of another word planted in each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(words, dim))
    X, labels, far, swapped = [], [], [], []
    for w in range(words):
        X.append(centres[w] + rng.normal(size=(per_word, dim)))
        labels += [f"w{w}"] * per_word
        far += [False] * per_word
        swapped += [False] * per_word
        X.append(centres[w] + rng.normal(scale=4.0, size=(2, dim)) + 8.0 * rng.choice([-1, 1], size=(2, dim)))
        labels += [f"w{w}"] * 2
        far += [True] * 2
        swapped += [False] * 2
        X.append(centres[(w + 1) % words] + rng.normal(size=(2, dim)))
        labels += [f"w{w}"] * 2
        far += [False] * 2
        swapped += [True] * 2
    return np.vstack(X), np.array(labels), np.array(far), np.array(swapped)


def test_kmeans_and_knn_find_far_points():
    X, labels, far, swapped = _planted()
    ordinary = ~far & ~swapped
    for res in (kmeans_sigma(X, labels, k=1, sigma=2.0), knn_distance(X, labels, k=5, sigma=1.5)):
        p, r, f1 = precision_recall_f1(res.flagged, far)
        assert r == 1.0 and p >= 0.5, (res.detector, p, r)
        assert res.scores.shape == (len(X),)
        # every planted far point scores above every ordinary one: the ranking, not only the flags, is right
        assert res.scores[far].min() > res.scores[ordinary].max(), res.detector


def test_confident_learning_finds_swapped_labels():
    X, labels, _, swapped = _planted()
    res = confident_learning(X, labels, folds=5)
    p, r, _ = precision_recall_f1(res.flagged, swapped)
    assert r == 1.0 and p >= 0.7, (p, r)
    # The swapped images are among the most suspicious by score too.
    assert set(np.flatnonzero(swapped)) <= set(np.argsort(-res.scores)[:2 * swapped.sum()])


def test_every_detector_scores_every_image():
    X, labels, far, swapped = _planted(seed=1)
    results = run_detectors(projections=X, features=X, labels=labels)
    assert [r.detector for r in results] == list(DETECTORS)
    for r in results:
        assert r.scores.shape == r.flagged.shape == (len(X),)
        assert np.isfinite(r.scores).all()


def test_detectors_check_their_input():
    X, labels, _, _ = _planted()
    with pytest.raises(ValueError, match="one label per row"):
        kmeans_sigma(X, labels[:-1])
    with pytest.raises(ValueError, match="k must be"):
        kmeans_sigma(X, labels, k=0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        knn_distance(X, labels, sigma=0)
    with pytest.raises(ValueError, match="NaN"):
        knn_distance(np.full((3, 2), np.nan), ["a", "a", "a"])
    with pytest.raises(ValueError, match="unknown detector"):
        run_detectors(projections=X, features=X, labels=labels, config=OutliersConfig(detectors=("magic",)))
    tiny = confident_learning(X[:3], ["a", "a", "b"])
    assert not tiny.flagged.any() and any("only 1 image" in n for n in tiny.notes)


def _jpeg(img: Image.Image, quality=90) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_duplicate_groups_from_hashes_and_features():
    from skimage import data
    cat, coffee, rocket = (Image.fromarray(a) for a in (data.chelsea(), data.coffee(), data.rocket()))
    hashes = [phash_hex(cat), phash_hex(_jpeg(cat.resize((200, 150)), 40)), phash_hex(coffee),
              phash_hex(coffee), phash_hex(rocket), "0" * 16]
    assert bin(int(hashes[0], 16) ^ int(hashes[1], 16)).count("1") <= 6   # bits that differ
    groups = find_duplicates(hashes=hashes, max_hash_distance=6)
    assert [g.members for g in groups] == [[0, 1], [2, 3]] and groups[1].kind == "exact"
    feats = np.eye(6)
    feats[5] = feats[4] + 0.01                        # rocket and the odd hash: same content by features
    groups = find_duplicates(hashes=hashes, features=feats, max_hash_distance=6, min_cosine=0.97)
    assert [g.members for g in groups] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="hex"):
        find_duplicates(hashes=["xyz"])
    with pytest.raises(ValueError, match="one row per hash"):
        find_duplicates(hashes=hashes, features=np.eye(3))


def test_outliers_job_scores_flags_and_groups(demo_home, tmp_path):
    from hashtag_workbench.jobs.features import compute_features
    from hashtag_workbench.jobs.import_folder import import_folder
    from hashtag_workbench.jobs.outliers import NotReady, find_outliers
    from hashtag_workbench.warehouse.images import labelled_images
    from tests.conftest import DEMO_PHOTOS

    with pytest.raises(NotReady, match="hashtags features"):
        find_outliers(demo_home)
    # A re-encoded, resized copy of a stored photo: a near-duplicate the job must group.
    src = sorted((DEMO_PHOTOS / "bird").glob("*.jpg"))[0]
    (tmp_path / "tree" / "bird").mkdir(parents=True)
    Image.open(src).convert("RGB").resize((180, 180)).save(tmp_path / "tree" / "bird" / "copy.jpg", quality=60)
    import_folder(demo_home, tmp_path / "tree")

    compute_features(demo_home, threads=1)
    out = find_outliers(demo_home, k=1, sigma=2.0)
    images = labelled_images(demo_home)
    (latest,) = runs.recent_runs(demo_home, 1, kind="outliers")
    assert latest["run_id"] == out["run_id"] and latest["status"] == "ok"
    assert latest["config"]["k"] == 1 and latest["config"]["sigma"] == 2.0
    for det in DETECTORS:
        rows = wh_outliers.outlier_scores(demo_home, out["run_id"], detector=det)
        assert sorted(r["image_id"] for r in rows) == sorted(im["image_id"] for im in images)
        assert all(r["word"] == r["current_word"] and r["path"] for r in rows)
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    scored = wh_outliers.outlier_scores(demo_home, out["run_id"])
    assert {r["detector"] for r in scored} == set(DETECTORS)
    assert {r["word"] for r in scored} == {"bird", "fruit", "flowers", "music"}
    bird = wh_outliers.outlier_scores(demo_home, out["run_id"], word="bird", detector="knn_cosine")
    assert {r["word"] for r in bird} == {"bird"}

    groups = wh_outliers.duplicate_groups(demo_home, out["run_id"])
    paths = {im["image_id"]: im for im in images}
    copy_id = max(paths)                              # the copy was imported last
    group = next(g for g in groups if copy_id in [m["image_id"] for m in g["members"]])
    assert group["kind"] in ("exact", "near") and len(group["members"]) == 2

    # A second run reuses the stored perceptual hashes and writes its own rows.
    again = find_outliers(demo_home, detectors=["kmeans_2sigma"])
    assert again["hashed_now"] == 0 and again["run_id"] != out["run_id"]
    assert {r["detector"] for r in wh_outliers.outlier_scores(demo_home, again["run_id"])} == {"kmeans_2sigma"}
    assert len(wh_outliers.outlier_scores(demo_home, out["run_id"])) == 3 * len(images)


def test_softmax_and_row_normalisation():
    from hashtag_workbench.core.linalg import l2_rows, softmax
    p = softmax(np.array([[1000.0, 1000.0, -np.inf], [0.0, np.log(3.0), 0.0]]))
    assert np.allclose(p, [[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]])         # no overflow at large logits
    Z = l2_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(Z, [[0.6, 0.8], [0.0, 0.0]])                    # a zero row stays zero, no NaN
