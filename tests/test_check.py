"""`hashtags check [--repair]`: every kind of damage is found, the safe ones repaired."""
import os
import subprocess
import sys
import time
from pathlib import Path

from hashtag_workbench.jobs.check import run_check
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.check import LOST_FOUND, check_warehouse
from hashtag_workbench.warehouse.curation import decide
from hashtag_workbench.warehouse.db import connect
from hashtag_workbench.warehouse.store import image_relpath, store_files
from tests.conftest import ROOT
from tests.imagefiles import good_photo_bytes


def _ok_rows(home):
    with connect(home, read_only=True) as con:
        return con.execute("SELECT image_id, sha256, path, word, source_path FROM images "
                           "WHERE status = 'ok' ORDER BY image_id").fetchall()


def _kinds(report):
    return sorted(f.kind for f in report.problems)


def test_clean_warehouse_has_no_problems(demo_home):
    result = run_check(demo_home)
    assert result.exit_code == 0 and result.data["files_hashed"] == 32 and result.data["remaining"] == []
    assert "check: no problems (32 files hashed)" in result.text


def _damage(home):
    """One of each kind of damage; returns what the test needs to look at afterwards."""
    rows = _ok_rows(home)
    gone, moved, bad, dup_of = rows[0], rows[1], rows[2], rows[3]
    (home / gone[2]).unlink()                                   # missing file
    old = home / moved[2]                                       # same bytes, other name: adoptable
    new_rel = image_relpath(moved[1], "jpeg")
    old.rename(home / new_rel)
    (home / bad[2]).write_bytes(b"not the photo any more")      # damaged bytes
    stray = good_photo_bytes("animals", 5)                      # a photo nobody points at
    import hashlib
    stray_sha = hashlib.sha256(stray).hexdigest()
    stray_rel = image_relpath(stray_sha, "jpg")
    (home / stray_rel).parent.mkdir(parents=True, exist_ok=True)
    (home / stray_rel).write_bytes(stray)
    tmp = home / "images" / "ab" / ".tmp-k1ll3d"                # a killed write's leftover
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")
    dead = runs.start_run(home, "features", {})
    with connect(home) as con:
        con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", [dead])
        for _ in range(3):
            con.execute("INSERT INTO images (word, origin, source_path, status, error) "
                        "VALUES ('bird', 'import', '/x/bird/broken.jpg', 'failed', 'not an image')")
        con.execute("INSERT INTO images (sha256, path, word, origin, status) VALUES (?, ?, 'fruit', 'import', 'ok')",
                    [dup_of[1], dup_of[2]])
    return dict(gone=gone, moved=moved, new_rel=new_rel, bad=bad, stray_rel=stray_rel, tmp=tmp, dead=dead,
                dup_of=dup_of)


def test_every_kind_of_damage_found_then_repaired(demo_home, tmp_path):
    d = _damage(demo_home)
    found = check_warehouse(demo_home)
    assert _kinds(found) == sorted(["missing_file", "missing_file", "orphan_file", "orphan_file", "temp_file",
                                    "hash_mismatch", "stale_run", "duplicate_failed", "duplicate_ok"])
    assert run_check(demo_home).exit_code == 1               # report only: nothing changed
    assert d["tmp"].exists() and runs.get_run(demo_home, d["dead"])["status"] == "running"

    repaired = run_check(demo_home, repair=True)
    assert repaired.exit_code == 0
    out = repaired.text
    for expected in ("re-attached to the same bytes", "marked failed (the source can be imported",
                     "moved to lost+found/", "deleted", "marked interrupted", "kept the newest",
                     "failed as duplicates", "0 problem(s) remain"):
        assert expected in out, expected
    h = demo_home
    assert runs.get_run(h, d["dead"])["status"] == "interrupted"
    assert not d["tmp"].exists()
    assert (h / LOST_FOUND / Path(d["stray_rel"]).relative_to("images")).is_file()
    assert (h / LOST_FOUND / Path(d["bad"][2]).relative_to("images")).is_file()
    with connect(h, read_only=True) as con:
        status = dict(con.execute("SELECT image_id, status FROM images").fetchall())
        path_moved = con.execute("SELECT path FROM images WHERE image_id = ?", [d["moved"][0]]).fetchone()[0]
        n_broken = con.execute("SELECT count(*) FROM images WHERE source_path = '/x/bird/broken.jpg'").fetchone()[0]
        ok_dups = con.execute("SELECT count(*) FROM images WHERE status = 'ok' AND sha256 = ?",
                              [d["dup_of"][1]]).fetchone()[0]
    assert path_moved == d["new_rel"] and status[d["moved"][0]] == "ok"
    assert status[d["gone"][0]] == "failed" and status[d["bad"][0]] == "failed"
    assert n_broken == 1 and ok_dups == 1
    assert runs.recent_runs(h, 1)[0]["kind"] == "check"     # the repairs are recorded as a run
    assert check_warehouse(h).problems == []


def test_lost_files_come_back_with_the_next_import(tmp_path, home):
    from tests.conftest import small_demo_tree
    tree = small_demo_tree(tmp_path / "tree", words=("bird",), per_word=4)
    import_folder(home, tree)
    row = _ok_rows(home)[0]
    (home / row[2]).unlink()
    assert run_check(home, repair=True).exit_code == 0
    again = import_folder(home, tree)                         # the lost source is tried again
    assert again.get("done") == 1
    assert len(_ok_rows(home)) == 4 and check_warehouse(home).problems == []


def test_curated_duplicates_are_left_for_a_person(demo_home):
    rows = _ok_rows(demo_home)
    with connect(demo_home) as con:
        extra = con.execute("INSERT INTO images (sha256, path, word, origin, status) VALUES (?, ?, 'bird', "
                            "'import', 'ok') RETURNING image_id", [rows[0][1], rows[0][2]]).fetchone()[0]
    decide(demo_home, [extra], "keep")
    assert run_check(demo_home, repair=True).exit_code == 1
    remaining = check_warehouse(demo_home).problems
    assert [f.kind for f in remaining] == ["duplicate_ok"]


def test_files_left_alone_while_a_job_runs(demo_home):
    live = runs.start_run(demo_home, "import-folder", {})      # this process: alive
    stray = demo_home / "images" / "zz" / ".tmp-inflight"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"being written")
    report = check_warehouse(demo_home, repair=True)
    assert stray.exists()
    notes = [f for f in report.findings if not f.problem]
    assert any(f.kind == "live_run" and f"run {live}" in f.detail for f in notes)
    assert any(f.kind == "temp_file" and "left alone while run" in (f.action or "") for f in notes)
    runs.finish_run(demo_home, live, "ok", {})
    assert run_check(demo_home, repair=True).exit_code == 0 and not stray.exists()


def test_reused_pid_is_not_taken_for_the_dead_job(home):
    rid = runs.start_run(home, "train", {})
    with connect(home) as con:  # our own pid, but a different process start: the pid was reused
        con.execute("UPDATE runs SET proc_start = 'other-boot:1' WHERE run_id = ?", [rid])
    assert runs.mark_stale_runs(home) == [rid]


def test_cli_exit_codes_and_json(demo_home):
    (demo_home / _ok_rows(demo_home)[0][2]).unlink()
    env = {**os.environ, "HASHTAG_HOME": str(demo_home)}
    cmd = [sys.executable, "-m", "hashtag_workbench", "check"]
    p1 = subprocess.run(cmd + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p1.returncode == 1 and '"kind": "missing_file"' in p1.stdout
    p2 = subprocess.run(cmd + ["--repair"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert "missing file: image" in p2.stdout and "-> marked failed" in p2.stdout
    assert store_files(demo_home)


def test_dead_writers_temp_files_go_even_while_a_job_runs(demo_home):
    live = runs.start_run(demo_home, "import-folder", {})
    dead_tmp = demo_home / "images" / "ab" / ".tmp-999999999-x1"      # its writer's pid does not exist
    dead_tmp.parent.mkdir(parents=True, exist_ok=True)
    dead_tmp.write_bytes(b"half")
    report = check_warehouse(demo_home, repair=True)
    assert not dead_tmp.exists()
    assert [f.action for f in report.findings if f.kind == "temp_file"] == ["deleted"]
    runs.finish_run(demo_home, live, "ok", {})


def test_orphan_artifacts_of_dead_runs_are_swept_by_the_next_job(demo_home, tmp_path):
    from hashtag_workbench.jobs.runner import job_run
    from hashtag_workbench.warehouse.check import dead_run_artifacts
    dead = runs.start_run(demo_home, "train-bovw", {})
    with connect(demo_home) as con:
        con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", [dead])
    art = demo_home / "models" / str(dead) / "model.joblib"          # saved, never recorded: killed in between
    art.parent.mkdir(parents=True)
    art.write_bytes(b"weights")
    assert [f.kind for f in check_warehouse(demo_home).problems] == ["stale_run", "orphan_artifact"]
    with job_run(demo_home, "stats", {}):                          # any job: marks the run, sweeps its files
        pass
    assert not art.exists() and not art.parent.exists()
    assert dead_run_artifacts(demo_home) == [] and check_warehouse(demo_home).problems == []


def test_process_checks_tell_live_dead_zombie_and_reused():
    from hashtag_workbench.infra.procs import pid_alive, process_start
    me = os.getpid()
    assert pid_alive(me) and pid_alive(me, process_start(me))
    assert not pid_alive(me, "an earlier process")          # same pid, another start: reused
    assert not pid_alive(None) and not pid_alive(999999999)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while pid_alive(child.pid) and time.monotonic() < deadline:  # exited but not reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
