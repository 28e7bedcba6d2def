"""The README's main command, end to end: `hashtags demo --fast` on all bundled photos."""
import json
import os
import subprocess
import sys

import pytest

from hashtag_workbench.warehouse.db import connect
from tests.conftest import DEMO_PHOTOS, ROOT


@pytest.mark.slow
def test_demo_runs_every_step_and_stores_traceable_results(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HASHTAG_HOME": str(home), "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "hashtag_workbench", "demo", "--fast"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "model" in out and "top-1" in out and "original study" in out
    assert "http://127.0.0.1:8501" in out
    n_photos = len(list(DEMO_PHOTOS.rglob("*.jpg")))
    with connect(home, read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        assert q("SELECT count(*) FROM images WHERE status = 'ok'") == n_photos
        assert q("SELECT count(*) FROM features") == n_photos
        assert q("SELECT count(DISTINCT image_id) FROM outlier_scores") == n_photos
        assert q("SELECT count(*) FROM runs WHERE status <> 'ok'") == 0
        kinds = {r[0] for r in con.execute("SELECT DISTINCT kind FROM models").fetchall()}
        assert {"bovw_svm", "finetune", "linear_probe", "conse"} <= kinds, kinds
        # every derived row names a run that exists
        for table, col in (("features", "run_id"), ("outlier_scores", "run_id"), ("models", "model_id"),
                           ("evaluations", "run_id"), ("splits", "run_id")):
            orphans = q(f"SELECT count(*) FROM {table} WHERE {col} NOT IN (SELECT run_id FROM runs)")
            assert orphans == 0, table
        top1 = dict(con.execute("""SELECT m.kind, max(e.top1) FROM evaluations e JOIN models m USING (model_id)
                                   WHERE e.scope = 'val' GROUP BY m.kind""").fetchall())
    # a real model beats chance (10 words) by a wide margin; ConSE needs no training data at all
    assert top1["linear_probe"] > 0.5 and top1["conse"] > 0.2, top1
    stats = subprocess.run([sys.executable, "-m", "hashtag_workbench", "stats", "--json"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert sum(v["stored"] for v in json.loads(stats.stdout).values()) == n_photos
