"""Crash safety: each long job is killed with SIGKILL at chosen points, then re-run.

The kill is real (the process sends itself SIGKILL at a crash point named in
HASHTAG_CRASH_AFTER, see warehouse/faults.py), so nothing gets to clean up. After
each kill the warehouse must hold nothing twice and no row without its file; after
the re-run every run has a final status, the work is complete, and `check` finds
no problem at all.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse import splits as wh_splits
from hashtag_workbench.warehouse.check import check_warehouse
from hashtag_workbench.warehouse.db import connect
from tests.conftest import DEMO_PHOTOS, ROOT
from tests.imagefiles import truncated_jpeg_bytes, write

KILLED = -signal.SIGKILL
KILL_POINTS_TRIED: dict[str, list[str]] = {}


ZYGOTE_SRC = r"""
import json, os, sys, traceback
for mod in sys.argv[2:]:
    __import__(mod)
for line in sys.stdin:
    req = json.loads(line)
    log = open(req["log"], "w")
    pid = os.fork()
    if pid == 0:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        os.environ.update(req["env"])
        try:
            exec(compile(req["code"], "<job>", "exec"), {"__name__": "__main__"})
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    log.close()
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(json.dumps({"rc": rc}), flush=True)
"""


class Zygote:
    """A process that imports heavy job modules (torch...) once, then forks one fresh child per run.

    Each child is a real, separate process that gets the real SIGKILL; only the seconds
    spent importing are shared. It forks before any model is built, so no threads exist yet.
    """

    def __init__(self, *modules: str, log_dir: Path):
        self.log_dir = log_dir
        self.n = 0
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE_SRC, str(ROOT), *modules], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, code: str, env: dict) -> tuple[int, Path]:
        self.n += 1
        log = self.log_dir / f"child-{self.n}.log"
        self.proc.stdin.write(json.dumps({"code": textwrap.dedent(code), "env": env, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"], log

    def wait(self) -> int:
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the zygote process died")
        return json.loads(line)["rc"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _hashtag_env() -> dict:
    """The test's HASHTAG_* settings (e.g. the fake site's URL), passed on to the job."""
    return {k: v for k, v in os.environ.items() if k.startswith("HASHTAG_")}


def run_until_killed(code: str, home: Path, crash: str, *, timeout: float = 180,
                     zygote: Zygote | None = None) -> str:
    """Run `code` in a separate process that kills itself at `crash`; assert it really died there."""
    env = {**_hashtag_env(), "HASHTAG_HOME": str(home), "HASHTAG_CRASH_AFTER": crash}
    if zygote is not None:
        _, log = zygote.start(code, env)
        rc, err = zygote.wait(), ""
        err = log.read_text()
    else:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                              capture_output=True, text=True, timeout=timeout)
        rc, err = proc.returncode, proc.stderr
    assert rc == KILLED, f"expected a SIGKILL at {crash}, got exit {rc}:\n" + err[-3000:]
    return err


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
    from hashtag_workbench.jobs.import_folder import import_folder
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
    from hashtag_workbench.jobs.common import ensure_ready
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
    import hashtag_workbench.warehouse.features as whf
    from hashtag_workbench.warehouse.faults import crash_point
    _write_pca_fit = whf.write_pca_fit

    def write_pca_fit(*a, **k):  # a crash point between saving the PCA artifact and recording it
        crash_point("features:write-pca")
        return _write_pca_fit(*a, **k)
    whf.write_pca_fit = write_pca_fit
    import hashtag_workbench.jobs.features as jf
    jf.WRITE_EVERY = 8  # more write transactions on few photos: more places to be killed, quicker
    jf.compute_features(Path(os.environ["HASHTAG_HOME"]), batch_size=8, workers=1, threads=1)
"""


def run_to_end(code: str, home: Path, zygote: Zygote) -> None:
    """The re-run: the same code in a fresh child, with no crash point armed; it must succeed."""
    _, log = zygote.start(code, {**_hashtag_env(), "HASHTAG_HOME": str(home), "HASHTAG_CRASH_AFTER": ""})
    rc = zygote.wait()
    assert rc == 0, log.read_text()[-3000:]


def _kill_when_running(code: str, home: Path, kind: str, zygote: Zygote) -> None:
    """Start `code`, and SIGKILL it as soon as its run is recorded (while it loads its data or model)."""
    import time
    pid, log = zygote.start(code, {**_hashtag_env(), "HASHTAG_HOME": str(home), "HASHTAG_CRASH_AFTER": ""})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        recent = runs.recent_runs(home, 1, kind=kind) if (home / "warehouse.duckdb").exists() else []
        if recent and recent[0]["status"] == "running":
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    rc = zygote.wait()
    assert rc == KILLED, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def feature_zygote(tmp_path_factory):
    z = Zygote("hashtag_workbench.jobs.features", "hashtag_workbench.warehouse.features",
               log_dir=tmp_path_factory.mktemp("zf"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def train_zygote(tmp_path_factory):
    z = Zygote("hashtag_workbench.jobs.train", "hashtag_workbench.warehouse.models",
               log_dir=tmp_path_factory.mktemp("zt"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def scrape_zygote(tmp_path_factory):
    z = Zygote("hashtag_workbench.jobs.scrape_images", log_dir=tmp_path_factory.mktemp("zs"))
    yield z
    z.close()


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
def test_features_killed_at_six_points_then_completes(features_template, tmp_path, feature_zygote):
    """One warehouse, killed again and again: each re-run resumes, the last one completes."""
    home = tmp_path / "home"
    shutil.copytree(features_template, home)
    assert _feature_state(home)["images"] == 24
    steps = []

    _kill_when_running(FEATURES_CODE, home, "features", feature_zygote)          # 1. while loading the model
    steps.append(("at start (model loading)", _feature_state(home)))
    for crash, what in [("features:checkpoint:1", "after the first 8 rows"),
                        ("db:before-commit:4", "inside the next feature write"),
                        ("features:checkpoint:2", "after the last rows, before PCA"),
                        ("features:write-pca:1", "PCA artifact saved, not recorded"),
                        ("features:before-finish:1", "PCA recorded, run not closed")]:
        run_until_killed(FEATURES_CODE, home, crash, zygote=feature_zygote)
        assert_sound_after_kill(home, "features")
        steps.append((what, _feature_state(home)))
    KILL_POINTS_TRIED["features"] = [s[0] for s in steps]
    got = [s[1]["features"] for s in steps]
    assert got == [0, 8, 8, 24, 24, 24], steps
    assert steps[4][1]["fits"] == [] and len(steps[5][1]["fits"]) == 1

    run_to_end(FEATURES_CODE, home, feature_zygote)
    last = runs.recent_runs(home, 1, kind="features")[0]
    assert last["status"] == "ok" and last["counts"].get("done", 0) == 0   # nothing computed twice
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
    from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
    from hashtag_workbench.infra.http import FetchLimits as DownloadLimits
    s = ScrapeSettings(per_class=24, workers=2, batch=4, flush_s=0.5, search_delay=0.0, block_backoff=0.01,
                       limits=DownloadLimits(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.01,
                                             deadline=10.0))
    scrape_images(Path(os.environ["HASHTAG_HOME"]), words=["bird"], settings=s)
"""


@pytest.mark.slow
def test_scrape_images_killed_at_six_points_then_completes(seeded_template, tmp_path, monkeypatch, scrape_zygote):
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
        monkeypatch.setenv("HASHTAG_ALLOW_PRIVATE_URLS", "1")
        home = tmp_path / "home"
        shutil.copytree(seeded_template, home)

        steps = ["at start (searching)"]
        _kill_when_running(SCRAPE_CODE, home, "scrape-images", scrape_zygote)
        assert_sound_after_kill(home, "scrape-images")
        for crash, what in [("scrape-images:checkpoint:1", "after the first batch of 4"),
                            ("store:before-rename:2", "half-way through storing a photo"),
                            ("db:before-commit:5", "inside a write transaction"),
                            ("scrape-images:checkpoint:2", "after two more batches"),
                            ("scrape-images:before-finish:1", "all stored, run not closed")]:
            run_until_killed(SCRAPE_CODE, home, crash, zygote=scrape_zygote)
            assert_sound_after_kill(home, "scrape-images")
            steps.append(what)
        KILL_POINTS_TRIED["scrape-images"] = steps

        from hashtag_workbench.infra.http import FetchLimits as DownloadLimits
        from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
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


# ------------------------------------------------------------------------------------------ train

ADD_MODEL_CRASH_POINT = """
    import os
    from pathlib import Path
    import hashtag_workbench.warehouse.models as whm
    from hashtag_workbench.warehouse.faults import crash_point
    _add_model = whm.add_model

    def add_model(*a, **k):  # a crash point between saving a model's files and recording it
        crash_point("train:add-model")
        return _add_model(*a, **k)
    whm.add_model = add_model
"""

TRAIN_CODE = ADD_MODEL_CRASH_POINT + """
    import hashtag_workbench.jobs.train as jt
    jt.train.__kwdefaults__["codebook"] = 32  # a small codebook: the same code path, quicker
    out = jt.train(Path(os.environ["HASHTAG_HOME"]), models=("bovw",), threads=1)
    assert not out["failed"], out
"""


def _models(home: Path) -> list[tuple]:
    with connect(home, read_only=True) as con:
        return con.execute("SELECT model_id, kind, artifact FROM models ORDER BY model_id").fetchall()


@pytest.mark.slow
def test_train_killed_at_five_points_then_completes(features_template, tmp_path, train_zygote):
    home = tmp_path / "home"
    shutil.copytree(features_template, home)
    steps = ["at start (split made, loading photos)"]
    _kill_when_running(TRAIN_CODE, home, "train-bovw", train_zygote)
    for crash, kind, what in [
            ("train-bovw:item:5", "train-bovw", "computing descriptors of the 5th photo"),
            ("train:add-model:1", "train-bovw", "model files saved, not recorded"),
            ("db:before-commit:6", None, "inside a write transaction"),
            ("train-bovw:before-finish:1", "train-bovw", "model recorded, run not closed")]:
        err = run_until_killed(TRAIN_CODE, home, crash, zygote=train_zygote)
        report = check_warehouse(home)
        bad = [f.line() for f in report.problems if f.kind in ("missing_file", "hash_mismatch", "duplicate_ok",
                                                                "missing_artifact")]
        assert not bad, bad
        if kind:
            assert runs.recent_runs(home, 1, kind=kind)[0]["status"] == "running", err[-2000:]
        steps.append(what)
    KILL_POINTS_TRIED["train"] = steps

    run_to_end(TRAIN_CODE, home, train_zygote)
    last = runs.recent_runs(home, 1, kind="train-bovw")[0]
    models = _models(home)
    assert last["status"] == "ok" and [m[1] for m in models if m[0] == last["run_id"]] == ["bovw_svm"]
    assert all((home / m[2]).exists() for m in models)                  # every recorded model has its files
    assert_consistent(home)                                             # no orphan model folders left
    with connect(home, read_only=True) as con:
        left = con.execute("SELECT run_id, kind, status FROM runs WHERE status = 'running'").fetchall()
    assert left == []


# ------------------------------------------------------- the other model kinds, and evaluate

KIND_CODE = ADD_MODEL_CRASH_POINT + """
    import hashtag_workbench.jobs.train as jt
    out = jt.train(Path(os.environ["HASHTAG_HOME"]), models=(os.environ["HASHTAG_TEST_KIND"],), epochs=1, threads=1,
                   conse_variants=False)
    assert not out["failed"], out
"""

EVALUATE_CODE = """
    import os
    from pathlib import Path
    from hashtag_workbench.jobs.evaluate import evaluate
    evaluate(Path(os.environ["HASHTAG_HOME"]), threads=1)
"""


@pytest.fixture(scope="module")
def stored_features_template(features_template, tmp_path_factory) -> Path:
    """The 24 photos with their features, logits and PCA stored (what train and evaluate read)."""
    from hashtag_workbench.jobs.features import compute_features
    home = tmp_path_factory.mktemp("featdone") / "home"
    shutil.copytree(features_template, home)
    compute_features(home)
    return home


def _kill_and_check(code: str, home: Path, kind: str, points: list[tuple[str, str]], zygote: Zygote) -> list[str]:
    """Kill `code` at each point in turn; after each: nothing without its files, the run left 'running'."""
    steps = ["at start (loading)"]
    _kill_when_running(code, home, kind, zygote)
    for crash, what in points:
        err = run_until_killed(code, home, crash, zygote=zygote)
        bad = [f.line() for f in check_warehouse(home).problems
               if f.kind in ("missing_file", "hash_mismatch", "duplicate_ok", "missing_artifact")]
        assert not bad, bad
        assert runs.recent_runs(home, 1, kind=kind)[0]["status"] == "running", err[-2000:]
        steps.append(what)
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("kind,stored", [("probe", "linear_probe"), ("conse", "conse"), ("finetune", "finetune")])
def test_each_model_kind_killed_then_completes(kind, stored, stored_features_template, tmp_path, train_zygote,
                                               monkeypatch):
    monkeypatch.setenv("HASHTAG_TEST_KIND", kind)  # HASHTAG_* settings reach the child
    home = tmp_path / "home"
    shutil.copytree(stored_features_template, home)
    run_kind = f"train-{kind}"
    KILL_POINTS_TRIED[run_kind] = _kill_and_check(KIND_CODE, home, run_kind, [
        ("train:add-model:1", "model files saved, not recorded"),
        ("db:before-commit:2", "inside a write transaction"),
        (f"{run_kind}:before-finish:1", "model recorded, run not closed")], train_zygote)
    run_to_end(KIND_CODE, home, train_zygote)
    last = runs.recent_runs(home, 1, kind=run_kind)[0]
    models = [m for m in _models(home) if m[1] == stored]
    # the model recorded just before the last kill, and the re-run's; the files saved but never recorded
    # before the first kill are swept, so every model has its files and no folder lacks its model
    assert last["status"] == "ok" and len(models) == 2 and models[-1][0] == last["run_id"], models
    assert all((home / m[2]).exists() for m in models)
    assert [r["status"] for r in runs.recent_runs(home, 20, kind=run_kind)].count("running") == 0
    assert_consistent(home)


@pytest.mark.slow
def test_evaluate_killed_then_completes(stored_features_template, tmp_path, train_zygote):
    from hashtag_workbench.jobs.train import train
    home = tmp_path / "home"
    shutil.copytree(stored_features_template, home)
    assert train(home, models=("probe", "conse"), conse_variants=False, threads=1)["failed"] == []
    KILL_POINTS_TRIED["evaluate"] = _kill_and_check(EVALUATE_CODE, home, "evaluate", [
        ("db:before-commit:5", "while storing the first results"),
        ("db:before-commit:6", "between two scopes' results"),
        ("evaluate:before-finish:1", "every result stored, run not closed")], train_zygote)
    run_to_end(EVALUATE_CODE, home, train_zygote)
    last = runs.recent_runs(home, 1, kind="evaluate")[0]
    assert last["status"] == "ok"
    with connect(home, read_only=True) as con:
        per_scope = con.execute("SELECT model_id, scope, count(*) FROM evaluations WHERE run_id = ? "
                                "GROUP BY ALL", [last["run_id"]]).fetchall()
    assert per_scope and all(n == 1 for _, _, n in per_scope)   # each model and scope scored once in the re-run
    assert {m for m, _, _ in per_scope} == {m[0] for m in _models(home)}
    assert_consistent(home)


FINETUNE_CODE = """
    import os
    from pathlib import Path
    import hashtag_workbench.jobs.train as jt
    out = jt.train(Path(os.environ["HASHTAG_HOME"]), models=("finetune",), epochs=3, threads=1)
    assert not out["failed"], out
"""


def _cache_files(home: Path) -> list[str]:
    """Every activation-cache file: under cache/activations/<key>/, or (older layout) a model folder's cache/."""
    found = [p for root in ("models", "cache") if (home / root).is_dir() for p in (home / root).rglob("*")]
    return sorted(str(p.relative_to(home)) for p in found
                  if p.is_file() and ("cache" in p.parts[1:] or p.parts[-3:-2] == ("activations",)))


# Chunks of 4 photos and the front run on 4 photos at a time, so a kill lands between finished chunks.
RESUMABLE_CODE = FINETUNE_CODE.replace("import hashtag_workbench.jobs.train as jt", """\
import hashtag_workbench.jobs.train as jt
    import hashtag_workbench.infra.arrays as ia
    import hashtag_workbench.core.finetune as ft
    ia.CHUNK_ROWS, ft.FRONT_BATCH = 4, 4""")


def _chunks(home: Path, part: str) -> dict[str, int]:
    """{file name: inode} of the whole (renamed) cache chunks of one part."""
    return {Path(f).name: (home / f).stat().st_ino for f in _cache_files(home)
            if Path(f).name.startswith(f"{part}-")}


def _trained_state(home: Path) -> dict:
    import torch
    model = [m for m in _models(home) if m[1] == "finetune"][-1]
    state = torch.load(home / model[2] / "model.pt", weights_only=True)
    return {f"{k}.{n}": t for k, part in state.items() for n, t in part.items()}


@pytest.mark.slow
def test_finetune_killed_while_caching_resumes_the_cache_and_restarts_epochs(stored_features_template, tmp_path,
                                                                            train_zygote):
    """kill -9 while the frozen front's activations are written to disk, and in the middle of an epoch: only
    whole chunks appear under their names, each re-run keeps the chunks already finished (the same files) and
    computes the rest, the killed runs end 'interrupted', the last run completes with the very model an
    uninterrupted run trains, and no cache file is left behind."""
    home, clean = tmp_path / "home", tmp_path / "clean"
    shutil.copytree(stored_features_template, home)
    shutil.copytree(stored_features_template, clean)
    run_to_end(RESUMABLE_CODE, clean, train_zygote)                  # the reference: never interrupted
    _kill_when_running(RESUMABLE_CODE, home, "train-finetune", train_zygote)
    killed = [runs.recent_runs(home, 1, kind="train-finetune")[0]["run_id"]]
    split = wh_splits.split_rows(home, wh_splits.latest_split_run(home))
    n_train, n_val = sum(r["part"] == "train" for r in split), sum(r["part"] == "val" for r in split)
    assert n_train > 8 and n_val > 4
    # 1. killed at the 7th train photo: the first chunk (photos 1-4) whole, the second only under a temp name
    run_until_killed(RESUMABLE_CODE, home, "train-finetune:item:7", zygote=train_zygote)
    killed.append(runs.recent_runs(home, 1, kind="train-finetune")[0]["run_id"])
    first = _chunks(home, "train")
    assert list(first) == ["train-efficientnet_lite0-front13-nchw-00000.npy"], _cache_files(home)
    assert any(Path(f).name.startswith(".tmp-") for f in _cache_files(home))
    # 2. the re-run caches only the other train photos (its bar counts them), then is killed in val
    err = run_until_killed(RESUMABLE_CODE, home, f"train-finetune:item:{n_train - 4 + 2}", zygote=train_zygote)
    killed.append(runs.recent_runs(home, 1, kind="train-finetune")[0]["run_id"])
    assert f"resuming the activation cache: 4 of {n_train} train photos" in err, err[-2000:]
    train_chunks = _chunks(home, "train")
    assert len(train_chunks) == -(-n_train // 4) and all(train_chunks[n] == i for n, i in first.items())
    assert _chunks(home, "val") == {}
    # 3. every train chunk kept: the re-run caches the val photos, then is killed in epoch 2
    err = run_until_killed(RESUMABLE_CODE, home, f"train-finetune:item:{n_val + 2}", zygote=train_zygote)
    killed.append(runs.recent_runs(home, 1, kind="train-finetune")[0]["run_id"])
    assert f"resuming the activation cache: {n_train} of {n_train} train photos" in err, err[-2000:]
    assert "epoch 1/3" in err and "epoch 2/3" not in err, err[-2000:]
    assert _chunks(home, "train") == train_chunks and len(_chunks(home, "val")) == -(-n_val // 4)
    KILL_POINTS_TRIED["train-finetune (cache)"] = ["at start", "caching train photos", "caching val photos",
                                                   "mid-epoch"]
    run_to_end(RESUMABLE_CODE, home, train_zygote)
    assert {runs.get_run(home, r)["status"] for r in killed} == {"interrupted"}
    last = runs.recent_runs(home, 1, kind="train-finetune")[0]
    assert last["status"] == "ok" and _cache_files(home) == [] and _cache_files(clean) == []
    assert len([m for m in _models(home) if m[1] == "finetune"]) == 1
    resumed, reference = _trained_state(home), _trained_state(clean)
    assert resumed.keys() == reference.keys()
    assert all(np.allclose(resumed[k].numpy(), reference[k].numpy(), atol=1e-6) for k in reference)
    assert_consistent(home)


def _small_file_limit(limit: int):
    def apply():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG) as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_finetune_cache_on_a_full_disk_fails_in_one_line_keeping_earlier_models(stored_features_template,
                                                                              tmp_path):
    """The cache write fails for want of space: one line says so, that run is 'failed', the models trained
    before it in the same call are kept, and no part of the cache is left."""
    home = tmp_path / "home"
    shutil.copytree(stored_features_template, home)
    # Fine-tuning every block caches the stem's output (32 x 112 x 112 floats, 1.6 MB a photo): a cache bigger
    # than any other file the run writes, so a limit on the size of a file stops the cache and nothing else.
    code = FINETUNE_CODE.replace('models=("finetune",)', 'models=("probe", "finetune"), train_blocks=16')
    limit = 24 << 20
    assert (home / "warehouse.duckdb").stat().st_size < limit / 2
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HASHTAG_HOME": str(home)}, timeout=600,
                          preexec_fn=_small_file_limit(limit))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "training finetune failed" in errors[0], proc.stderr[-3000:]
    assert "cannot write the cache file" in errors[0] and "Traceback" not in proc.stderr.split(errors[0])[0][-200:]
    assert runs.recent_runs(home, 1, kind="train-finetune")[0]["status"] == "failed"
    assert runs.recent_runs(home, 1, kind="train-probe")[0]["status"] == "ok"
    assert [m[1] for m in _models(home)] == ["linear_probe"] and _cache_files(home) == []


def test_zz_report_kill_points():
    """Prints jobs x kill points tried in this module (runs last in it)."""
    lines = [f"  {job}: {len(points)} kill points: {', '.join(points)}" for job, points in KILL_POINTS_TRIED.items()]
    print("\nkill points tried:\n" + "\n".join(lines))
    # the data jobs at 5+ points each; every model kind and evaluate at 4 (load, files, transaction, finish)
    assert all(len(points) >= (4 if job.startswith("train-") or job == "evaluate" else 5)
               for job, points in KILL_POINTS_TRIED.items())
    assert {"train", "train-probe", "train-conse", "train-finetune", "evaluate"} <= set(KILL_POINTS_TRIED)


@pytest.mark.slow
def test_sigterm_mid_import_ends_interrupted_with_its_work_saved(seeded_template, tmp_path):
    """A plain `kill` (SIGTERM) is handled like Ctrl-C: the run ends 'interrupted', nothing orphaned."""
    import time
    home = tmp_path / "home"
    shutil.copytree(seeded_template, home)
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from hashtag_workbench.jobs.import_folder import import_folder
        try:
            import_folder(Path(os.environ["HASHTAG_HOME"]), Path({str(DEMO_PHOTOS)!r}))
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HASHTAG_HOME": str(home), "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        recent = runs.recent_runs(home, 1, kind="import-folder")
        if recent and recent[0]["counts"].get("done", 0) >= 32:   # one batch written, more under way
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    run = runs.recent_runs(home, 1, kind="import-folder")[0]
    assert run["status"] == "interrupted" and "SIGTERM" in run["error"]
    problems = [f.line() for f in check_warehouse(home).problems]
    assert problems == [], problems                               # every stored file has its row
    counts = import_folder(home, DEMO_PHOTOS)                      # and the re-run completes the rest
    with connect(home, read_only=True) as con:
        n = con.execute("SELECT count(*), count(DISTINCT sha256) FROM images WHERE status = 'ok'").fetchone()
    assert n[0] == n[1] == len(list(DEMO_PHOTOS.rglob("*.jpg"))) and counts["done"] < n[0]
