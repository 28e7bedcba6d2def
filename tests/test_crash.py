"""Crash safety: each long job is killed with SIGKILL at chosen points, then re-run.

The kill is real (the process sends itself SIGKILL at a crash point named in
HASHTAG_CRASH_AFTER, see warehouse/faults.py), so nothing gets to clean up. After
each kill the warehouse must hold nothing twice and no row without its file; after
the re-run every run has a final status, the work is complete, and `check` finds
no problem at all.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs.import_folder import import_folder
from tests.conftest import DEMO_PHOTOS, ROOT
from tests.imagefiles import truncated_jpeg_bytes, write
from warehouse import runs
from warehouse.check import check_warehouse
from warehouse.db import connect

KILLED = -signal.SIGKILL
KILL_POINTS_TRIED: dict[str, list[str]] = {}


def run_until_killed(code: str, home: Path, crash: str, *, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that kills itself at `crash`; assert it really died there."""
    env = {**os.environ, "HASHTAG_HOME": str(home), "HASHTAG_CRASH_AFTER": crash, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == KILLED, (f"expected a SIGKILL at {crash}, got exit {proc.returncode}:\n"
                                       + proc.stderr[-3000:])
    return proc


def assert_sound_after_kill(home: Path, kind: str) -> int:
    """What must hold right after a kill: nothing twice, no row without its file, the run left 'running'."""
    report = check_warehouse(home)
    bad = [f.line() for f in report.problems
           if f.kind in ("missing_file", "hash_mismatch", "duplicate_ok", "duplicate_failed", "missing_artifact")]
    assert not bad, bad
    killed = runs.recent_runs(home, 1, kind=kind)[0]
    assert killed["status"] == "running"
    assert any(f.kind == "stale_run" for f in report.problems)  # check sees the dead run
    return killed["run_id"]


def assert_consistent(home: Path) -> None:
    problems = [f.line() for f in check_warehouse(home).problems]
    assert problems == [], problems
    with connect(home, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE status NOT IN ('ok', 'interrupted', 'failed')"
                           ).fetchone()[0] == 0


# ----------------------------------------------------------------------------------------- import

IMPORT_CODE = """
    from pathlib import Path
    import os
    from jobs.import_folder import import_folder
    import_folder(Path(os.environ["HASHTAG_HOME"]), Path({tree!r}))
"""

# 40 items: 38 photos and 2 bad files; the import writes rows in batches of 32.
IMPORT_KILL_POINTS = [
    "import-folder:item:1",          # before anything is stored
    "import-folder:stored:1",        # first file in the store, its row not written
    "store:before-rename:5",         # a half-written temp file in the store
    "import-folder:item:20",         # mid-batch: 19 files stored, none of their rows
    "db:before-commit:4",            # inside the first batch's write transaction
    "import-folder:flushed:1",       # batch committed, counts not yet saved
    "import-folder:before-finish:1",  # all work done, run not closed
]


@pytest.fixture(scope="module")
def import_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "tree"
    for word in ("animals", "bird", "fruit"):
        files = sorted((DEMO_PHOTOS / word).glob("*.jpg"))[:13]
        for f in files[: 13 if word != "fruit" else 12]:
            write(root / word / f.name, f.read_bytes())
    write(root / "bird" / "zz-notes.jpg", b"not a photo at all\n")
    write(root / "fruit" / "zz-half.jpg", truncated_jpeg_bytes())
    return root


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """A migrated warehouse holding the vocabulary (copied per test: seeding takes seconds)."""
    from jobs.common import ensure_ready
    h = tmp_path_factory.mktemp("seeded") / "home"
    ensure_ready(h)
    return h


@pytest.mark.slow
@pytest.mark.parametrize("crash", IMPORT_KILL_POINTS)
def test_import_killed_then_rerun(crash, import_tree, seeded_template, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(seeded_template, home)
    run_until_killed(IMPORT_CODE.format(tree=str(import_tree)), home, crash)
    KILL_POINTS_TRIED.setdefault("import-folder", []).append(crash)
    killed = assert_sound_after_kill(home, "import-folder")

    counts = import_folder(home, import_tree)
    assert runs.get_run(home, killed)["status"] == "interrupted"
    assert runs.get_run(home, counts["run_id"])["status"] == "ok"
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT source_path, status, sha256 FROM images").fetchall()
    good = {str(p.resolve()) for p in import_tree.rglob("*.jpg") if not p.name.startswith("zz-")}
    ok = [r for r in rows if r[1] == "ok"]
    failed = [r for r in rows if r[1] == "failed"]
    assert {r[0] for r in ok} == good and len(ok) == len(good) == 38      # nothing lost, nothing twice
    assert len({r[2] for r in ok}) == 38
    assert sorted(Path(r[0]).name for r in failed) == ["zz-half.jpg", "zz-notes.jpg"]
    files = [p for p in (home / "images").rglob("*") if p.is_file()]
    assert len(files) == 38                                               # no orphans, no temp files
    assert_consistent(home)


# --------------------------------------------------------------------------------------- features

FEATURES_CODE = """
    import os
    from pathlib import Path
    import warehouse.features as whf
    from warehouse.faults import crash_point
    _write_pca_fit = whf.write_pca_fit

    def write_pca_fit(*a, **k):  # a crash point between saving the PCA artifact and recording it
        crash_point("features:write-pca")
        return _write_pca_fit(*a, **k)
    whf.write_pca_fit = write_pca_fit
    import jobs.features as jf
    jf.WRITE_EVERY = 8  # more write transactions on few photos: more places to be killed, quicker
    jf.compute_features(Path(os.environ["HASHTAG_HOME"]), batch_size=8, workers=1, threads=1)
"""


def _kill_when_running(code: str, home: Path, kind: str) -> None:
    """Start `code`, and SIGKILL it as soon as its run is recorded (while it loads its model)."""
    env = {**os.environ, "HASHTAG_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("HASHTAG_CRASH_AFTER", None)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import time
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            recent = runs.recent_runs(home, 1, kind=kind) if (home / "warehouse.duckdb").exists() else []
            if recent and recent[0]["status"] == "running":
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == KILLED, proc.stderr.read().decode()[-3000:]


def _feature_state(home: Path) -> dict:
    with connect(home, read_only=True) as con:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT image_id) FROM features").fetchone()
        fits = con.execute("SELECT run_id, artifact FROM pca_fits").fetchall()
        images = con.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
    assert n == distinct                                  # never two feature rows for one image
    return {"features": n, "fits": fits, "images": images}


@pytest.fixture(scope="module")
def features_template(tmp_path_factory, seeded_template) -> Path:
    """24 imported photos (8 words x 3), no features yet."""
    base = tmp_path_factory.mktemp("feat")
    home = base / "home"
    shutil.copytree(seeded_template, home)
    tree = base / "tree"
    for word_dir in sorted(p for p in DEMO_PHOTOS.iterdir() if p.is_dir())[:8]:
        for f in sorted(word_dir.glob("*.jpg"))[:3]:
            write(tree / word_dir.name / f.name, f.read_bytes())
    import_folder(home, tree)
    return home


@pytest.mark.slow
def test_features_killed_at_six_points_then_completes(features_template, tmp_path):
    """One warehouse, killed again and again: each re-run resumes, the last one completes."""
    from jobs.features import compute_features
    home = tmp_path / "home"
    shutil.copytree(features_template, home)
    assert _feature_state(home)["images"] == 24
    steps = []

    _kill_when_running(FEATURES_CODE, home, "features")          # 1. while loading the model
    steps.append(("at start (model loading)", _feature_state(home)))
    for crash, what in [("features:checkpoint:1", "after the first 8 rows"),
                        ("db:before-commit:4", "inside the next feature write"),
                        ("features:checkpoint:2", "after the last rows, before PCA"),
                        ("features:write-pca:1", "PCA artifact saved, not recorded"),
                        ("features:before-finish:1", "PCA recorded, run not closed")]:
        run_until_killed(FEATURES_CODE, home, crash)
        assert_sound_after_kill(home, "features")
        steps.append((what, _feature_state(home)))
    KILL_POINTS_TRIED["features"] = [s[0] for s in steps]
    got = [s[1]["features"] for s in steps]
    assert got == [0, 8, 8, 24, 24, 24], steps
    assert steps[4][1]["fits"] == [] and len(steps[5][1]["fits"]) == 1

    counts = compute_features(home, batch_size=8, workers=1, threads=1)
    assert counts.get("done", 0) == 0                               # nothing computed twice
    state = _feature_state(home)
    assert state["features"] == 24 and len(state["fits"]) >= 1
    assert all((home / a).is_file() for _, a in state["fits"])
    statuses = [r["status"] for r in runs.recent_runs(home, 20, kind="features")]
    assert statuses[0] == "ok" and statuses[1:] == ["interrupted"] * 6
    assert_consistent(home)                                         # includes: no orphan PCA artifact


# ---------------------------------------------------------------------------------- scrape-images

SCRAPE_CODE = """
    import os
    from pathlib import Path
    from jobs.scrape_images import ScrapeSettings, scrape_images
    from jobs.web import DownloadLimits
    s = ScrapeSettings(per_class=24, workers=2, batch=4, flush_s=0.5, search_delay=0.0, block_backoff=0.01,
                       limits=DownloadLimits(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.01,
                                             deadline=10.0))
    scrape_images(Path(os.environ["HASHTAG_HOME"]), words=["bird"], settings=s)
"""


@pytest.mark.slow
def test_scrape_images_killed_at_six_points_then_completes(seeded_template, tmp_path, monkeypatch):
    from pytest_httpserver import HTTPServer

    from tests.fake_sites import FakeDDG
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    try:
        fake = FakeDDG(srv)
        good = fake.add_photos("b", 24, delay=0.02)
        missing = [fake.url(f"missing{i}.jpg") for i in range(2)]
        fake.set_results("bird", [good[:12] + missing, good[12:]])
        monkeypatch.setenv("HASHTAG_DDG_URL", fake.base)
        home = tmp_path / "home"
        shutil.copytree(seeded_template, home)

        steps = ["at start (searching)"]
        _kill_when_running(SCRAPE_CODE, home, "scrape-images")
        assert_sound_after_kill(home, "scrape-images")
        for crash, what in [("scrape-images:checkpoint:1", "after the first batch of 4"),
                            ("store:before-rename:2", "half-way through storing a photo"),
                            ("db:before-commit:5", "inside a write transaction"),
                            ("scrape-images:checkpoint:2", "after two more batches"),
                            ("scrape-images:before-finish:1", "all stored, run not closed")]:
            run_until_killed(SCRAPE_CODE, home, crash)
            assert_sound_after_kill(home, "scrape-images")
            steps.append(what)
        KILL_POINTS_TRIED["scrape-images"] = steps

        from jobs.scrape_images import ScrapeSettings, scrape_images
        from jobs.web import DownloadLimits
        counts = scrape_images(home, words=["bird"], settings=ScrapeSettings(
            per_class=24, workers=2, search_delay=0.0, block_backoff=0.01,
            limits=DownloadLimits(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.01, deadline=10.0)))
        assert runs.get_run(home, counts["run_id"])["status"] == "ok"
    finally:
        srv.clear()
        srv.stop()
    with connect(home, read_only=True) as con:
        ok = con.execute("SELECT sha256, source_url FROM images WHERE status = 'ok'").fetchall()
        failed = con.execute("SELECT source_url FROM images WHERE status = 'failed'").fetchall()
    assert len(ok) == 24 and len({r[0] for r in ok}) == 24 and {r[1] for r in ok} == set(good)
    assert sorted(r[0] for r in failed) == sorted(missing)           # each permanent failure recorded once
    files = [p for p in (home / "images").rglob("*") if p.is_file()]
    assert len(files) == 24
    statuses = [r["status"] for r in runs.recent_runs(home, 20, kind="scrape-images")]
    assert statuses[0] == "ok" and set(statuses[1:]) == {"interrupted"} and len(statuses) == 7
    assert_consistent(home)
