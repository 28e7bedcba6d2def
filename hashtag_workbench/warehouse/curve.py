"""The data-efficiency curve's points: all their SQL."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.warehouse.db import connect, decode_json, fetch_dicts, insert_rows

_COLS = ("method", "per_word", "photos_per_word", "words", "words_with_k", "seeds", "top1", "top5",
         "top1_std", "top5_std", "weight", "model_id", "name", "best")


def save_curve(home: Path | str, run_id: int, points: list[dict]) -> None:
    """Store one curve run's points (replacing any it had) in one transaction."""
    with connect(home) as con:
        con.execute("DELETE FROM curve_points WHERE run_id = ?", [int(run_id)])
        insert_rows(con, "curve_points", {c: [p.get(c, False if c == "best" else None) for p in points]
                                          for c in _COLS}, {"run_id": int(run_id)})


def latest_curve(home: Path | str) -> dict | None:
    """The newest finished curve run: {'run_id', 'config', 'counts', 'finished_at', 'points': [...]}, or None."""
    with connect(home, read_only=True) as con:
        row = con.execute(
            """SELECT r.run_id, r.config, r.counts, r.finished_at FROM runs r
               WHERE r.kind = 'curve' AND r.status = 'ok'
                 AND EXISTS (SELECT 1 FROM curve_points p WHERE p.run_id = r.run_id)
               ORDER BY r.run_id DESC LIMIT 1""").fetchone()
        if row is None:
            return None
        points = fetch_dicts(con.execute(f"SELECT {', '.join(_COLS)} FROM curve_points WHERE run_id = ? "
                                         "ORDER BY method, photos_per_word, model_id", [row[0]]))
    return {"run_id": row[0], "config": decode_json(row[1]), "counts": decode_json(row[2]),
            "finished_at": row[3], "points": points}
