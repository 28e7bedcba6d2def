"""`train --clip-model ORG/NAME`: a hub id downloaded once into the data directory, then used offline.

A fake Hugging Face hub on 127.0.0.1 serves a tiny random CLIP saved by the test. It answers exactly
what huggingface_hub 2.x's `snapshot_download` asks for:
  GET  /api/models/<org>/<name>/revision/<rev>          -> {"id", "sha"}          (HfApi.repo_info)
  GET  /api/models/<org>/<name>/tree/<sha>?recursive=…  -> [{type, path, size, oid}] (HfApi.list_repo_tree)
  HEAD /<org>/<name>/resolve/<sha>/<file>               -> X-Repo-Commit, ETag, Content-Length
  GET  /<org>/<name>/resolve/<sha>/<file>               -> the bytes
An unknown repo gets 404 with `X-Error-Code: RepoNotFound`, as the real hub answers.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import socket
from pathlib import Path

import pytest
from werkzeug import Request, Response

from tests.test_clip import photos, save_tiny_clip

REPO = "tiny-org/tiny-clip"


class FakeHub:
    def __init__(self, server, repos: dict[str, Path]):
        self.repos = {rid: {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
                      for rid, d in repos.items()}
        self.sha = {rid: hashlib.sha1(rid.encode()).hexdigest() for rid in repos}
        self.calls: list[tuple[str, str]] = []
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @staticmethod
    def _json(body, status: int = 200, **headers) -> Response:
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def handle(self, request: Request) -> Response:
        self.calls.append((request.method, request.path))
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)", request.path)
        if api:
            rid, what, _rev = api.groups()
            if rid not in self.repos:
                return self._json({"error": "Repository not found"}, 404, **{"X-Error-Code": "RepoNotFound"})
            if what == "revision":
                return self._json({"id": rid, "sha": self.sha[rid], "private": False})
            return self._json([{"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                               for path, data in self.repos[rid].items()])
        res = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", request.path)
        if res and res.group(1) in self.repos and res.group(3) in self.repos[res.group(1)]:
            data = self.repos[res.group(1)][res.group(3)]
            # werkzeug sends no body for HEAD but keeps the Content-Length of this one
            return Response(data, headers={"X-Repo-Commit": self.sha[res.group(1)],
                                           "ETag": f'"{hashlib.sha1(data).hexdigest()}"'})
        return self._json({"error": "Entry not found"}, 404, **{"X-Error-Code": "EntryNotFound"})


@pytest.fixture
def online(monkeypatch):
    """Network allowed for huggingface_hub (the test suite sets HF_HUB_OFFLINE=1 for everything else)."""
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub(tmp_path_factory, online, monkeypatch):
    from pytest_httpserver import HTTPServer
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    fake = FakeHub(srv, {REPO: save_tiny_clip(tmp_path_factory.mktemp("hub") / "tiny-clip")})
    monkeypatch.setenv("HF_ENDPOINT", srv.url_for("/").rstrip("/"))
    yield fake
    srv.clear()
    if srv.is_running():
        srv.stop()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    from hashtag_workbench.jobs.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--home", str(home), "train", "--models", "clip", *args])
    return rc, out.getvalue(), err.getvalue()


def test_hub_id_downloads_once_into_the_data_dir_then_runs_offline(hub, seeded_home, monkeypatch):
    from hashtag_workbench.core.predictor import ImageBatch, load_model
    from hashtag_workbench.warehouse import models as wh
    rc, out, err = cli(seeded_home, "--clip-model", REPO)
    assert rc == 0, err
    sha = hub.sha[REPO]
    files = set(hub.repos[REPO])
    assert ("GET", f"/api/models/{REPO}/revision/main") in hub.calls
    assert ("GET", f"/api/models/{REPO}/tree/{sha}") in hub.calls
    for f in files:  # only what transformers needs was fetched, each file once
        assert hub.calls.count(("GET", f"/{REPO}/resolve/{sha}/{f}")) == 1
    snap = seeded_home / "models" / "hub" / "models--tiny-org--tiny-clip" / "snapshots" / sha
    assert {p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()} == files
    assert f"[hub] {REPO}: downloading from" in out and "once" in out
    rec = wh.models(seeded_home, kinds=["clip"])[-1]
    assert rec["config"]["model"] == REPO and Path(rec["config"]["source"]) == snap
    assert REPO in rec["name"]                       # the comparison tables name the hub id

    # offline from now on: the hub is gone, the copy in the data directory is used
    n_calls = len(hub.calls)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    rc, out, err = cli(seeded_home, "--clip-model", REPO)
    assert rc == 0, err
    assert len(hub.calls) == n_calls and "using the copy in" in out
    model = load_model(wh.models(seeded_home, kinds=["clip"])[-1])
    probs = model.predict(ImageBatch.of(photos(1)))
    assert probs.shape == (1, len(model.classes)) and abs(probs.sum() - 1) < 1e-5


def test_unknown_hub_id_says_so_in_one_line(hub, seeded_home):
    rc, _, err = cli(seeded_home, "--clip-model", "nobody/no-such-clip")
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no model 'nobody/no-such-clip' on the Hugging Face hub")
    assert not list((seeded_home / "models").glob("*/model.npz"))   # nothing trained, nothing half-written


def test_no_network_and_nothing_cached_says_so_in_one_line(online, seeded_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    rc, _, err = cli(seeded_home, "--clip-model", REPO)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot download {REPO}: no connection")
    assert "run this once with network access" in lines[0]


def test_hub_offline_mode_is_named_when_nothing_is_cached(seeded_home):
    # the suite's own HF_HUB_OFFLINE=1 stands for a user who switched the hub off
    rc, _, err = cli(seeded_home, "--clip-model", REPO)
    assert rc == 2 and "(HF_HUB_OFFLINE is set)" in err and len(err.strip().splitlines()) == 1
