"""Curation log (decide / undo / recent), review ordering, and the dashboard's safety helpers."""
from __future__ import annotations

from pathlib import Path

import pytest

from hashtag_workbench.core.review_order import group_duplicates, page_bounds
from hashtag_workbench.core.urlcheck import UnsafeURL, check_url
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.images import labelled_images
from tests.conftest import CLI


def _ids(home, word):
    return [r["image_id"] for r in labelled_images(home, words=[word])]


def test_decide_many_at_once_and_undo(demo_home):
    birds = _ids(demo_home, "bird")
    ids = curation.decide(demo_home, birds[:3], "reject")
    assert len(ids) == 3
    assert set(_ids(demo_home, "bird")) == set(birds[3:])
    rec = curation.recent_decisions(demo_home, 10)
    assert [r["decision"] for r in rec] == ["reject"] * 3 and {r["image_id"] for r in rec} == set(birds[:3])
    assert sorted(curation.undo(demo_home, last=2)) == sorted(ids[1:])
    assert len(_ids(demo_home, "bird")) == len(birds) - 1
    assert curation.undo(demo_home, [ids[0]]) == [ids[0]]
    assert set(_ids(demo_home, "bird")) == set(birds)
    assert curation.recent_decisions(demo_home, 10) == []
    assert len(curation.recent_decisions(demo_home, 10, include_undone=True)) == 3  # history is kept


def test_relabel_then_keep_keeps_the_new_word(demo_home):
    img = _ids(demo_home, "bird")[0]
    curation.decide(demo_home, [img], "relabel", "fruit")
    curation.decide(demo_home, [img], "keep")
    assert curation.current_labels(demo_home, [img])[img] == {"word": "fruit", "original_word": "bird",
                                                               "review": "keep"}
    curation.undo(demo_home, last=2)
    assert curation.current_labels(demo_home, [img])[img]["word"] == "bird"


def test_decide_checks_its_inputs(demo_home):
    img = _ids(demo_home, "bird")[0]
    with pytest.raises(ValueError, match="decision must be"):
        curation.decide(demo_home, [img], "maybe")
    with pytest.raises(ValueError, match="needs the word"):
        curation.decide(demo_home, [img], "relabel")
    with pytest.raises(ValueError, match="unknown word"):
        curation.decide(demo_home, [img], "relabel", "no-such-word")
    with pytest.raises(ValueError, match="no stored image"):
        curation.decide(demo_home, [img, 999999], "keep")
    assert curation.recent_decisions(demo_home) == []  # nothing half-written
    assert curation.decide(demo_home, [], "keep") == []


def test_word_status_counts(demo_home):
    birds = _ids(demo_home, "bird")
    curation.decide(demo_home, birds[:2], "reject")
    curation.decide(demo_home, birds[2:3], "relabel", "fruit")
    st = {r["word"]: r for r in q.word_status(demo_home)}
    assert (st["bird"]["stored"], st["bird"]["kept"], st["bird"]["rejected"]) == (8, 5, 2)
    assert st["fruit"]["kept"] == 9 and st["fruit"]["reviewed"] == 1
    items = q.review_items(demo_home, "bird", None, show="rejected")
    assert sorted(i["image_id"] for i in items) == sorted(birds[:2])


def test_group_duplicates_and_paging():
    items = [{"id": 1, "group_id": None}, {"id": 2, "group_id": 7}, {"id": 3, "group_id": None},
             {"id": 4, "group_id": 7}, {"id": 5, "group_id": 8}, {"id": 6, "group_id": 8}]
    assert [i["id"] for i in group_duplicates(items)] == [1, 2, 4, 3, 5, 6]
    assert page_bounds(125, 3, 60) == (120, 125, 3)
    assert page_bounds(125, 9, 60) == (120, 125, 3)
    assert page_bounds(0, 1, 60) == (0, 0, 1)


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.com/a.jpg", "only http"),
    ("file:///etc/passwd", "only http"),
    ("javascript:alert(1)", "only http"),
    ("http://127.0.0.1/a.jpg", "private"),
    ("http://[::1]/a.jpg", "private"),
    ("http://169.254.169.254/latest/meta-data", "private"),
    ("http://10.1.2.3/x.png", "private"),
    ("http://[::ffff:192.168.0.1]/x.png", "private"),
    ("http://localhost:8501/", "this machine"),
    ("http://user:pw@example.com/a.jpg", "user name"),
    ("https:///nohost", "no host"),
])
def test_check_url_refuses_unsafe_urls(url, reason):
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url, resolve=lambda h, p: ["93.184.216.34"])


def test_check_url_resolves_and_allows_explicitly():
    assert check_url("https://example.com/a.jpg", resolve=lambda h, p: ["93.184.216.34"]) == \
        ("https", "example.com", 443)
    with pytest.raises(UnsafeURL, match="resolves to a private"):
        check_url("http://intranet.example/a.jpg", resolve=lambda h, p: ["192.168.1.5"])
    assert check_url("http://127.0.0.1:9/a.jpg", allow_private=True)[1] == "127.0.0.1"


def test_fetch_limits_and_redirect_checks(httpserver):
    from hashtag_workbench.infra.http import FetchError, fetch_image_bytes
    httpserver.expect_request("/ok.jpg").respond_with_data(b"x" * 100, content_type="image/jpeg")
    httpserver.expect_request("/big.jpg").respond_with_data(b"x" * 5000, content_type="image/jpeg")
    httpserver.expect_request("/missing.jpg").respond_with_data("nope", status=404)
    httpserver.expect_request("/hop").respond_with_data("", status=302, headers={"Location": "/ok.jpg"})
    url = httpserver.url_for
    with pytest.raises(FetchError, match="not allowed"):
        fetch_image_bytes(url("/ok.jpg"))  # this machine refused by default
    with pytest.raises(FetchError, match="not allowed"):
        fetch_image_bytes(url("/ok.jpg").replace("localhost", "127.0.0.1"))
    assert fetch_image_bytes(url("/hop"), allow_private=True) == b"x" * 100  # redirects are followed (checked)
    assert fetch_image_bytes(url("/ok.jpg"), allow_private=True) == b"x" * 100
    with pytest.raises(FetchError, match="too large"):
        fetch_image_bytes(url("/big.jpg"), allow_private=True, max_bytes=1000)
    with pytest.raises(FetchError, match="404"):
        fetch_image_bytes(url("/missing.jpg"), allow_private=True)


def test_launcher_builds_forms_from_the_job_schema():
    import argparse

    from hashtag_workbench.dashboard.launcher import build_args, commands, form_spec
    from hashtag_workbench.jobs.schema import describe
    parser = argparse.ArgumentParser(prog="hashtags")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the whole pipeline")
    p = sub.add_parser("features", help="CNN features")
    p.add_argument("path", help="folder holding one sub-folder per word")
    p.add_argument("--backbone", choices=["a", "b"], help="CNN to use")
    p.add_argument("--weights", help="weights file for the backbone")
    p.add_argument("--retry-failed", action="store_true", help="try again images that failed before")
    schema = describe(parser)
    assert commands(schema) == {"demo": "run the whole pipeline", "features": "CNN features"}
    spec = form_spec(schema, "features")
    assert spec["positionals"] == [{"name": "path", "help": "folder holding one sub-folder per word"}]
    assert [(o["flag"], o["choices"], o["metavar"] is None) for o in spec["options"]] == [
        ("--backbone", ["a", "b"], False), ("--weights", None, False), ("--retry-failed", None, True)]
    assert build_args("features", spec, {"path": "/x", "--backbone": "b", "--weights": "",
                                         "--retry-failed": True}) == ["features", "/x", "--backbone", "b",
                                                                      "--retry-failed"]
    with pytest.raises(ValueError, match="required"):
        build_args("features", spec, {})
    with pytest.raises(ValueError, match="not a job command"):
        build_args("x; rm -rf /", spec, {"path": "/x"})


def test_schema_command_lists_every_job_with_its_arguments(tmp_path):
    import json
    import subprocess

    from hashtag_workbench.jobs.cli import JOBS
    out = subprocess.run([*CLI, "--home", str(tmp_path), "schema"], capture_output=True,
                         text=True, check=True)
    schema = json.loads(out.stdout)
    assert list(schema) == list(JOBS)
    flags = {a["flag"] for a in schema["import-folder"]["arguments"]}
    assert "--add-words" in flags
    assert [a["name"] for a in schema["import-folder"]["arguments"] if a["positional"]] == ["path"]


def test_every_job_module_is_registered_once():
    import pkgutil

    from hashtag_workbench import jobs
    from hashtag_workbench.jobs.cli import JOBS
    commands = {m.name for m in pkgutil.iter_modules(jobs.__path__)
                if not m.ispkg and "def run_command(" in (Path(jobs.__path__[0]) / f"{m.name}.py").read_text()}
    assert set(JOBS.values()) == commands
    assert all(name.replace("-", "_") == module for name, module in JOBS.items())


def test_job_error_is_one_line_with_status_2(tmp_path, capsys, monkeypatch):
    from hashtag_workbench.jobs import cli
    from hashtag_workbench.jobs.runner import JobError

    def boom(args):
        raise JobError("nothing to do: run `hashtags import-folder PATH` first")
    parser = cli.build_parser(only="stats")
    monkeypatch.setattr(cli, "build_parser", lambda only=None: parser)
    parser._subparsers._group_actions[0].choices["stats"].set_defaults(func=boom)
    assert cli.main(["--home", str(tmp_path), "stats"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: nothing to do: run `hashtags import-folder PATH` first"


# ---------------------------------------------------------------- actions and grid events (issue 21)

def test_a_bulk_action_is_one_undo_step_and_says_what_it_restored(demo_home):
    birds = _ids(demo_home, "bird")
    curation.decide(demo_home, birds[:3], "reject", session="tab-a", page="review")
    curation.decide(demo_home, birds[3:4], "keep", session="tab-a", page="review")
    curation.decide(demo_home, birds[4:5], "reject", session="tab-b", page="review")      # another tab
    curation.decide(demo_home, birds[5:6], "reject", session="tab-a", page="embedding")   # another page
    acts = curation.session_actions(demo_home, "tab-a", "review")
    assert [(a["decision"], a["n_images"]) for a in acts] == [("keep", 1), ("reject", 3)]
    assert curation.describe_action(acts[1]) == f"reject #{birds[0]}, #{birds[1]}, #{birds[2]} (bird)"
    assert curation.undo_last_action(demo_home, "tab-a", "review") == [f"#{birds[3]} bird: keep → unreviewed"]
    lines = curation.undo_last_action(demo_home, "tab-a", "review")
    assert lines == [f"#{i} bird: reject → unreviewed" for i in sorted(birds[:3])]
    assert curation.undo_last_action(demo_home, "tab-a", "review") == []            # nothing else of this page
    labels = curation.current_labels(demo_home, birds[:6])
    assert [labels[i]["review"] for i in birds[:6]] == ["unreviewed"] * 4 + ["reject", "reject"]


def test_undo_any_one_action_and_relabel_lines(demo_home):
    birds = _ids(demo_home, "bird")
    first = curation.decide(demo_home, birds[:1], "relabel", "fruit", session="s", page="review")
    curation.decide(demo_home, birds[1:2], "keep", session="s", page="review")
    older = curation.session_actions(demo_home, "s", "review")[1]
    assert older["decision"] == "relabel" and first
    assert curation.undo_action(demo_home, older["action_id"]) == [f"#{birds[0]} fruit: relabel → bird, unreviewed"]
    assert curation.undo_action(demo_home, older["action_id"]) == []                   # already undone
    assert curation.current_labels(demo_home, birds[1:2])[birds[1]]["review"] == "keep"   # the newer one stands
    with pytest.raises(ValueError, match="no curation action"):
        curation.undo_action(demo_home, 999999)


def test_grid_events_apply_at_most_once_in_order(demo_home):
    birds = _ids(demo_home, "bird")
    events = [{"id": f"t1-{n}", "kind": "keep", "ids": [b]} for n, b in enumerate(birds[:4])]
    first = curation.apply_events(demo_home, events[:2], session="t1", page="review")
    assert [(r["status"], r["new"]) for r in first] == [("applied", True)] * 2
    again = curation.apply_events(demo_home, events, session="t1", page="review")   # resent with two more
    assert [r["new"] for r in again] == [False, False, True, True]
    assert again[0]["message"] == first[0]["message"] == f"Kept #{birds[0]}."
    rec = curation.recent_decisions(demo_home, 100)
    assert [r["image_id"] for r in rec[::-1]] == birds[:4]                             # once each, in order
    undos = [{"id": f"t1-u{n}", "kind": "undo"} for n in range(3)]
    res = curation.apply_events(demo_home, undos + undos, session="t1", page="review")
    assert [r["new"] for r in res] == [True] * 3 + [False] * 3
    assert [r["message"] for r in res[:3]] == [f"Undid #{b} bird: keep → unreviewed." for b in birds[3:0:-1]]
    assert [r["image_id"] for r in curation.recent_decisions(demo_home, 100)] == birds[:1]


def test_grid_events_on_missing_images_or_bad_input_are_reported_not_applied(demo_home):
    birds = _ids(demo_home, "bird")
    res = curation.apply_events(demo_home, [
        {"id": "x-1", "kind": "reject", "ids": [999999]},
        {"id": "x-2", "kind": "relabel", "ids": [birds[0]], "word": "no-such-word"},
        {"id": "x-3", "kind": "maybe", "ids": [birds[0]]},
        {"id": "x-4", "kind": "undo"},
        {"id": "x-5", "kind": "reject", "ids": [birds[1]]}], session="x", page="review")
    assert [r["status"] for r in res] == ["not_applied"] * 4 + ["applied"]
    assert "no stored image with id 999999" in res[0]["message"] and "unknown word" in res[1]["message"]
    assert "Nothing to undo" in res[3]["message"]
    assert [(r["image_id"], r["decision"]) for r in curation.recent_decisions(demo_home)] == [(birds[1], "reject")]
    again = curation.apply_events(demo_home, [{"id": "x-1", "kind": "reject", "ids": [birds[2]]}], session="x",
                                  page="review")
    assert again[0]["status"] == "not_applied" and not again[0]["new"]               # an id is never reused


def test_maps_2d_and_distinct_colours():
    import numpy as np

    from hashtag_workbench.core.maps import distinct_colours, maps_2d
    P = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    maps = maps_2d(P, sample=25)
    rows, xy = maps["pca"]
    assert len(rows) == 40 and np.allclose(xy, P[:, :2])
    rows, xy = maps["tsne"]
    assert len(rows) == 25 == len(set(rows)) and xy.shape == (25, 2) and np.isfinite(xy).all()
    cols = distinct_colours(76)
    assert len(set(cols)) == 76 and all(len(c) == 7 and c.startswith("#") for c in cols)
    with pytest.raises(ValueError, match="non-empty"):
        maps_2d(np.zeros((0, 3)))


def test_map_job_needs_features_first(demo_home, capsys):
    from hashtag_workbench.jobs.cli import main
    assert main(["--home", str(demo_home), "map"]) == 2
    assert "no PCA fit yet: run `hashtags features` first" in capsys.readouterr().err
