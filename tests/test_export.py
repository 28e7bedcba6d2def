"""`hashtags export`: kept images per word, a CSV, Parquet readable by DuckDB, safe re-runs, a recorded run."""
from __future__ import annotations

import csv
import os

import duckdb
import numpy as np
import pytest

from hashtag_workbench.jobs.cli import main
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse import runs as wh_runs
from hashtag_workbench.warehouse.export import CSV_COLUMNS
from hashtag_workbench.warehouse.features import write_features, write_pca_fit
from hashtag_workbench.warehouse.images import labelled_images


@pytest.fixture
def curated(demo_home):
    """The small demo warehouse with vectors for every image and a few decisions."""
    ids = [r["image_id"] for r in labelled_images(demo_home)]
    rid = wh_runs.start_run(demo_home, "features", {"test": True})
    rng = np.random.default_rng(0)
    write_features(demo_home, rid, "tiny", ids, rng.normal(size=(len(ids), 6)).astype(np.float32))
    write_pca_fit(demo_home, rid, "tiny", n_components=2, explained_variance=0.5, artifact="none", image_ids=ids,
                  projections=rng.normal(size=(len(ids), 2)).astype(np.float32))
    wh_runs.finish_run(demo_home, rid, "ok", {"done": len(ids)})
    birds = [r["image_id"] for r in q.review_items(demo_home, "bird")]
    curation.decide(demo_home, birds[:2], "reject")
    curation.decide(demo_home, birds[2:3], "relabel", "music")
    curation.decide(demo_home, birds[3:4], "keep")
    return demo_home, birds


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_export_writes_folders_csv_and_parquet(curated, tmp_path, capsys):
    home, birds = curated
    out = tmp_path / "out"
    assert main(["--home", str(home), "export", "--to", str(out)]) == 0
    rows = _csv(out / "images.csv")
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 30                                   # 32 stored, 2 rejected
    by_id = {int(r["image_id"]): r for r in rows}
    assert str(birds[0]) not in {r["image_id"] for r in rows}
    moved = by_id[birds[2]]
    assert (moved["word"], moved["original_word"], moved["review"]) == ("music", "bird", "relabel")
    assert moved["file"].startswith("images/music/") and (out / moved["file"]).is_file()
    assert by_id[birds[3]]["review"] == "keep" and by_id[birds[3]]["n_decisions"] == "1"
    assert sorted(os.listdir(out / "images")) == ["bird", "flowers", "fruit", "music"]
    assert len(os.listdir(out / "images" / "bird")) == 5 and len(os.listdir(out / "images" / "music")) == 9
    src = home / next(r for r in labelled_images(home) if r["image_id"] == birds[3])["path"]
    assert os.path.samefile(src, out / by_id[birds[3]]["file"])   # a hard link, not a copy, on one file system
    con = duckdb.connect()
    feats = con.execute(f"SELECT count(*), count(DISTINCT image_id), min(len(vec)) FROM '{out}/features.parquet'"
                        ).fetchone()
    assert feats == (30, 30, 6)
    proj = con.execute(f"SELECT count(*), any_value(backbone), min(len(vec)) FROM '{out}/projections.parquet'"
                       ).fetchone()
    assert proj == (30, "tiny", 2)
    assert con.execute(f"SELECT count(*) FROM '{out}/features.parquet' WHERE word = 'music'").fetchone()[0] == 9
    run = wh_runs.recent_runs(home, limit=1)[0]
    assert (run["kind"], run["status"], run["counts"]["done"]) == ("export", "ok", 30)
    assert f"[run {run['run_id']}]" in capsys.readouterr().err


def test_export_rerun_is_safe_and_follows_new_decisions(curated, tmp_path):
    home, birds = curated
    out = tmp_path / "out"
    assert main(["--home", str(home), "export", "--to", str(out)]) == 0
    before = _files(out)
    (out / "my-notes.txt").write_text("mine")              # not ours: must survive every re-run
    assert main(["--home", str(home), "export", "--to", str(out)]) == 0
    assert _files(out) == sorted(before + ["my-notes.txt"])
    assert wh_runs.recent_runs(home, limit=1)[0]["counts"]["skipped"] == 30   # every image already in place
    curation.decide(home, birds[4:5], "reject")
    assert main(["--home", str(home), "export", "--to", str(out), "--include-rejected"]) == 0
    rows = _csv(out / "images.csv")
    assert len(rows) == 32 and {r["review"] for r in rows if int(r["image_id"]) in birds[:2]} == {"reject"}
    gone = next(r for r in rows if int(r["image_id"]) == birds[4])
    assert gone["file"].startswith("rejected/bird/") and not any(f"/{birds[4]}-" in f for f in _files(out / "images"))
    assert main(["--home", str(home), "export", "--to", str(out), "--words", "music"]) == 0
    assert sorted(os.listdir(out / "images")) == ["music"] and not (out / "rejected").exists()
    assert (out / "my-notes.txt").read_text() == "mine"


def test_export_refuses_bad_input_in_one_line(curated, tmp_path, capsys):
    home, _ = curated
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "thesis.docx").write_text("x")
    assert main(["--home", str(home), "export", "--to", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not empty" in err and len(err.splitlines()) == 1
    assert main(["--home", str(home), "export", "--to", str(tmp_path / "new"), "--words", "dragon"]) == 2
    assert "unknown word(s): dragon" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and _files(other) == ["thesis.docx"]
