"""Model evaluations (per scope) and the predictions recorded for them."""
from __future__ import annotations

import json
from pathlib import Path

from hashtag_workbench.warehouse.db import connect, fetch_dicts, insert_rows


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
        key = {"run_id": run_id, "model_id": model_id, "scope": scope}
        insert_rows(con, "per_word_metrics", _columns(per_word, ("word", "precision", "recall", "support")), key)
        true, pred, n = (list(c) for c in zip(*confusion)) if confusion else ([], [], [])
        insert_rows(con, "confusion", {"true_word": true, "pred_word": pred, "n": n}, key)
        insert_rows(con, "eval_predictions", {**_columns(predictions, ("image_id", "true_word", "pred_word", "prob")),
                                              "top5": [json.dumps(p["top5"]) for p in predictions]}, key)


def _columns(rows: list[dict], names: tuple[str, ...]) -> dict[str, list]:
    return {n: [r[n] for r in rows] for n in names}


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


def add_predictions(home: Path, rows: list[dict]) -> None:
    """rows: run_id, model_id, sha256, top [[word, prob]], hashtags [str]."""
    with connect(home) as con:
        insert_rows(con, "predictions", {**_columns(rows, ("model_id", "sha256")),
                                         "run_id": [r.get("run_id") for r in rows],
                                         "top": [json.dumps(r["top"]) for r in rows],
                                         "hashtags": [json.dumps(r["hashtags"]) for r in rows]})


def count_predictions(home: Path, run_id: int) -> int:
    """How many prediction rows name run `run_id` (e.g. everything a `serve` run recorded)."""
    with connect(home, read_only=True) as con:
        return con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [int(run_id)]).fetchone()[0]
