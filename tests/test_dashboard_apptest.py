"""Every dashboard page through Streamlit's AppTest: against an empty warehouse and a seeded one."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse import models as wh_models
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.runs import recent_runs
from tests.conftest import ROOT
from tests.dashboard_seed import build_seeded, copy_home

PAGES = ROOT / "hashtag_workbench" / "dashboard" / "views"
ALL_PAGES = ("overview", "words", "review", "embedding", "evaluation", "predict", "word_space", "jobs")


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("info", "warning", "error", "success", "markdown", "caption", "text", "code", "toast"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts).replace("\\", "")   # md_escape's backslashes: what the browser shows


@pytest.fixture(scope="session")
def seeded_template(demo_home_template, tmp_path_factory) -> Path:  # noqa: F821
    return build_seeded(demo_home_template, tmp_path_factory.getbasetemp())


@pytest.fixture
def seeded(seeded_template, tmp_path, monkeypatch):
    h = copy_home(seeded_template, tmp_path / "seeded")
    monkeypatch.setenv("HASHTAG_HOME", str(h))
    return h


def grid_data(at: AppTest) -> dict:
    """What the Review page handed to its grid component."""
    import json
    return next((json.loads(el.proto.json) for el in at.get("bidi_component")), {})


def grid_cells(at: AppTest) -> list[dict]:
    return grid_data(at).get("cells", [])


def word_label(at: AppTest, word: str) -> str:
    """The Review page's Word box label for one word (it carries live counts)."""
    return next(o for o in at.selectbox(key="review_word_box").options if o.startswith(f"{word} ("))


def start_button(at: AppTest):
    """The Jobs page's form button (the live section above it has Stop / Dismiss buttons)."""
    return next(b for b in at.button if b.label == "Start")


def has_models(h) -> bool:
    return bool(wh_models.models(h))


# ---------------------------------------------------------------- empty warehouse

@pytest.mark.parametrize("name", ALL_PAGES)
def test_every_page_says_what_to_run_when_empty(home, name):
    at = page(name).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert "hashtags" in texts(at), f"{name}: no empty state naming a command"


# ---------------------------------------------------------------- seeded warehouse

def test_app_navigation_runs(seeded):
    at = AppTest.from_file(str(ROOT / "hashtag_workbench" / "dashboard" / "app.py"), default_timeout=240).run()
    assert not at.exception
    assert "Overview" in [t.value for t in at.title]


def test_overview_counts_and_warnings(seeded):
    birds = [r["image_id"] for r in q.review_items(seeded, "bird", None)]
    curation.decide(seeded, birds[:2], "reject")
    at = page("overview").run()
    assert not at.exception
    frame = next(d.value for d in at.dataframe if "rejected" in d.value.columns)
    row = frame.set_index("word").loc["bird"]
    assert (row["collected"], row["kept (reviewed)"], row["unreviewed"], row["rejected"]) == (8, 0, 6, 2)
    assert "words have fewer than 20 usable images (kept or unreviewed): bird (6)" in texts(at)
    assert [m.value for m in at.metric][:3] == ["32", "0", "30"]     # stored, kept by a person, unreviewed
    runs = next(d.value for d in at.dataframe if "kind" in d.value.columns)
    assert "import-folder" in set(runs["kind"])


def test_overview_counts_stay_consistent_after_relabels(seeded):
    birds = [r["image_id"] for r in q.review_items(seeded, "bird", None)]
    curation.decide(seeded, birds[:3], "relabel", "music")
    curation.decide(seeded, birds[3:4], "keep")
    curation.decide(seeded, birds[4:5], "reject")
    at = page("overview").run()
    frame = next(d.value for d in at.dataframe if "rejected" in d.value.columns).set_index("word")
    assert frame["collected"].sum() == frame["labelled now"].sum() == 32
    assert (frame["labelled now"] == frame["kept (reviewed)"] + frame["unreviewed"] + frame["rejected"]).all()
    assert tuple(frame.loc["bird", ["collected", "labelled now", "kept (reviewed)", "rejected"]]) == (8, 5, 1, 1)
    assert tuple(frame.loc["music", ["collected", "labelled now", "kept (reviewed)", "unreviewed"]]) == (8, 11, 3, 8)
    assert [m.value for m in at.metric][:2] == ["32", "4"]


def test_overview_next_steps_and_export_button_start_jobs(seeded, tmp_path):
    at = page("overview").run()
    labels = [b.label for b in at.button]
    assert any(lbl.startswith("Review ") and lbl.endswith(" flagged images") for lbl in labels)
    assert "Collect more images" in labels                      # 8 images per word is below the warning line
    out = tmp_path / "exported"
    at.text_input(key="export_to").input(str(out))
    at.multiselect(key="export_words").select("fruit")
    next(b for b in at.button if b.label == "Export").click().run()
    assert "Started `hashtags export --to" in texts(at)
    deadline = time.time() + 120
    while time.time() < deadline and not list((seeded / "logs").glob("*.rc")):
        time.sleep(0.5)
    assert next((seeded / "logs").glob("*.rc")).read_text() == "0"
    assert len(list((out / "images" / "fruit").iterdir())) == 8 and (out / "images.csv").exists()
    assert recent_runs(seeded, limit=1)[0]["kind"] == "export"


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


def review_order(h, word: str) -> list[int]:
    dets = q.detectors(h)
    det = "kmeans_2sigma" if "kmeans_2sigma" in dets else (dets[0] if dets else None)
    return [i["image_id"] for i in q.review_items(h, word, det, any_flag=True)]


def send(at: AppTest, *events: dict) -> AppTest:
    """What the grid component sends: its queue of events not yet acknowledged (the browser's state)."""
    at.session_state["review_grid"] = {"events": list(events)}
    return at.run()


def test_review_grid_events_bulk_actions_and_undo(seeded):
    at = page("review")
    at.session_state["review_word"] = "bird"
    at.run()
    assert not at.exception
    assert at.selectbox(key="review_detector").value == "(any detector)"      # the Overview's rule by default
    order = review_order(seeded, "bird")
    cells = grid_cells(at)
    assert [c["id"] for c in cells] == order and cells[0]["src"].startswith("data:image/jpeg")
    assert grid_data(at)["current"] == order[0] and grid_data(at)["matching"] == order
    assert any("outlier score" in line for line in cells[0]["info"])             # the lightbox caption
    x = {"id": "tab-1", "kind": "reject", "ids": [order[0]]}
    send(at, x)
    assert [(r["image_id"], r["decision"]) for r in curation.recent_decisions(seeded)] == [(order[0], "reject")]
    assert grid_data(at)["acked"] == ["tab-1"] and grid_data(at)["message"]["text"] == f"Rejected #{order[0]}."
    assert order[0] not in [c["id"] for c in grid_cells(at)]                   # the grid drawn after it shows it
    at.run()
    send(at, x)                                                                # a rerun, a resend: still once
    assert len(curation.recent_decisions(seeded, include_undone=True)) == 1
    send(at, x, {"id": "tab-2", "kind": "undo"})
    assert curation.recent_decisions(seeded) == []
    assert grid_data(at)["message"]["text"] == f"Undid #{order[0]} bird: reject → unreviewed."
    send(at, {"id": "tab-3", "kind": "relabel", "ids": order[1:4], "word": "music"})   # a bulk action: one step
    assert {v["word"] for v in curation.current_labels(seeded, order[1:4]).values()} == {"music"}
    acts = curation.session_actions(seeded, at.session_state["curation_session"], "review")
    assert [(a["decision"], a["n_images"]) for a in acts] == [("relabel", 3), ("reject", 1)]
    assert f"relabel #{order[1]}, #{order[2]}, #{order[3]} (bird) to music" in texts(at)
    at.button(key=f"undo_{acts[0]['action_id']}").click().run()                # any one action, from the list
    assert {v["word"] for v in curation.current_labels(seeded, order[1:4]).values()} == {"bird"}
    assert at.button(key=f"undo_{acts[0]['action_id']}").disabled
    send(at, {"id": "tab-4", "kind": "keep", "ids": [999999]})                 # an image deleted meanwhile
    assert grid_data(at)["message"]["bad"] and "no stored image with id 999999" in grid_data(at)["message"]["text"]
    assert grid_data(at)["acked"] == ["tab-4"]                                 # reported, not retried for ever
    assert at.button(key="undo_last").disabled                                  # every action is undone
    send(at, {"id": "tab-4", "kind": "keep", "ids": [999999]}, {"id": "tab-5", "kind": "undo"})
    assert "Nothing to undo" in grid_data(at)["message"]["text"]


def test_review_word_stays_chosen_while_counts_change(seeded):
    at = page("review").run()
    at.selectbox(key="review_word_box").select("music").run()
    first_label = word_label(at, "music")
    order = review_order(seeded, "music")
    for n in range(3):
        send(at, *[{"id": f"k-{i}", "kind": "keep", "ids": [order[i]]} for i in range(n + 1)])
        assert at.selectbox(key="review_word_box").value == "music"
    assert word_label(at, "music") != first_label                    # its counts moved on
    decisions = curation.recent_decisions(seeded)
    assert [d["image_id"] for d in decisions[::-1]] == order[:3]
    assert len(grid_data(at)["matching"]) == 8                      # music's images, not the default word's
    cells = grid_cells(at)
    assert [c["review"] for c in cells if c["id"] in order[:3]] == ["keep"] * 3    # the kept badges


def test_flagged_queue_across_words_has_the_overview_count(seeded):
    n = len(q.flagged_queue(seeded))
    assert n == sum(r["flagged"] for r in q.word_status(seeded))
    ov = page("overview").run()
    metric = next(m for m in ov.metric if m.label.startswith("Flagged"))
    assert int(metric.value) == n and q.flag_rule(None) in texts(ov)
    at = page("review").run()
    at.session_state["review_mode"] = "queue"
    at.run()
    assert not at.exception
    assert [c["id"] for c in grid_cells(at)] == [r["image_id"] for r in q.flagged_queue(
        seeded, score_detector="kmeans_2sigma" if "kmeans_2sigma" in q.detectors(seeded) else None)]
    assert len(grid_cells(at)) == n and f"of {n} {q.flag_rule(None)}" in texts(at)
    words = sorted({c["caption"].split(" · ")[1] for c in grid_cells(at)})
    at.multiselect(key="review_q_words").select(words[0]).run()
    assert {c["caption"].split(" · ")[1] for c in grid_cells(at)} == {words[0]}
    det = q.detectors(seeded)[0]
    at.selectbox(key="review_detector").select(det).run()               # one detector's flags
    assert len(grid_cells(at)) == len(q.flagged_queue(seeded, det, words=[words[0]]))
    at.multiselect(key="review_q_words").unselect(words[0]).run()
    scores = [r["score"] for r in q.flagged_queue(seeded, det)]
    at.number_input(key="review_q_min").set_value(float(max(scores))).run()   # a score threshold
    assert len(grid_cells(at)) == sum(s >= max(scores) for s in scores) >= 1


def test_review_relabel_targets_are_active_words_and_flag_counts_follow_the_detector(seeded):
    wh_words.set_active(seeded, "fruit", False)
    at = page("review").run()
    targets = at.selectbox(key="review_relabel_to").options
    assert "fruit" not in targets and "bird" not in targets and {"flowers", "music", "dog"} <= set(targets)
    assert grid_data(at)["relabel"] is None                          # the ↪ buttons wait for a target
    for det in q.detectors(seeded):
        at.selectbox(key="review_detector").select(det).run()
        flagged = {r["word"]: r["flagged"] for r in q.word_status(seeded, det)}
        assert word_label(at, "bird").startswith(f"bird ({flagged['bird']} flagged")
        at.selectbox(key="review_show").select("flagged").run()
        assert len(grid_cells(at)) == flagged["bird"]
        at.selectbox(key="review_show").select("all").run()


def test_review_opens_an_image_large_and_acts_on_it(seeded):
    music = q.review_items(seeded, "music", None)[-1]["image_id"]
    at = page("review")
    at.session_state["review_focus"] = music                         # what "Open in Review" elsewhere sets
    at.run()
    assert at.selectbox(key="review_word_box").value == "music"
    assert any(f"Image #{music}" in m.value for m in at.markdown)
    fields = next(d.value for d in at.dataframe if "field" in d.value.columns).set_index("field")["value"]
    assert fields["label now"] == "music" and fields["origin"] == "import" and "local file" in fields
    at.selectbox(key="review_panel_to").select("bird").run()
    at.button(key="review_panel_relabel").click().run()
    assert curation.current_labels(seeded, [music])[music]["word"] == "bird"
    assert f"Relabelled image #{music} to 'bird'." in texts(at)


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
        assert "hashtags features" in texts(at)
        return
    assert at.get("plotly_chart")
    assert "32 images" in texts(at)
    stored = q.embedding_map(seeded, "pca")
    assert stored and f"stored by features run {stored['run_id']}" in texts(at)      # read, not computed
    import json
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    colours = [t["marker"]["color"] for t in spec["data"] if t["name"] != "flagged (ring)"]
    assert len(colours) == len(set(stored["words"])) == len(set(colours))          # one colour per word
    at.radio(key="emb_colour").set_value("flag").run()
    names = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert names <= {"flagged", "not flagged", "flagged (ring)"} and "not flagged" in names
    at.radio(key="emb_method").set_value("tsne").run()
    assert not at.exception and at.get("plotly_chart")
    assert f"stored by features run {q.embedding_map(seeded, 'tsne')['run_id']}" in texts(at)


def test_evaluation_page(seeded):
    at = page("evaluation").run()
    assert not at.exception
    if not q.model_comparison(seeded):
        assert "hashtags train" in texts(at)
        pytest.skip("no train/evaluate job in this build yet")
    comp = at.dataframe[0].value
    assert {"top-1", "top-5", "in the study (top-1)"} <= set(comp.columns)
    assert set(comp["in the study (top-1)"]) <= {"bag-of-words SVM (19%)", "fine-tuned ResNet-18 (77%)",
                                                          "ConSE (32%)", "not in the study"}   # never "None"
    assert len(at.get("plotly_chart")) >= 2  # confusion heatmap and per-word bars (curves when stored)
    rows = sorted(q.model_comparison(seeded), key=lambda r: (r["top1"], r["top5"], r["model_id"]),
                  reverse=True)                                      # the page's order: best top-1 first
    held = [r for r in rows if r["scope"] != "all"] or rows
    assert rows[at.selectbox(key="eval_pick").value]["top1"] == max(r["top1"] for r in held)   # the best first
    heat = next(c for c in at.get("plotly_chart") if "eval_heat_" in c.proto.id)
    assert '"texttemplate":"%{text}"' in heat.proto.spec.replace(" ", "")      # counts in the cells
    at.selectbox(key="cell_true").select("bird").run()
    at.selectbox(key="cell_pred").select("bird").run()
    assert not at.exception
    sel = rows[at.selectbox(key="eval_pick").value]
    img = q.eval_examples(seeded, sel["eval_run_id"], sel["model_id"], sel["scope"], true_word="bird",
                          pred_word="bird")[0]["image_id"]
    at.session_state["eval_open"] = img                              # a click on the image in the grid
    at.run()
    at.button(key="eval_panel_reject").click().run()
    assert curation.current_labels(seeded, [img])[img]["review"] == "reject"


def test_predict_from_url(seeded, httpserver, monkeypatch):
    monkeypatch.setenv("HASHTAG_ALLOW_PRIVATE_URLS", "1")
    at = page("predict").run()
    assert not at.exception
    if not has_models(seeded):
        assert "hashtags train" in texts(at)
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
    start_button(at).click().run()
    assert "Started `hashtags import-folder" in texts(at)
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
    at.text_input(key="jp_import-folder_path").input(str(tmp_path / "no-such-folder"))
    start_button(at).click().run()
    deadline = time.time() + 180
    while time.time() < deadline and len(list(log_dir.glob("*.rc"))) < 2:
        time.sleep(1)
    at.run()
    failed = [e.value for e in at.error if "import-folder failed: " in e.value]
    assert failed and "no-such-folder is not a folder" in failed[0] and "Traceback" not in failed[0]


def test_jobs_page_shows_a_running_jobs_own_progress(seeded):
    from hashtag_workbench.warehouse.progress import write_progress
    from hashtag_workbench.warehouse.runs import finish_run, start_run
    rid = start_run(seeded, "features", {})                       # this process: alive, so the run is running
    write_progress(seeded, rid, n=12, total=48, desc="efficientnet_lite0", unit="img")
    at = page("jobs").run()
    bars = at.get("progress")
    assert bars and bars[0].proto.value == 25 and "efficientnet_lite0: 12 / 48 img" in bars[0].proto.text
    finish_run(seeded, rid, "ok", {})


def test_pages_work_while_another_process_writes(seeded):
    """A job in another process writing (short transactions) must not break a page: reads wait for the lock."""
    import subprocess
    import sys
    code = ("import sys, time; from hashtag_workbench.warehouse.db import connect\n"
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
    from hashtag_workbench.warehouse.thumbs import thumb_path, thumbnail
    item = q.review_items(seeded, "bird", None)[0]
    p = thumbnail(seeded, item["sha256"], item["path"])
    assert p == thumb_path(seeded, item["sha256"]) and p.exists()
    with Image.open(io.BytesIO(p.read_bytes())) as im:
        assert max(im.size) <= 192
    mtime = p.stat().st_mtime_ns
    assert thumbnail(seeded, item["sha256"], item["path"]).stat().st_mtime_ns == mtime


# ---------------------------------------------------------------- issue 21: jobs, predict, evaluation, words

def _fake_launch(h, args: list[str], rc: int | None, log_text: str, pid: int) -> dict:
    """A launch record as launcher.start_job writes it, for a process that is this test (alive) or ended."""
    import json
    logs = h / "logs"
    logs.mkdir(exist_ok=True)
    name = f"20260101-000000-{args[0]}-{pid}-{rc}.log"
    (logs / name).write_text(log_text)
    if rc is not None:
        (logs / name).with_suffix(".rc").write_text(str(rc))
    rec = {"pid": pid, "args": args, "command": args[0], "log": name, "started": time.time(),
           "before_run_id": q.max_run_id(h)}
    with open(logs / "launched.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rec


def test_jobs_page_streams_a_running_launched_jobs_progress_and_log(seeded):
    import os

    from hashtag_workbench.warehouse.progress import write_progress
    from hashtag_workbench.warehouse.runs import finish_run, start_run
    _fake_launch(seeded, ["outliers"], None, "phash: 3/10\nscoring\n", os.getpid())
    rid = start_run(seeded, "outliers", {})                       # this process: alive, so the run is running
    write_progress(seeded, rid, n=2, total=3, desc="outlier detectors", unit="detector")
    at = page("jobs").run()
    assert not at.exception
    bars = [b.proto for b in at.get("progress")]
    assert len(bars) == 1 and bars[0].value == 66 and "outlier detectors: 2 / 3 detector (67%)" in bars[0].text
    assert "phash: 3/10\nscoring" in [c.value for c in at.code][0]          # its log, while it runs
    assert "Stop" in [b.label for b in at.button] and "Dismiss" not in [b.label for b in at.button]
    finish_run(seeded, rid, "ok", {})


def test_jobs_page_keeps_finished_output_and_dismisses_failures(seeded):
    ok = _fake_launch(seeded, ["stats"], 0, "stats: done 32 in 0.1 s\n", 999_991)
    bad = _fake_launch(seeded, ["import-folder", "/nope"], 2, "error: /nope is not a folder\n", 999_992)
    at = page("jobs").run()
    assert "stats: done 32 in 0.1 s" in texts(at)                     # a finished job's output stays visible
    assert [e.value for e in at.error if "import-folder failed: /nope is not a folder" in e.value]
    at.button(key=f"dismiss_{bad['log']}").click().run()
    assert not at.exception
    assert "import-folder failed" not in texts(at) and "stats: done 32" in texts(at)
    at = page("jobs").run()                                           # a new session: still dismissed
    assert "import-folder failed" not in texts(at)
    from hashtag_workbench.dashboard import launcher
    assert [r["log"] for r in launcher.launched(seeded)] == [ok["log"]]


def test_collect_more_images_asks_words_count_and_confirmation(seeded):
    from hashtag_workbench.dashboard import launcher
    at = page("jobs")
    at.session_state["collect_request"] = True                        # what Overview's button asks for
    at.run()
    assert at.selectbox(key="job_command").value == "scrape-images"
    at.number_input(key="collect_per").set_value(20).run()
    at.multiselect(key="collect_words").select("bird").select("fruit").run()
    assert "2 words, 24 photos to download" in texts(at)            # 8 stored each, 12 more each
    at.button(key="collect_start").click().run()
    assert "Nothing started: tick the confirmation first." in texts(at)
    assert launcher.launched(seeded) == []
    at.button(key="collect_below").click().run()                      # every word below 20
    active = [w["word"] for w in wh_words.list_words(seeded, active_only=True)]    # the 4 demo words have 8
    assert set(at.multiselect(key="collect_words").value) == set(active)
    assert f"{len(active)} words, {4 * 12 + (len(active) - 4) * 20:,} photos to download" in texts(at)
    assert launcher.collect_plan({"a": 5, "b": 30}, 20) == {"a": 15, "b": 0}


def test_evaluation_tables_sorted_best_marked_and_confused_pairs(seeded):
    from hashtag_workbench.core.confusion import top_confused_pairs
    at = page("evaluation").run()
    assert not at.exception
    rows = q.model_comparison(seeded)
    tables = [d.value for d in at.dataframe if "top-1" in d.value.columns]
    assert len(tables) == len({r["scope"] for r in rows})                  # one table per scope
    for t in tables:
        assert list(t["top-1"]) == sorted(t["top-1"], reverse=True)        # sorted by top-1
        assert t.iloc[0][""] == "★ best" and (t[""] == "★ best").sum() == (t["top-1"] == t["top-1"].max()).sum()
    assert any("fine-tuned ResNet-18 (77%)" in set(t["in the study (top-1)"]) for t in tables)
    comp = sorted(rows, key=lambda r: (r["top1"], r["top5"], r["model_id"]), reverse=True)   # the page's order
    sel = comp[at.selectbox(key="eval_pick").value]
    cells = q.confusion(seeded, sel["eval_run_id"], sel["model_id"], sel["scope"])
    want = top_confused_pairs(cells, 15)
    pairs = next(d.value for d in at.dataframe if "predicted as" in d.value.columns)
    assert list(zip(pairs["true word"], pairs["predicted as"], pairs["images"])) == [
        (p["true_word"], p["pred_word"], p["n"]) for p in want]
    assert pairs["cosine"].between(-1, 1).all()                             # spaCy has all four demo words
    assert "word-vector cosine from spaCy" in texts(at)
    heat = next(c for c in at.get("plotly_chart") if "eval_heat_" in c.proto.id)
    true_words = {c["true_word"] for c in cells if c["n"] > 0}
    import json
    y = next(t["y"] for t in json.loads(heat.proto.spec)["data"] if t["type"] == "heatmap")
    assert set(y) == true_words                                             # no zero-support rows


def test_predict_names_each_models_measured_top1_and_network_errors_in_one_line(seeded, monkeypatch):
    monkeypatch.setenv("HASHTAG_ALLOW_PRIVATE_URLS", "1")
    at = page("predict").run()
    assert not at.exception
    top1 = {}
    for r in q.model_comparison(seeded):                                   # held-out scope first, as the page
        if r["model_id"] not in top1 or r["scope"] == "val":
            top1[r["model_id"]] = r
    options = at.selectbox(key="pred_sup").options + at.selectbox(key="pred_zs").options
    for mid, r in top1.items():
        shown = [o for o in options if f"(model {mid}," in o]
        if shown:
            assert f"top-1 {r['top1']:.0%} on {r['n_images']} {r['scope']} images" in shown[0], shown
    assert any("top-1 " in o for o in options)
    at.text_input(key="pred_url").input("http://127.0.0.1:9/photo.jpg")   # nothing listens on port 9
    next(b for b in at.button if b.label == "Fetch and predict").click().run()
    err = [e.value.replace("\\", "") for e in at.error]
    assert err == ["Cannot use that URL: network error: the server refused the connection"], err


def test_word_space_uses_the_zero_shot_models_vectors(seeded):
    from hashtag_workbench.dashboard.common import default_zero_shot
    at = page("word_space")
    at.session_state["ws_method"] = "pca"
    at.run()
    assert not at.exception
    assert at.selectbox(key="ws_spec").value == default_zero_shot()[1].word_vectors == "spacy"
    assert "What it is for" in texts(at)
    t0 = time.perf_counter()
    at.run()                                                               # same vocabulary: from the cache
    assert time.perf_counter() - t0 < 5


def test_words_page_counts_images_and_keeps_the_add_form_open_after_an_error(seeded):
    at = page("words").run()
    table = next(d.value for d in at.dataframe if "images" in d.value.columns).set_index("word")
    assert table.loc["bird", "images"] == 8 and table.loc["dog", "images"] == 0
    at.text_input(key="add_name").input("bird")                            # exists already
    at.button(key="add_submit").click().run()
    assert at.expander[0].proto.expanded and at.text_input(key="add_name").value == "bird"
    assert any("bird" in e.value for e in at.error)
    at.text_input(key="add_name").input("dusk")
    at.button(key="add_submit").click().run()
    assert "Added the word 'dusk'" in [t.value for t in at.toast][0] and at.text_input(key="add_name").value == ""


def test_deploy_button_and_developer_menu_hidden():
    import tomllib

    from hashtag_workbench.jobs.dashboard import streamlit_command
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())  # `streamlit run` from the root
    assert cfg["client"]["toolbarMode"] == "minimal"
    cmd = streamlit_command(host="127.0.0.1", port=8501)                   # `hashtags dashboard`, from anywhere
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "minimal"
