"""Trained models (records, artifacts, learning curves) and which ones answer by default: all their SQL."""
from __future__ import annotations

import json
from pathlib import Path

from hashtag_workbench.core.kinds import SUPERVISED, ZERO_SHOT, kinds_of
from hashtag_workbench.warehouse.db import connect, decode_json, fetch_dicts

MODELS_DIR = "models"
SUPERVISED_KINDS = kinds_of(SUPERVISED)
ZERO_SHOT_KINDS = kinds_of(ZERO_SHOT)


def model_dir(home: Path, model_id: int) -> Path:
    """<data dir>/models/<run_id>/: where a model's artifact and config.json live."""
    return Path(home) / MODELS_DIR / str(int(model_id))


# ---------------------------------------------------------------- images and splits


# ---------------------------------------------------------------- stored features (the fast path)


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
