"""Every dashboard page through Streamlit's AppTest: against an empty warehouse and a seeded one."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.dashboard_seed import build_seeded, copy_home
from warehouse import curation
from warehouse import dashboard_queries as q
from warehouse import words as wh_words
from warehouse.runs import recent_runs

PAGES = ROOT / "dashboard" / "views"
ALL_PAGES = ("overview", "words", "review", "embedding", "evaluation", "predict", "word_space", "jobs")


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("info", "warning", "error", "success", "markdown", "caption", "text", "code"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


@pytest.fixture(scope="session")
def seeded_template(demo_home_template, tmp_path_factory) -> "Path":  # noqa: F821
    return build_seeded(demo_home_template, tmp_path_factory.getbasetemp())


@pytest.fixture
def seeded(seeded_template, tmp_path, monkeypatch):
    h = copy_home(seeded_template, tmp_path / "seeded")
    monkeypatch.setenv("HASHTAG_HOME", str(h))
    return h


def grid_cells(at: AppTest) -> list[dict]:
    """The cells the Review page handed to its grid component."""
    import json
    return next((json.loads(el.proto.json).get("cells", []) for el in at.get("bidi_component")), [])


def has_models(h) -> bool:
    return bool(q.list_models(h))


# ---------------------------------------------------------------- empty warehouse

@pytest.mark.parametrize("name", ALL_PAGES)
def test_every_page_says_what_to_run_when_empty(home, name):
    at = page(name).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert "python -m jobs" in texts(at), f"{name}: no empty state naming a command"


# ---------------------------------------------------------------- seeded warehouse

def test_app_navigation_runs(seeded):
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=240).run()
    assert not at.exception
    assert "Overview" in [t.value for t in at.title]


def test_overview_counts_and_warnings(seeded):
    birds = [r["image_id"] for r in q.review_items(seeded, "bird", None)]
    curation.decide(seeded, birds[:2], "reject")
    at = page("overview").run()
    assert not at.exception
    frame = next(d.value for d in at.dataframe if "rejected" in d.value.columns)
    row = frame.set_index("word").loc["bird"]
    assert (row["stored"], row["kept"], row["rejected"]) == (8, 6, 2)
    assert "words have fewer than 20 kept images: bird (6)" in texts(at)
    runs = next(d.value for d in at.dataframe if "kind" in d.value.columns)
    assert "import-folder" in set(runs["kind"])


def test_words_page_adds_renames_and_edits_hashtags(seeded):
    at = page("words").run()
    assert not at.exception
    at.text_input(key="add_name").input("Sunset Beach")
    at.text_input(key="add_tags").input("#sunset #beach")
    at.button(key="add_submit").click().run()
    assert "Added the word 'sunset beach'" in texts(at)
    assert wh_words.hashtags_for(seeded, "hand")["sunset beach"] == ["sunset", "beach"]
    at.selectbox(key="edit_word").select("sunset beach").run()
    at.text_input(key="rename_to").input("dusk")
    at.button(key="rename_submit").click().run()
    assert not at.exception
    assert "dusk" in [w["word"] for w in wh_words.list_words(seeded)]
    at.selectbox(key="edit_word").select("dusk").run()
    at.text_area(key="tags_dusk").input("#dusk #golden_hour, #sky")
    at.button(key="tags_submit").click().run()
    assert wh_words.hashtags_for(seeded, "hand")["dusk"] == ["dusk", "golden_hour", "sky"]
    actions = [e["action"] for e in q.word_edits(seeded)]
    assert actions[:3] == ["hashtags", "rename", "add"]
    at.button(key="toggle_active").click().run()
    assert not next(w for w in wh_words.list_words(seeded) if w["word"] == "dusk")["active"]


def test_words_page_rejects_bad_names(seeded):
    at = page("words").run()
    at.text_input(key="add_name").input("<script>")
    at.button(key="add_submit").click().run()
    assert "not a usable word" in texts(at)


def test_review_keyboard_buttons_bulk_and_undo(seeded):
    at = page("review")
    at.session_state["review_word"] = "bird"
    at.run()
    assert not at.exception
    dets = q.detectors(seeded, "bird")
    if dets:
        det = "kmeans_2sigma" if "kmeans_2sigma" in dets else dets[0]
        assert at.selectbox(key="review_detector").value == det
        dets = [det]
        items = q.review_items(seeded, "bird", det)
        assert [i["flagged"] for i in items] == sorted([i["flagged"] for i in items], reverse=True)
    first = q.review_items(seeded, "bird", dets[0] if dets else None)[0]["image_id"]
    cells = grid_cells(at)
    assert cells and cells[0]["id"] == first and cells[0]["current"] and cells[0]["src"].startswith("data:image/jpeg")
    at.button(key="kb_reject").click().run()      # the X shortcut's button: rejects the current image
    rec = curation.recent_decisions(seeded)
    assert (rec[0]["image_id"], rec[0]["decision"]) == (first, "reject")
    at.button(key="kb_undo").click().run()        # U
    assert curation.recent_decisions(seeded) == []
    at.button(key="kb_next").click().run()        # N moves the cursor
    at.button(key="kb_keep").click().run()        # K keeps the second image
    rec = curation.recent_decisions(seeded)
    assert rec[0]["decision"] == "keep" and rec[0]["image_id"] != first
    ids = [i["image_id"] for i in q.review_items(seeded, "bird", dets[0] if dets else None)][:3]
    at.session_state["review_selected"] = ids      # what the grid's select buttons build up
    at.run()
    assert sum(c["selected"] for c in grid_cells(at)) == 3
    at.selectbox(key="review_relabel_to").select("music").run()
    at.button(key="bulk_relabel").click().run()
    assert not at.exception
    labels = curation.current_labels(seeded, ids)
    assert {v["word"] for v in labels.values()} == {"music"}
    at.multiselect(key="undo_pick").select(curation.recent_decisions(seeded)[0]["decision_id"]).run()
    at.button(key="undo_selected").click().run()
    assert "Undid 1 decision" in texts(at)


def test_review_paging(seeded):
    at = page("review")
    at.session_state["review_word"] = "fruit"
    at.session_state["review_per_page"] = 24
    at.run()
    assert "page 1 of 1" in texts(at)
    assert len(grid_cells(at)) == 8


def test_embedding_map(seeded):
    at = page("embedding").run()
    assert not at.exception
    if not q.embedding(seeded):
        assert "python -m jobs features" in texts(at)
        return
    assert at.get("plotly_chart")
    assert "32 images" in texts(at)
    at.radio(key="emb_method").set_value("tsne").run()
    assert not at.exception and at.get("plotly_chart")


def test_evaluation_page(seeded):
    at = page("evaluation").run()
    assert not at.exception
    if not q.model_comparison(seeded):
        assert "python -m jobs train" in texts(at)
        pytest.skip("no train/evaluate job in this build yet")
    comp = at.dataframe[0].value
    assert {"top1", "top5", "study top-1"} <= set(comp.columns)
    assert len(at.get("plotly_chart")) >= 2  # confusion heatmap and per-word bars (curves when stored)
    at.selectbox(key="cell_true").select("bird").run()
    at.selectbox(key="cell_pred").select("bird").run()
    assert not at.exception


def test_predict_from_url(seeded, httpserver, monkeypatch):
    monkeypatch.setenv("HASHTAG_ALLOW_PRIVATE_URLS", "1")
    at = page("predict").run()
    assert not at.exception
    if not has_models(seeded):
        assert "python -m jobs train" in texts(at)
        pytest.skip("no trained models in this build yet")
    photo = next((ROOT / "datasets" / "demo" / "photos" / "bird").glob("*.jpg")).read_bytes()
    httpserver.expect_request("/bird.jpg").respond_with_data(photo, content_type="image/jpeg")
    httpserver.expect_request("/notimage").respond_with_data(b"<html>hello</html>", content_type="text/html")
    at.text_input(key="pred_url").input(httpserver.url_for("/bird.jpg"))
    at.button[0].click().run()
    assert not at.exception
    tags = [c.value for c in at.code]
    assert tags and all(t.startswith("#") for t in tags)
    at.text_input(key="pred_url").input(httpserver.url_for("/notimage"))
    at.button[0].click().run()
    assert "not usable" in texts(at)
    at.text_input(key="pred_url").input("file:///etc/passwd")
    at.button[0].click().run()
    assert "only http:// and https://" in texts(at)


def test_word_space(seeded):
    at = page("word_space")
    at.session_state["ws_method"] = "pca"
    at.run()
    assert not at.exception
    assert at.get("plotly_chart")
    assert at.dataframe[0].value.columns.tolist() == ["word", "imagenet class", "cosine"]


def test_jobs_page_starts_a_job_and_shows_history(seeded, tmp_path):
    import shutil
    tree = tmp_path / "more" / "bird"
    tree.mkdir(parents=True)
    shutil.copy(sorted((ROOT / "datasets" / "demo" / "photos" / "bird").glob("*.jpg"))[-1], tree)
    before = len(recent_runs(seeded))
    at = page("jobs").run()
    assert not at.exception
    assert at.selectbox(key="job_command").value == "import-folder"
    at.text_input(key="jp_import-folder_path").input(str(tree.parent))
    at.button[0].click().run()                      # Start
    assert "Started `python -m jobs import-folder" in texts(at)
    log_dir = seeded / "logs"
    deadline = time.time() + 180
    while time.time() < deadline and not list(log_dir.glob("*.rc")):
        time.sleep(1)
    assert (next(log_dir.glob("*.rc")).read_text()) == "0"
    runs = recent_runs(seeded)
    assert len(runs) == before + 1 and runs[0]["kind"] == "import-folder" and runs[0]["counts"]["done"] == 1
    at.run()
    assert "import-folder: done 1" in texts(at)     # the job's summary, streamed to its log
    at.selectbox(key="run_detail").select(runs[0]["run_id"]).run()
    assert not at.exception
    assert any(str(tree.parent) in str(j.value) for j in at.json)  # the run's config


def test_pages_work_while_another_process_writes(seeded):
    """A job in another process writing (short transactions) must not break a page: reads wait for the lock."""
    import subprocess
    import sys
    code = ("import sys, time; from warehouse.db import connect\n"
            "end = time.time() + float(sys.argv[3])\n"
            "print('writing', flush=True)\n"
            "while time.time() < end:\n"
            "    with connect(sys.argv[1]) as con:\n"
            "        con.execute(\"UPDATE runs SET log = coalesce(log, '') WHERE run_id = 1\")\n"
            "        time.sleep(0.2)\n"
            "    time.sleep(0.05)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(seeded), str(ROOT), "15"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        for name in ("overview", "review", "jobs"):
            at = page(name).run()
            assert not at.exception, at.exception[0].message
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_thumbnails_are_cached_on_disk(seeded):
    from warehouse.thumbs import thumb_path, thumbnail
    item = q.review_items(seeded, "bird", None)[0]
    p = thumbnail(seeded, item["sha256"], item["path"])
    assert p == thumb_path(seeded, item["sha256"]) and p.exists()
    with Image.open(io.BytesIO(p.read_bytes())) as im:
        assert max(im.size) <= 192
    mtime = p.stat().st_mtime_ns
    assert thumbnail(seeded, item["sha256"], item["path"]).stat().st_mtime_ns == mtime
