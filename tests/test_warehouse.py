"""Migrations, runs, vocabulary and words on real DuckDB files."""
import duckdb
import pytest

from hashtag_workbench.core.vocabulary import load_vocabulary
from hashtag_workbench.warehouse import db, runs, words


def _applied_migrations(home) -> list[str]:
    with db.connect(home, read_only=True) as con:   # connecting migrates a new warehouse first
        return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]


def test_fresh_database_gets_every_migration_in_order(home):
    applied = _applied_migrations(home)
    assert applied == [f.name for f in db.migration_files()]
    assert applied[0] == "001_foundation.sql"
    con = duckdb.connect(str(db.db_path(home)), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    for t in ("words", "hashtags", "images", "runs", "curation_log", "features", "models"):
        assert t in tables


def test_migrate_rerun_applies_nothing_and_keeps_data(home):
    words.seed_vocabulary(home, {"dog": ["dog", "puppy"]})
    con = duckdb.connect(str(db.db_path(home)))
    assert db.migrate(con) == []
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(db.migration_files())
    assert con.execute("SELECT count(*) FROM words").fetchone()[0] == 1
    con.close()


def test_failed_migration_rolls_back_with_its_record(home, tmp_path, monkeypatch):
    bad_dir = tmp_path / "migs"
    bad_dir.mkdir()
    (bad_dir / "001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (bad_dir / "002_bad.sql").write_text("CREATE TABLE b (y INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", bad_dir)
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    with pytest.raises(duckdb.Error):
        db.migrate(con)
    names = [r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert names == ["001_ok.sql"]
    assert "a" in tables and "b" not in tables


def test_shipped_vocabulary_has_76_words_with_5_to_10_hashtags():
    vocab = load_vocabulary()
    assert len(vocab) == 76
    for word, tags in vocab.items():
        assert 5 <= len(tags) <= 10, word
        assert all(not t.startswith("#") and " " not in t for t in tags)
    for w in ("dog", "cat", "beach", "sunset", "food", "coffee", "wedding", "car", "flowers", "outfit", "selfie"):
        assert w in vocab


def test_seed_once_then_edits_are_kept(home):
    assert words.seed_vocabulary(home, load_vocabulary()) == 76
    words.set_active(home, "dog", False)
    words.rename_word(home, "cat", "kitty")
    assert words.seed_vocabulary(home, load_vocabulary()) == 0
    listed = {w["word"]: w["active"] for w in words.list_words(home)}
    assert listed["dog"] is False and "kitty" in listed and "cat" not in listed
    tags = words.hashtags_for(home)
    assert tags["kitty"][0] == "cat"
    words.set_hashtags(home, "kitty", ["#meow", "cats", "meow", " "])
    assert words.hashtags_for(home)["kitty"] == ["meow", "cats"]
    with pytest.raises(ValueError, match="exists already"):
        words.rename_word(home, "kitty", "beach")


def test_run_lifecycle_and_stale_runs_marked_interrupted(home):
    rid = runs.start_run(home, "import-folder", {"path": "/x"})
    assert runs.get_run(home, rid)["status"] == "running"
    runs.finish_run(home, rid, "ok", {"done": 3})
    rec = runs.get_run(home, rid)
    assert rec["status"] == "ok" and rec["counts"] == {"done": 3} and rec["config"] == {"path": "/x"}
    assert rec["duration_s"] is not None and rec["duration_s"] >= 0
    dead = runs.start_run(home, "features", {})
    with db.connect(home) as con:  # pretend a kill -9: its pid no longer exists
        con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", [dead])
    assert runs.mark_stale_runs(home) == [dead]
    assert runs.get_run(home, dead)["status"] == "interrupted"


def test_locked_database_waits_then_says_so(home):
    _applied_migrations(home)
    holder = duckdb.connect(str(db.db_path(home)))  # this process holds it; another process would be locked out
    holder.close()
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(db.db_path(home)), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(db.WarehouseLocked, match="locked by another process"), \
                db.connect(home, read_only=True, timeout_s=0.5):
            pass
    finally:
        release.set()
        proc.join(30)
    with db.connect(home, read_only=True, timeout_s=10) as con:  # free again: works
        assert con.execute("SELECT 1").fetchone()[0] == 1


def _hold_lock(path, ready, release):
    con = duckdb.connect(path)
    ready.set()
    release.wait(30)
    con.close()
