"""Read queries the dashboard pages need (every one on a short read-only connection).

Scores, flags and duplicate groups: for each image the latest run that judged it
counts, so a job re-run on a few words does not hide the others' results.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts

# The current score and flag per (image, detector): the view of migration 150 (only finished runs count;
# the newest one that scored each image and detector).
_LATEST_SCORES = "SELECT image_id, detector, score, flagged, run_id FROM current_outlier_scores"
# "Flagged", the one rule every page counts by: per image, the latest finished outlier run that scored it
# (per detector); flagged when any detector flagged it, or one given detector ({det}: '' or 'WHERE detector = ?').
_FLAGS = f"""SELECT image_id, bool_or(flagged) AS flagged, list(detector ORDER BY detector) FILTER (WHERE flagged)
                    AS flagged_by
             FROM ({_LATEST_SCORES}) {{det}} GROUP BY image_id"""
FLAG_RULE_ANY = "flagged by any outlier detector (the latest finished run that scored each image)"


def _det_cond(detector: str | None) -> str:
    return "" if detector is None else "WHERE detector = ?"


def flag_rule(detector: str | None) -> str:
    """The rule in words, as both the Overview and Review state it."""
    return FLAG_RULE_ANY if detector is None else \
        f"flagged by the {detector} detector (the latest finished run that scored each image)"


def _rows(con, sql: str, params: list | dict | None = None) -> list[dict]:
    return fetch_dicts(con.execute(sql, params or []))


# ---------------------------------------------------------------- overview

def word_status(home: Path | str, detector: str | None = None) -> list[dict]:
    """Per word, counted by the label an image has now (curation applied):

    labelled = kept_reviewed + unreviewed + rejected (every stored image labelled with the word now);
    kept = labelled and not rejected (reviewed-and-kept plus unreviewed); kept_reviewed = a person
    kept it or relabelled it to this word; flagged = unreviewed and flagged by `detector` (any
    detector when None); collected = ok images collected under the word (before any relabel), so
    the totals of `collected` and `labelled` agree; `stored` is the old name of `collected`.
    """
    sql = f"""
        WITH w AS (SELECT word, active FROM words
                   UNION SELECT DISTINCT word, NULL FROM images
                   WHERE word IS NOT NULL AND word NOT IN (SELECT word FROM words)),
        f AS ({_FLAGS.format(det=_det_cond(detector))}),
        lab AS (SELECT l.word, count(*) AS labelled,
                       count(*) FILTER (WHERE l.review <> 'reject') AS kept,
                       count(*) FILTER (WHERE l.review IN ('keep', 'relabel')) AS kept_reviewed,
                       count(*) FILTER (WHERE l.review = 'unreviewed') AS unreviewed,
                       count(*) FILTER (WHERE l.review = 'reject') AS rejected,
                       count(*) FILTER (WHERE l.review <> 'unreviewed') AS reviewed,
                       count(*) FILTER (WHERE l.review = 'unreviewed' AND f.flagged) AS flagged
                FROM image_labels l LEFT JOIN f USING (image_id) GROUP BY l.word),
        col AS (SELECT word, count(*) FILTER (WHERE status = 'ok') AS stored,
                       count(*) FILTER (WHERE status = 'failed') AS failed
                FROM images GROUP BY word)
        SELECT w.word, w.active, coalesce(col.stored, 0) AS stored, coalesce(col.stored, 0) AS collected,
               coalesce(lab.labelled, 0) AS labelled, coalesce(lab.kept, 0) AS kept,
               coalesce(lab.kept_reviewed, 0) AS kept_reviewed, coalesce(lab.unreviewed, 0) AS unreviewed,
               coalesce(lab.flagged, 0) AS flagged, coalesce(lab.rejected, 0) AS rejected,
               coalesce(lab.reviewed, 0) AS reviewed, coalesce(col.failed, 0) AS failed
        FROM w LEFT JOIN lab ON lab.word = w.word LEFT JOIN col ON col.word = w.word
        ORDER BY stored DESC, w.word"""
    with connect(home, read_only=True) as con:
        return _rows(con, sql, [] if detector is None else [detector])


def pipeline_state(home: Path | str) -> dict:
    """How far the pipeline got: stored images, images with features / outlier scores, models, evaluated models."""
    sql = f"""SELECT (SELECT count(*) FROM image_labels) AS images,
                     (SELECT count(DISTINCT image_id) FROM features
                      WHERE image_id IN (SELECT image_id FROM image_labels)) AS featured,
                     (SELECT count(DISTINCT image_id) FROM ({_LATEST_SCORES})
                      WHERE image_id IN (SELECT image_id FROM image_labels)) AS scored,
                     (SELECT count(*) FROM models) AS models,
                     (SELECT count(DISTINCT model_id) FROM evaluations) AS evaluated"""
    with connect(home, read_only=True) as con:
        return _rows(con, sql)[0]


# ---------------------------------------------------------------- review

def detectors(home: Path | str, word: str | None = None) -> list[str]:
    """Outlier detectors with scores (for one word's images when `word` is given)."""
    with connect(home, read_only=True) as con:
        if word is None:
            return [r[0] for r in con.execute(
                "SELECT DISTINCT detector FROM outlier_scores "
                "WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'ok') ORDER BY 1").fetchall()]
        return [r[0] for r in con.execute(
            "SELECT DISTINCT s.detector FROM outlier_scores s JOIN image_labels l USING (image_id) "
            "WHERE l.word = ? ORDER BY 1", [word]).fetchall()]


REVIEW_FILTERS = ("all", "unreviewed", "flagged", "rejected")


def review_items(home: Path | str, word: str, detector: str | None = None, *, show: str = "all",
                 any_flag: bool = False) -> list[dict]:
    """One word's images for review: flagged first, then by outlier score (highest first).

    Each row: image_id, sha256, path, word, original_word, review, score, flagged,
    group_id / dup_kind (near-duplicate group, if any), title, source_url, width, height, origin,
    source_path, run_id, detector. `show`: all (but rejected), unreviewed, flagged (unreviewed and
    flagged) or rejected. Scores are `detector`'s; flags too, or any detector's with any_flag.
    """
    if show not in REVIEW_FILTERS:
        raise InputError(f"show must be one of {REVIEW_FILTERS}")
    cond = {"all": "l.review <> 'reject'", "unreviewed": "l.review = 'unreviewed'",
            "flagged": "l.review = 'unreviewed' AND coalesce(f.flagged, FALSE)",
            "rejected": "l.review = 'reject'"}[show]
    flags = _FLAGS.format(det="" if any_flag else "WHERE detector = $det")
    # Narrow to the word's images first, so scores and groups are only aggregated for them.
    sql = f"""
        WITH l AS (SELECT * FROM image_labels WHERE word = $word),
        s AS (SELECT image_id, score FROM current_outlier_scores
              WHERE detector = $det AND image_id IN (SELECT image_id FROM l)),
        f AS (SELECT * FROM ({flags}) WHERE image_id IN (SELECT image_id FROM l)),
        d AS (SELECT image_id, min(group_id) AS group_id, min(kind) AS dup_kind FROM current_duplicate_groups
              WHERE image_id IN (SELECT image_id FROM l) GROUP BY image_id)
        SELECT l.image_id, l.sha256, l.path, l.word, l.original_word, l.review,
               s.score, coalesce(f.flagged, FALSE) AS flagged, f.flagged_by, d.group_id, d.dup_kind,
               i.title, i.source_url, i.width, i.height, i.origin, i.source_path, i.run_id, $det AS detector
        FROM l JOIN images i ON i.image_id = l.image_id LEFT JOIN s ON s.image_id = l.image_id
             LEFT JOIN f ON f.image_id = l.image_id LEFT JOIN d ON d.image_id = l.image_id
        WHERE {cond}
        ORDER BY flagged DESC, s.score DESC NULLS LAST, l.image_id"""
    with connect(home, read_only=True) as con:
        return _rows(con, sql, {"word": word, "det": detector or ""})


def flagged_queue(home: Path | str, detector: str | None = None, *, score_detector: str | None = None,
                  words: list[str] | None = None, min_score: float | None = None) -> list[dict]:
    """Every flagged, unreviewed image across words (the count the Overview shows), highest score first.

    Flagged by any detector (detector=None) or by one; `score_detector` gives the score shown,
    ordered and thresholded (default: `detector`); `words` and `min_score` narrow the queue.
    Rows have review_items' columns.
    """
    sdet = score_detector or detector or ""
    sql = f"""
        WITH f AS ({_FLAGS.format(det=_det_cond(detector))}),
        s AS (SELECT image_id, score FROM ({_LATEST_SCORES}) WHERE detector = ?)
        SELECT l.image_id, l.sha256, l.path, l.word, l.original_word, l.review, s.score, TRUE AS flagged,
               f.flagged_by, NULL AS group_id, NULL AS dup_kind, i.title, i.source_url, i.width, i.height,
               i.origin, i.source_path, i.run_id, ? AS detector
        FROM image_labels l JOIN f ON f.image_id = l.image_id AND f.flagged
             JOIN images i ON i.image_id = l.image_id LEFT JOIN s ON s.image_id = l.image_id
        WHERE l.review = 'unreviewed' {"AND l.word IN (SELECT unnest(?))" if words else ""}
              {"AND s.score >= ?" if min_score is not None else ""}
        ORDER BY s.score DESC NULLS LAST, l.word, l.image_id"""
    params: list = ([] if detector is None else [detector]) + [sdet, sdet]
    params += ([list(words)] if words else []) + ([float(min_score)] if min_score is not None else [])
    with connect(home, read_only=True) as con:
        return _rows(con, sql, params)


def images_by_id(home: Path | str, image_ids: list[int]) -> list[dict]:
    """Stored images with current label, in the order given."""
    ids = [int(i) for i in image_ids]
    if not ids:
        return []
    with connect(home, read_only=True) as con:
        rows = _rows(con, """SELECT l.image_id, l.sha256, l.path, l.word, l.original_word, l.review, i.title,
                                    i.source_url
                             FROM image_labels l JOIN images i ON i.image_id = l.image_id
                             WHERE l.image_id IN (SELECT unnest(?))""", [ids])
    by_id = {r["image_id"]: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def image_detail(home: Path | str, image_id: int) -> dict | None:
    """One stored image with its provenance, current label, latest outlier scores and every decision.

    Returns {image_id, sha256, path, word, original_word, review, origin, source_path, source_url,
    page_url, title, query, source, width, height, added_at, run_id, scores: [{detector, score,
    flagged, run_id}], decisions: [{decision_id, decision, old_word, new_word, decided_at, undone}]}.
    """
    with connect(home, read_only=True) as con:
        rows = _rows(con, """SELECT l.image_id, l.sha256, l.path, l.word, l.original_word, l.review, i.origin,
                                    i.source_path, i.source_url, i.page_url, i.title, i.query, i.source,
                                    i.width, i.height, i.added_at, i.run_id
                             FROM image_labels l JOIN images i ON i.image_id = l.image_id
                             WHERE l.image_id = ?""", [int(image_id)])
        if not rows:
            return None
        out = rows[0]
        out["scores"] = _rows(con, f"SELECT detector, score, flagged, run_id FROM ({_LATEST_SCORES}) "
                                   "WHERE image_id = ? ORDER BY detector", [int(image_id)])
        out["decisions"] = _rows(con, "SELECT decision_id, decision, old_word, new_word, decided_at, undone "
                                      "FROM curation_log WHERE image_id = ? ORDER BY decision_id DESC",
                                 [int(image_id)])
    return out


# ---------------------------------------------------------------- words

def word_edits(home: Path | str, limit: int = 50) -> list[dict]:
    with connect(home, read_only=True) as con:
        rows = _rows(con, "SELECT edit_id, edited_at, action, word, detail FROM word_edits "
                          "ORDER BY edit_id DESC LIMIT ?", [int(limit)])
    for r in rows:
        r["detail"] = json.dumps(json.loads(r["detail"])) if r["detail"] else ""
    return rows


def hashtag_table(home: Path | str) -> list[dict]:
    """Per word: hand-made and scraped tags side by side (as '#a #b' strings) with the scrape time."""
    sql = """SELECT w.word, w.active,
                    string_agg('#' || h.tag, ' ' ORDER BY h.rank) FILTER (WHERE h.source = 'hand') AS hand,
                    string_agg('#' || h.tag, ' ' ORDER BY h.rank) FILTER (WHERE h.source = 'scraped') AS scraped,
                    max(h.fetched_at) FILTER (WHERE h.source = 'scraped') AS scraped_at
             FROM words w LEFT JOIN hashtags h ON h.word = w.word
             GROUP BY w.word, w.active ORDER BY w.word"""
    with connect(home, read_only=True) as con:
        return _rows(con, sql)


# ---------------------------------------------------------------- embedding map

def embedding(home: Path | str, *, source: str = "projections") -> dict | None:
    """The latest PCA projection (or raw features with source='features') of every stored image.

    Returns {run_id, backbone, image_ids, X (n x d float32), words, reviews, flagged} or None.
    """
    with connect(home, read_only=True) as con:
        if source == "projections":
            fit = con.execute("SELECT p.run_id, f.backbone FROM (SELECT max(run_id) AS run_id FROM projections) p "
                              "LEFT JOIN pca_fits f ON f.run_id = p.run_id").fetchone()
            if fit is None or fit[0] is None:
                return None
            table, cond, params = "projections", "v.run_id = ?", [fit[0]]
        else:
            fit = con.execute("SELECT max(run_id), arg_max(backbone, run_id) FROM features").fetchone()
            if fit is None or fit[0] is None:
                return None
            table, cond, params = "features", "v.backbone = ?", [fit[1]]
        sql = f"""WITH f AS ({_FLAGS.format(det="")})
                  SELECT v.image_id, v.vec, l.word, l.review, coalesce(f.flagged, FALSE)
                  FROM {table} v JOIN image_labels l ON l.image_id = v.image_id
                  LEFT JOIN f ON f.image_id = v.image_id
                  WHERE {cond} ORDER BY v.image_id"""
        rows = con.execute(sql, params).fetchall()
    if not rows:
        return None
    return {"run_id": fit[0], "backbone": fit[1], "image_ids": [r[0] for r in rows],
            "X": np.asarray([r[1] for r in rows], dtype=np.float32),
            "words": [r[2] for r in rows], "reviews": [r[3] for r in rows], "flagged": [bool(r[4]) for r in rows]}


def embedding_map(home: Path | str, method: str = "pca") -> dict | None:
    """The stored 2-D map (pca | tsne) of the newest PCA fit, with each image's label and flag now.

    Returns {run_id (the features run of the fit), backbone, method, image_ids, xy (n x 2 float32), words,
    reviews, flagged (any detector)} or None when the newest fit has no stored map (an older warehouse).
    """
    sql = f"""WITH fit AS (SELECT run_id, backbone FROM pca_fits ORDER BY run_id DESC LIMIT 1),
              f AS ({_FLAGS.format(det="")})
              SELECT m.image_id, m.x, m.y, l.word, l.review, coalesce(f.flagged, FALSE), fit.run_id, fit.backbone
              FROM embedding_maps m JOIN fit ON m.run_id = fit.run_id
                   JOIN image_labels l ON l.image_id = m.image_id LEFT JOIN f ON f.image_id = m.image_id
              WHERE m.method = ? ORDER BY m.image_id"""
    with connect(home, read_only=True) as con:
        rows = con.execute(sql, [method]).fetchall()
    if not rows:
        return None
    return {"run_id": rows[0][6], "backbone": rows[0][7], "method": method, "image_ids": [r[0] for r in rows],
            "xy": np.asarray([(r[1], r[2]) for r in rows], dtype=np.float32), "words": [r[3] for r in rows],
            "reviews": [r[4] for r in rows], "flagged": [bool(r[5]) for r in rows]}


# ---------------------------------------------------------------- evaluation

def model_comparison(home: Path | str) -> list[dict]:
    """Each model's latest evaluation per scope, newest model first."""
    sql = """WITH e AS (SELECT *, row_number() OVER (PARTITION BY model_id, scope ORDER BY run_id DESC) AS rn
                        FROM evaluations)
             SELECT m.model_id, m.name, m.kind, m.backbone, e.scope, e.n_images, e.n_words, e.top1, e.top5,
                    e.run_id AS eval_run_id, m.created_at
             FROM models m JOIN e ON e.model_id = m.model_id AND e.rn = 1
             ORDER BY m.model_id DESC, e.scope"""
    with connect(home, read_only=True) as con:
        return _rows(con, sql)


def learning_curves(home: Path | str, model_ids: list[int] | None = None) -> list[dict]:
    sql = ("SELECT c.model_id, m.name, c.epoch, c.train_loss, c.val_loss, c.train_acc, c.val_acc, c.seconds "
           "FROM learning_curves c JOIN models m USING (model_id)")
    params: list = []
    if model_ids:
        sql += " WHERE c.model_id IN (SELECT unnest(?))"
        params.append([int(m) for m in model_ids])
    with connect(home, read_only=True) as con:
        return _rows(con, sql + " ORDER BY c.model_id, c.epoch", params)


def confusion(home: Path | str, eval_run_id: int, model_id: int, scope: str) -> list[dict]:
    with connect(home, read_only=True) as con:
        return _rows(con, "SELECT true_word, pred_word, n FROM confusion WHERE run_id = ? AND model_id = ? "
                          "AND scope = ? ORDER BY true_word, pred_word", [eval_run_id, model_id, scope])


def per_word_metrics(home: Path | str, eval_run_id: int, model_id: int, scope: str) -> list[dict]:
    with connect(home, read_only=True) as con:
        return _rows(con, "SELECT word, precision, recall, support FROM per_word_metrics WHERE run_id = ? "
                          "AND model_id = ? AND scope = ? ORDER BY word", [eval_run_id, model_id, scope])


def eval_examples(home: Path | str, eval_run_id: int, model_id: int, scope: str, *,
                  true_word: str | None = None, pred_word: str | None = None,
                  misclassified_only: bool = False, limit: int = 60) -> list[dict]:
    """Evaluated images (with their stored file) for one confusion cell or all mistakes."""
    sql = """SELECT p.image_id, p.true_word, p.pred_word, p.prob, p.top5, i.sha256, i.path, i.title
             FROM eval_predictions p JOIN images i ON i.image_id = p.image_id
             WHERE p.run_id = ? AND p.model_id = ? AND p.scope = ?"""
    params: list = [eval_run_id, model_id, scope]
    if true_word is not None:
        sql += " AND p.true_word = ?"
        params.append(true_word)
    if pred_word is not None:
        sql += " AND p.pred_word = ?"
        params.append(pred_word)
    if misclassified_only:
        sql += " AND p.true_word <> p.pred_word"
    sql += " ORDER BY p.prob DESC NULLS LAST, p.image_id LIMIT ?"
    params.append(int(limit))
    with connect(home, read_only=True) as con:
        rows = _rows(con, sql, params)
    return rows


# ---------------------------------------------------------------- jobs

def running_runs(home: Path | str) -> list[dict]:
    with connect(home, read_only=True) as con:
        return _rows(con, "SELECT run_id, kind, started_at, counts, pid FROM runs WHERE status = 'running' "
                          "ORDER BY run_id DESC")


def runs_since(home: Path | str, run_id_after: int) -> list[dict]:
    """Runs started after a given run id (to find the run a launched job created)."""
    with connect(home, read_only=True) as con:
        return _rows(con, "SELECT run_id, kind, status, counts, started_at, duration_s, error, pid FROM runs "
                          "WHERE run_id > ? ORDER BY run_id", [int(run_id_after)])


def max_run_id(home: Path | str) -> int:
    with connect(home, read_only=True) as con:
        return int(con.execute("SELECT coalesce(max(run_id), 0) FROM runs").fetchone()[0])
