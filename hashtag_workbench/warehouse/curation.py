"""Curation decisions on stored images: keep, reject or relabel, logged and undoable.

Every decision is a row in `curation_log`; the view `image_labels` applies the
latest standing (not undone) decision per image. Undo never deletes: it marks
rows `undone`, so the log keeps the whole history.

Each call of `decide` is one *action* (`curation_actions`): a bulk reject of three images is one
action and one undo step. Actions remember the dashboard session and page that made them, so a
page undoes what it did, newest first. Events sent by the dashboard's grid (a key press or click,
each with an id made in the browser) go through `apply_events`: an event id is recorded in
`curation_events` in the same transaction as its decision, so a resent event is applied at most once.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts

DECISIONS = ("keep", "reject", "relabel")
EVENT_KINDS = DECISIONS + ("undo",)
MAX_EVENT_ID = 100


def _ids(image_ids: Iterable[int]) -> list[int]:
    out: list[int] = []
    for i in image_ids:
        try:
            v = int(i)
        except (TypeError, ValueError):
            raise InputError(f"image ids must be integers, got {i!r}") from None
        if v not in out:
            out.append(v)
    return out


def _check(decision: str, new_word: str | None) -> None:
    if decision not in DECISIONS:
        raise InputError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    if decision == "relabel":
        if not new_word:
            raise InputError("relabel needs the word to relabel to (new_word)")
    elif new_word is not None:
        raise InputError(f"new_word only goes with relabel, not with {decision!r}")


def _decide(con, ids: list[int], decision: str, new_word: str | None, note: str | None,
            session: str | None, page: str | None) -> tuple[int, list[int]]:
    """Write one action inside the caller's transaction; ValueError (nothing written) on bad input."""
    if decision == "relabel" and not con.execute("SELECT 1 FROM words WHERE word = ?", [new_word]).fetchone():
        raise InputError(f"unknown word {new_word!r}: add it on the Words page first")
    current = dict(con.execute(
        "SELECT image_id, word FROM image_labels WHERE image_id IN (SELECT unnest(?))", [ids]).fetchall())
    missing = [i for i in ids if i not in current]
    if missing:
        raise InputError(f"no stored image with id {', '.join(map(str, missing[:10]))}")
    action_id = con.execute(
        "INSERT INTO curation_actions (session_id, page, decision, new_word, n_images) VALUES (?, ?, ?, ?, ?) "
        "RETURNING action_id", [session, page, decision, new_word, len(ids)]).fetchone()[0]
    out = []
    for i in ids:
        out.append(con.execute(
            "INSERT INTO curation_log (image_id, decision, old_word, new_word, note, action_id) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING decision_id",
            # new_word is the label after the decision
            [i, decision, current[i], new_word if decision == "relabel" else current[i], note, action_id],
        ).fetchone()[0])
    return action_id, out


def decide(home: Path | str, image_ids: Iterable[int], decision: str, new_word: str | None = None,
           *, note: str | None = None, session: str | None = None, page: str | None = None) -> list[int]:
    """Record one decision for many images at once (one action); returns the new decision ids (in input order).

    `decision` is keep, reject or relabel; relabel needs `new_word`, a known word.
    Unknown image ids raise ValueError and nothing is written. `session` and `page` name the
    dashboard tab and page that acted, for `session_actions` and `undo_last_action`.
    """
    _check(decision, new_word)
    ids = _ids(image_ids)
    if not ids:
        return []
    with connect(home) as con:
        return _decide(con, ids, decision, new_word, note, session, page)[1]


def _labels(con, ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = con.execute("SELECT image_id, word, review FROM image_labels WHERE image_id IN (SELECT unnest(?))",
                       [ids]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _restored(before: tuple[str, str], after: tuple[str, str] | None, iid: int) -> str:
    """'#137 bird: reject → unreviewed' (or '#137 music: relabel → bird, unreviewed')."""
    if after is None:
        return f"#{iid} {before[0]}: {before[1]} → no longer stored"
    if after[0] == before[0]:
        return f"#{iid} {before[0]}: {before[1]} → {after[1]}"
    return f"#{iid} {before[0]}: {before[1]} → {after[0]}, {after[1]}"


def _undo_action(con, action_id: int) -> list[str]:
    """Mark one action's standing decisions undone; returns what each image went back to."""
    ids = [r[0] for r in con.execute(
        "SELECT DISTINCT image_id FROM curation_log WHERE action_id = ? AND NOT undone ORDER BY 1",
        [action_id]).fetchall()]
    before = _labels(con, ids)
    con.execute("UPDATE curation_log SET undone = TRUE, undone_at = current_timestamp "
                "WHERE action_id = ? AND NOT undone", [action_id])
    con.execute("UPDATE curation_actions SET undone_at = current_timestamp WHERE action_id = ?", [action_id])
    after = _labels(con, ids)
    return [_restored(before[i], after.get(i), i) for i in ids if i in before]


def undo_action(home: Path | str, action_id: int) -> list[str]:
    """Undo one whole action (every image it touched); returns lines like '#137 bird: reject → unreviewed'.

    An action already undone returns []; an unknown id raises ValueError.
    """
    with connect(home) as con:
        row = con.execute("SELECT undone_at FROM curation_actions WHERE action_id = ?", [int(action_id)]).fetchone()
        if row is None:
            raise InputError(f"no curation action with id {action_id}")
        return [] if row[0] is not None else _undo_action(con, int(action_id))


def _last_action(con, session: str | None, page: str | None) -> int | None:
    row = con.execute("SELECT max(action_id) FROM curation_actions WHERE undone_at IS NULL "
                      "AND session_id IS NOT DISTINCT FROM ? AND page IS NOT DISTINCT FROM ?",
                      [session, page]).fetchone()
    return row[0] if row else None


def undo_last_action(home: Path | str, session: str | None, page: str | None) -> list[str]:
    """Undo the newest standing action this session made on this page; [] when there is none."""
    with connect(home) as con:
        last = _last_action(con, session, page)
        return [] if last is None else _undo_action(con, last)


def session_actions(home: Path | str, session: str | None, page: str | None, limit: int = 20) -> list[dict]:
    """The actions this session made on this page, newest first: action_id, decision, new_word, n_images,
    created_at, undone_at, image_ids (up to 20), words (the labels they had before, e.g. ['bird'])."""
    sql = """SELECT a.action_id, a.decision, a.new_word, a.n_images, a.created_at, a.undone_at,
                    list(c.image_id ORDER BY c.decision_id)[1:20] AS image_ids,
                    list(DISTINCT c.old_word) AS words
             FROM curation_actions a JOIN curation_log c ON c.action_id = a.action_id
             WHERE a.session_id IS NOT DISTINCT FROM ? AND a.page IS NOT DISTINCT FROM ?
             GROUP BY ALL ORDER BY a.action_id DESC LIMIT ?"""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql, [session, page, int(limit)]))


def describe_action(a: dict) -> str:
    """'reject #12, #15, #19 (bird)' / 'relabel #4 (fruit) to music'."""
    ids = ", ".join(f"#{i}" for i in a["image_ids"][:6]) + (" ..." if a["n_images"] > 6 else "")
    words = ", ".join(sorted(w for w in a["words"] if w))
    to = f" to {a['new_word']}" if a["decision"] == "relabel" else ""
    return f"{a['decision']} {ids} ({words}){to}"


def _parse_event(e) -> tuple[str, str, list[int], str | None]:
    """(event_id, kind, image ids, relabel word) of one grid event; ValueError says what is wrong."""
    if not isinstance(e, dict):
        raise InputError(f"an event must be a mapping, got {type(e).__name__}")
    eid, kind = e.get("id"), e.get("kind")
    if not isinstance(eid, str) or not 0 < len(eid) <= MAX_EVENT_ID:
        raise InputError(f"an event needs an id of 1-{MAX_EVENT_ID} characters, got {eid!r}")
    if kind not in EVENT_KINDS:
        raise InputError(f"event kind must be one of {', '.join(EVENT_KINDS)}; got {kind!r}")
    ids = _ids(e.get("ids") or [])
    if kind != "undo" and not ids:
        raise InputError(f"a {kind} event names no image")
    return eid, kind, ids, (e.get("word") or None) if kind == "relabel" else None


def _apply_one(con, kind: str, ids: list[int], word: str | None, session: str | None,
               page: str | None) -> tuple[str, str, int | None]:
    """(status, message, action id) of one new event, written inside the caller's transaction."""
    if kind == "undo":
        last = _last_action(con, session, page)
        if last is None:
            return "not_applied", "Nothing to undo: every action made on this page is undone already.", None
        return "applied", "Undid " + "; ".join(_undo_action(con, last)) + ".", last
    shown = ", ".join(f"#{i}" for i in ids[:8]) + (" ..." if len(ids) > 8 else "")
    try:
        _check(kind, word)
        action_id, _ = _decide(con, ids, kind, word, None, session, page)
    except ValueError as exc:
        return "not_applied", f"Not applied: {kind} {shown}: {exc} (deleted or changed meanwhile?).", None
    verb = {"keep": "Kept", "reject": "Rejected", "relabel": f"Relabelled to {word!r}:"}[kind]
    return "applied", f"{verb} {shown}.", action_id


def apply_events(home: Path | str, events: list, *, session: str | None, page: str | None) -> list[dict]:
    """Apply grid events in order, each event id at most once ever (across reruns, reconnects, servers).

    events: [{id, kind (keep|reject|relabel|undo), ids: [image ids], word (relabel target)}].
    Returns one result per event: {event_id, status (applied | not_applied), message, new} where
    new is True when this call applied or refused it (False: an earlier call did). All new events
    are written in one transaction: a failure (a lock) writes none of them, so they can be resent.
    """
    results: list[dict] = []
    with connect(home) as con:
        for e in events:
            try:
                eid, kind, ids, word = _parse_event(e)
            except ValueError as exc:
                eid = e.get("id") if isinstance(e, dict) else None
                results.append({"event_id": eid, "status": "not_applied", "message": f"Not applied: {exc}.",
                                "new": True})
                continue
            old = con.execute("SELECT status, message FROM curation_events WHERE event_id = ?", [eid]).fetchone()
            if old is not None:
                results.append({"event_id": eid, "status": old[0], "message": old[1], "new": False})
                continue
            status, message, action_id = _apply_one(con, kind, ids, word, session, page)
            con.execute("INSERT INTO curation_events (event_id, session_id, page, kind, image_ids, action_id, "
                        "status, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [eid, session, page, kind, ids, action_id, status, message])
            results.append({"event_id": eid, "status": status, "message": message, "new": True})
    return results


def undo(home: Path | str, decision_ids: Iterable[int] | None = None, *, last: int | None = None) -> list[int]:
    """Undo decisions by id, or the `last` N standing ones; returns the ids actually undone."""
    if (decision_ids is None) == (last is None):
        raise InputError("give either decision_ids or last=N")
    with connect(home) as con:
        if last is not None:
            if last < 1:
                return []
            ids = [r[0] for r in con.execute(
                "SELECT decision_id FROM curation_log WHERE NOT undone ORDER BY decision_id DESC LIMIT ?",
                [int(last)]).fetchall()]
        else:
            wanted = _ids(decision_ids)
            if not wanted:
                return []
            ids = [r[0] for r in con.execute(
                "SELECT decision_id FROM curation_log WHERE NOT undone AND decision_id IN (SELECT unnest(?)) "
                "ORDER BY decision_id", [wanted]).fetchall()]
        for d in ids:
            con.execute("UPDATE curation_log SET undone = TRUE, undone_at = current_timestamp "
                        "WHERE decision_id = ?", [d])
        return ids


def recent_decisions(home: Path | str, limit: int = 20, *, include_undone: bool = False) -> list[dict]:
    """The latest decisions, newest first."""
    sql = ("SELECT decision_id, image_id, decision, old_word, new_word, decided_at, undone, undone_at, note "
           "FROM curation_log {} ORDER BY decision_id DESC LIMIT ?")
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql.format("" if include_undone else "WHERE NOT undone"), [int(limit)]))


def current_labels(home: Path | str, image_ids: Iterable[int]) -> dict[int, dict]:
    """image_id -> {word, original_word, review} as curation leaves it now."""
    ids = _ids(image_ids)
    if not ids:
        return {}
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT image_id, word, original_word, review FROM image_labels "
                           "WHERE image_id IN (SELECT unnest(?))", [ids]).fetchall()
    return {r[0]: {"word": r[1], "original_word": r[2], "review": r[3]} for r in rows}
