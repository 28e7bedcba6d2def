"""Shared fixtures: real DuckDB warehouses in temp dirs, seeded with the bundled demo photos."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from hashtag_workbench.jobs.dashboard import free_port  # noqa: F401 (the tests' free port)

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEMO_PHOTOS = ROOT / "datasets" / "demo" / "photos"
CLI = [sys.executable, "-m", "hashtag_workbench"]  # the `hashtags` command, in this interpreter




def _private_copy(template: Path, h: Path, monkeypatch) -> Path:
    """A writable copy of a template warehouse, with HASHTAG_HOME pointing at it."""
    shutil.copytree(template, h)
    monkeypatch.setenv("HASHTAG_HOME", str(h))
    return h


@pytest.fixture(scope="session", autouse=True)
def _shared_onnx_cache(tmp_path_factory):
    """One ONNX export per weights file per session, not per data dir (tests/test_onnx.py tests its own)."""
    os.environ.setdefault("HASHTAG_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty data directory; HASHTAG_HOME points at it."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HASHTAG_HOME", str(h))
    return h


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    """A warehouse with the shipped vocabulary seeded once per session (seeding is slow; copying is not)."""
    from hashtag_workbench.jobs.common import ensure_ready
    h = tmp_path_factory.mktemp("seeded") / "home"
    ensure_ready(h)
    return h


@pytest.fixture
def seeded_home(seeded_template, tmp_path, monkeypatch) -> Path:
    """A private, writable copy of the seeded warehouse; HASHTAG_HOME points at it."""
    return _private_copy(seeded_template, tmp_path / "home", monkeypatch)


def small_demo_tree(dest: Path, words=("bird", "fruit", "flowers", "music"), per_word: int = 8) -> Path:
    """Copy a few demo photos per word into dest/<word>/ (a folder-per-word tree)."""
    for word in words:
        files = sorted((DEMO_PHOTOS / word).glob("*.jpg"))[:per_word]
        (dest / word).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, dest / word / f.name)
    return dest


@pytest.fixture(scope="session")
def demo_home_template(tmp_path_factory) -> Path:
    """A warehouse holding 8 photos of each of 4 demo words (built once per session; copy before writing)."""
    from hashtag_workbench.jobs.import_folder import import_folder
    base = tmp_path_factory.mktemp("demo")
    tree = small_demo_tree(base / "tree")
    h = base / "home"
    import_folder(h, tree)
    return h


@pytest.fixture
def demo_home(demo_home_template, tmp_path, monkeypatch) -> Path:
    """A private, writable copy of the small demo warehouse."""
    return _private_copy(demo_home_template, tmp_path / "demo_home", monkeypatch)


@pytest.fixture
def ddg(monkeypatch):
    """A fake DuckDuckGo on 127.0.0.1 that the scraper is pointed at (see tests/fake_sites.py)."""
    from pytest_httpserver import HTTPServer

    from tests.fake_sites import FakeDDG
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    fake = FakeDDG(srv)
    monkeypatch.setenv("HASHTAG_DDG_URL", fake.base)
    # The fake site serves image URLs on 127.0.0.1, which downloads refuse unless allowed explicitly.
    monkeypatch.setenv("HASHTAG_ALLOW_PRIVATE_URLS", "1")
    yield fake
    srv.clear()
    srv.stop()
