"""Splits, trained models, learning curves, evaluations and predictions: all their SQL."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hashtag_workbench.core.kinds import SUPERVISED, ZERO_SHOT, kinds_of
from hashtag_workbench.warehouse.db import connect, decode_json, fetch_dicts

MODELS_DIR = "models"
SUPERVISED_KINDS = kinds_of(SUPERVISED)
ZERO_SHOT_KINDS = kinds_of(ZERO_SHOT)


def model_dir(home: Path, model_id: int) -> Path:
    """<data dir>/models/<run_id>/: where a model's artifact and config.json live."""
    return Path(home) / MODELS_DIR / str(int(model_id))


# ---------------------------------------------------------------- images and splits

def training_images(home: Path, *, exclude_flagged: bool = False) -> list[dict]:
    """Images usable for training: curated label, active word, not rejected (and not flagged, if asked).

    'flagged' means a detector's current score flags the image (view `flagged_images`, as the Review
    page counts it) and nobody has reviewed it since.
    """
    sql = """
        SELECT l.image_id, l.sha256, l.path, l.word, l.review,
               (f.image_id IS NOT NULL AND l.review = 'unreviewed') AS flagged
        FROM image_labels l
        LEFT JOIN flagged_images f ON f.image_id = l.image_id
        WHERE l.review <> 'reject' AND l.word IN (SELECT word FROM words WHERE active)
        ORDER BY l.image_id"""
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute(sql))
    if exclude_flagged:
        rows = [r for r in rows if not r["flagged"]]
    return rows


def save_split(home: Path, run_id: int, rows: list[tuple[int, str, str]]) -> None:
    """rows: (image_id, word, part)."""
    with connect(home) as con:
        con.execute("DELETE FROM splits WHERE run_id = ?", [run_id])
        con.executemany("INSERT INTO splits (run_id, image_id, word, part) VALUES (?, ?, ?, ?)",
                        [[run_id, int(i), w, p] for i, w, p in rows])


def latest_split_run(home: Path) -> int | None:
    with connect(home, read_only=True) as con:
        return con.execute("SELECT max(run_id) FROM splits").fetchone()[0]


def split_rows(home: Path, run_id: int) -> list[dict]:
    """The split's images with the label they had when it was made, and their stored file."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(
            """SELECT s.image_id, s.word, s.part, i.sha256, i.path FROM splits s
               JOIN images i ON i.image_id = s.image_id WHERE s.run_id = ? ORDER BY s.image_id""", [run_id]))


def all_labelled(home: Path) -> list[dict]:
    """Every stored, non-rejected image of an active word, with its current label (ConSE's 'all' scope)."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("SELECT image_id, word, sha256, path FROM image_labels WHERE review <> 'reject' "
                                 "AND word IN (SELECT word FROM words WHERE active) ORDER BY image_id"))


def unlabelled_pool(home: Path) -> list[dict]:
    """Every stored photo that nobody rejected, without its label: what zero-shot self-training may read."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("SELECT image_id, sha256, path FROM image_labels WHERE review <> 'reject' "
                                 "ORDER BY image_id"))


# ---------------------------------------------------------------- stored features (the fast path)

def stored_features(home: Path, backbone: str, image_ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """image_id -> (penultimate vector, ImageNet logits or None) for the ids the features job has stored."""
    if not image_ids:
        return {}
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT image_id, vec, logits FROM features WHERE backbone = ? "
                           "AND image_id IN (SELECT unnest(?))", [backbone, [int(i) for i in image_ids]]).fetchall()
    return {r[0]: (np.asarray(r[1], dtype=np.float32), None if r[2] is None else np.asarray(r[2], dtype=np.float32))
            for r in rows}


# ---------------------------------------------------------------- models

def add_model(home: Path, *, model_id: int, kind: str, name: str, backbone: str | None, split_run_id: int | None,
              config: dict, classes: list[str], artifact: str | None,
              curve: list[dict] | None = None) -> None:
    """Record a trained model (and its learning curve) in one transaction; model_id is its training run."""
    with connect(home) as con:
        con.execute("""INSERT INTO models (model_id, kind, name, backbone, split_run_id, config, classes, artifact)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    [model_id, kind, name, backbone, split_run_id, json.dumps(config), json.dumps(classes), artifact])
        for row in curve or []:
            con.execute("""INSERT INTO learning_curves (model_id, epoch, train_loss, val_loss, train_acc, val_acc,
                           seconds) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                        [model_id, row["epoch"], row["train_loss"], row.get("val_loss"), row["train_acc"],
                         row.get("val_acc"), row["seconds"]])


def _model_record(home: Path, row: dict) -> dict:
    row["config"] = decode_json(row["config"])
    row["classes"] = decode_json(row["classes"], list)
    row["artifact_path"] = str(Path(home) / row["artifact"]) if row.get("artifact") else None
    return row


_MODEL_COLS = "model_id, kind, name, backbone, split_run_id, config, classes, artifact, created_at"


def get_model(home: Path, model_id: int) -> dict | None:
    """One model's record: config and classes parsed, artifact_path absolute."""
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute(f"SELECT {_MODEL_COLS} FROM models WHERE model_id = ?", [int(model_id)]))
    return _model_record(home, rows[0]) if rows else None


def models(home: Path, *, ids: list[int] | None = None, latest_per_name: bool = False,
           kinds: list[str] | None = None) -> list[dict]:
    """Model records, oldest first; `latest_per_name` keeps each name's newest model only."""
    sql = f"SELECT {_MODEL_COLS} FROM models WHERE true"
    params: list = []
    if ids:
        sql += " AND model_id IN (SELECT unnest(?))"
        params.append([int(i) for i in ids])
    if kinds:
        sql += " AND kind IN (SELECT unnest(?))"
        params.append(list(kinds))
    if latest_per_name:
        sql = (f"SELECT {_MODEL_COLS} FROM (SELECT *, row_number() OVER (PARTITION BY name ORDER BY model_id DESC) "
               f"AS rn FROM ({sql})) WHERE rn = 1")
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute(sql + " ORDER BY model_id", params))
    return [_model_record(home, r) for r in rows]


def model_generation(home: Path) -> tuple[int | None, int | None]:
    """(newest model id, newest evaluation run id): one cheap query that changes whenever a model is
    trained or evaluated, so a server knows when to look again (the API checks it every few seconds)."""
    with connect(home, read_only=True) as con:
        row = con.execute("SELECT (SELECT max(model_id) FROM models), (SELECT max(run_id) FROM evaluations)").fetchone()
    return row[0], row[1]


def learning_curve(home: Path, model_id: int) -> list[dict]:
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("SELECT epoch, train_loss, val_loss, train_acc, val_acc, seconds FROM "
                                 "learning_curves WHERE model_id = ? ORDER BY epoch", [int(model_id)]))


def best_models(home: Path) -> dict[str, dict | None]:
    """The models the Predict page and `predict` use: {'supervised': record|None, 'zero_shot': record|None}.

    Best = highest top-1 in its latest evaluation (val scope; ConSE falls back to 'all');
    models never evaluated rank below evaluated ones, newest first.
    """
    sql = """
        WITH e AS (SELECT model_id, scope, top1,
                          row_number() OVER (PARTITION BY model_id, scope ORDER BY run_id DESC) AS rn
                   FROM evaluations)
        SELECT m.model_id, coalesce(v.top1, a.top1) AS top1
        FROM models m
        LEFT JOIN e v ON v.model_id = m.model_id AND v.scope = 'val' AND v.rn = 1
        LEFT JOIN e a ON a.model_id = m.model_id AND a.scope = 'all' AND a.rn = 1
        WHERE m.kind IN (SELECT unnest(?))
        ORDER BY top1 DESC NULLS LAST, m.model_id DESC LIMIT 1"""
    out: dict[str, dict | None] = {}
    for role, kinds in (("supervised", SUPERVISED_KINDS), ("zero_shot", ZERO_SHOT_KINDS)):
        with connect(home, read_only=True) as con:
            row = con.execute(sql, [list(kinds)]).fetchone()
        out[role] = get_model(home, row[0]) if row else None
    return out


# ---------------------------------------------------------------- evaluations

def save_evaluation(home: Path, *, run_id: int, model_id: int, scope: str, top1: float, top5: float,
                    per_word: list[dict], confusion: list[tuple[str, str, int]], predictions: list[dict],
                    n_words: int | None = None) -> None:
    """One model's evaluation on one scope, all tables in one transaction."""
    with connect(home) as con:
        for table in ("evaluations", "per_word_metrics", "confusion", "eval_predictions"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ? AND model_id = ? AND scope = ?",
                        [run_id, model_id, scope])
        con.execute("INSERT INTO evaluations (run_id, model_id, scope, n_images, top1, top5, n_words) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [run_id, model_id, scope, len(predictions), top1, top5, n_words])
        con.executemany("INSERT INTO per_word_metrics (run_id, model_id, scope, word, precision, recall, support) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [[run_id, model_id, scope, r["word"], r["precision"], r["recall"], r["support"]]
                         for r in per_word])
        con.executemany("INSERT INTO confusion (run_id, model_id, scope, true_word, pred_word, n) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [[run_id, model_id, scope, t, p, n] for t, p, n in confusion])
        con.executemany("INSERT INTO eval_predictions (run_id, model_id, scope, image_id, true_word, pred_word, "
                        "prob, top5) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [[run_id, model_id, scope, p["image_id"], p["true_word"], p["pred_word"], p["prob"],
                          json.dumps(p["top5"])] for p in predictions])


def evaluations(home: Path, run_id: int | None = None) -> list[dict]:
    """Evaluation rows with model names; one evaluate run (default: the latest)."""
    with connect(home, read_only=True) as con:
        if run_id is None:
            run_id = con.execute("SELECT max(run_id) FROM evaluations").fetchone()[0]
        if run_id is None:
            return []
        return fetch_dicts(con.execute(
            """SELECT e.run_id, e.model_id, m.kind, m.name, e.scope, e.n_images,
                      coalesce(e.n_words, json_array_length(m.classes)) AS n_words, e.top1, e.top5
               FROM evaluations e JOIN models m USING (model_id) WHERE e.run_id = ?
               ORDER BY e.scope DESC, e.model_id""", [run_id]))


# ---------------------------------------------------------------- ad-hoc predictions

def add_predictions(home: Path, rows: list[dict]) -> None:
    """rows: run_id, model_id, sha256, top [[word, prob]], hashtags [str]."""
    with connect(home) as con:
        con.executemany("INSERT INTO predictions (run_id, model_id, sha256, top, hashtags) VALUES (?, ?, ?, ?, ?)",
                        [[r.get("run_id"), r["model_id"], r["sha256"], json.dumps(r["top"]), json.dumps(r["hashtags"])]
                         for r in rows])


def count_predictions(home: Path, run_id: int) -> int:
    """How many prediction rows name run `run_id` (e.g. everything a `serve` run recorded)."""
    with connect(home, read_only=True) as con:
        return con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [int(run_id)]).fetchone()[0]
