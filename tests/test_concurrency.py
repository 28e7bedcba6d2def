"""A writing job and the dashboard's curation calls at once, in separate processes (docs/architecture.md).

One process imports every bundled photo while another keeps doing what the Review
page does: decide keep / reject / relabel, undo, and read the review grid and the
overview counts, through the same warehouse functions. Both must finish, nothing
may be lost, and the longest single call on the dashboard side is measured (goal < 2 s).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.check import check_warehouse
from hashtag_workbench.warehouse.db import connect
from tests.conftest import DEMO_PHOTOS, ROOT

# Not a speed goal (benchmarks/locks.py measures the waits, about one write transaction): a bound that
# only a lost turn breaks, since a starved reader waits for the whole lock timeout.
STARVED_S = 15.0

DASHBOARD_LOOP = """
    import json, os, random, sys, time
    from pathlib import Path
    from hashtag_workbench.warehouse import curation
    from hashtag_workbench.warehouse import dashboard_queries as q

    home, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rng = random.Random(7)
    with __import__("hashtag_workbench.warehouse.db", fromlist=["connect"]).connect(home, read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images WHERE status = 'ok'").fetchall()]
    words = ["bird", "fruit", "flowers", "music"]
    made, undone, waits, ops = [], [], {}, 0

    def timed(name, fn, *a, **k):
        t = time.perf_counter()
        r = fn(*a, **k)
        dt = time.perf_counter() - t
        waits.setdefault(name, []).append(dt)
        return r

    started = time.perf_counter()
    while not stop.exists() or ops < 20:
        roll = rng.random()
        if roll < 0.45:
            choice = rng.choice(["keep", "reject", "relabel"])
            pick = rng.sample(ids, rng.choice([1, 1, 3]))
            made += timed("decide", curation.decide, home, pick, choice,
                          rng.choice(words) if choice == "relabel" else None)
        elif roll < 0.55 and made:
            undone += timed("undo", curation.undo, home, last=1)
        elif roll < 0.8:
            timed("review_items", q.review_items, home, rng.choice(words))
        else:
            timed("word_status", q.word_status, home)
        ops += 1
        time.sleep(0.02)  # a person clicks; this is many times faster than one
    out.write_text(json.dumps({"made": made, "undone": undone, "ops": ops,
                               "seconds": time.perf_counter() - started,
                               "waits": {k: [max(v), sum(v) / len(v), len(v)] for k, v in waits.items()}}))
"""

WRITER = """
    import os
    from pathlib import Path
    from hashtag_workbench.jobs.import_folder import import_folder
    c = import_folder(Path(os.environ["HASHTAG_HOME"]), Path({tree!r}), add_words=True)
    print("COUNTS", c)
"""


@pytest.mark.slow
def test_import_and_curation_at_once_lose_nothing(demo_home, tmp_path):
    env = {**os.environ, "HASHTAG_HOME": str(demo_home), "PYTHONPATH": str(ROOT)}
    stop, out = tmp_path / "stop", tmp_path / "dash.json"
    dash = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DASHBOARD_LOOP), str(demo_home), str(stop),
                             str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        t0 = time.perf_counter()
        writer = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER.format(tree=str(DEMO_PHOTOS)))],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        job_s = time.perf_counter() - t0
    finally:
        stop.touch()
        _, err = dash.communicate(timeout=120)
    assert writer.returncode == 0, writer.stderr[-3000:]
    assert dash.returncode == 0, err[-3000:]
    res = json.loads(out.read_text())

    longest = max(w[0] for w in res["waits"].values())
    table = ", ".join(f"{k} max {v[0]:.2f} s / mean {v[1] * 1000:.0f} ms over {v[2]}" for k, v in res["waits"].items())
    print(f"\nconcurrency: import of {len(list(DEMO_PHOTOS.rglob('*.jpg')))} photos took {job_s:.1f} s while the "
          f"dashboard side made {res['ops']} calls; longest dashboard wait {longest:.2f} s ({table})")

    # nothing lost on the dashboard side: every decision made is in the log, undone exactly when undone
    with connect(demo_home, read_only=True) as con:
        log = dict(con.execute("SELECT decision_id, undone FROM curation_log").fetchall())
        n_ok = con.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
    assert res["made"] and sorted(log) == sorted(res["made"])
    assert {d for d, u in log.items() if u} == set(res["undone"])
    # nothing lost on the job side: every bundled photo stored once, the run finished ok
    assert n_ok == len(list(DEMO_PHOTOS.rglob("*.jpg")))
    assert runs.recent_runs(demo_home, 1, kind="import-folder")[0]["status"] == "ok"
    assert check_warehouse(demo_home).problems == []
    assert longest < STARVED_S, f"the dashboard waited {longest:.2f} s for the warehouse: starved"


def test_threads_of_one_process_read_and_write_at_once(demo_home):
    """Streamlit serves each session from its own thread: reads and decisions overlap in one process."""
    import threading

    from hashtag_workbench.warehouse import curation
    from hashtag_workbench.warehouse import dashboard_queries as q
    with connect(demo_home, read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images WHERE status = 'ok'").fetchall()]
    errors, made = [], []

    def writer():
        try:
            for i in range(15):
                made.extend(curation.decide(demo_home, [ids[i % len(ids)]], "keep"))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escapes
            errors.append(repr(exc))

    def reader():
        try:
            for _ in range(15):
                q.word_status(demo_home)
                q.review_items(demo_home, "bird")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(made) == 15 and len(curation.recent_decisions(demo_home, 100)) == 15
