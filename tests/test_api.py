"""`hashtags serve`: a real server (the CLI command, in a subprocess) on 127.0.0.1 answering real requests.

One server with a token serves the module; every test sends the token except the one that
checks the refusals. Models are real (a linear probe on 4 demo words and the default ConSE).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from hashtag_workbench.api.settings import MAX_IMAGE_BYTES, MAX_IMAGES, check_bind, is_loopback
from hashtag_workbench.warehouse.db import connect
from tests.conftest import CLI, free_port

TOKEN = "test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_home(demo_home_template, tmp_path_factory):
    """The small demo warehouse with a linear probe and the default ConSE trained (the quick models)."""
    from hashtag_workbench.jobs.train import train
    home = tmp_path_factory.mktemp("api") / "home"
    shutil.copytree(demo_home_template, home)
    train(home, models=("probe", "conse"), conse_variants=False, threads=1)
    return home


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise AssertionError("the server did not come up")


@pytest.fixture(scope="module")
def server(api_home):
    """`hashtags serve --token T` on a free port, private URLs allowed (the Predict page tests' switch)."""
    port = free_port()
    env = {**os.environ, "HASHTAG_ALLOW_PRIVATE_URLS": "1", "HASHTAG_HOME": str(api_home)}
    env.pop("HASHTAG_API_TOKEN", None)
    proc = subprocess.Popen(CLI + ["--home", str(api_home), "serve", "--port", str(port), "--token", TOKEN,
                                   "--reload-every", "0.3", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert "serve: done" in err  # the job's summary line (stderr: stdout is for a command's output)
    with connect(api_home, read_only=True) as con:
        status = con.execute("SELECT status FROM runs WHERE kind = 'serve' ORDER BY run_id DESC").fetchone()[0]
    assert status == "ok"


@pytest.fixture
def http():
    s = requests.Session()
    s.trust_env = False  # no proxy between the test and 127.0.0.1
    s.headers.update(AUTH)
    yield s
    s.close()


def _photos(home, n: int) -> list:
    from hashtag_workbench.warehouse.images import labelled_images
    return [home / r["path"] for r in labelled_images(home)[:n]]


def _upload(paths) -> list:
    return [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_healthz_needs_no_token_and_names_the_loaded_models(server, api_home):
    r = requests.get(server + "/healthz", timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    assert body["models"]["supervised"]["kind"] == "linear_probe" and body["models"]["supervised"]["words"] == 4
    assert body["models"]["zero_shot"]["words"] == 76
    # the same default zero-shot model `predict` uses (its own lookup, which builds one when missing)
    from hashtag_workbench.jobs.train import ensure_zero_shot
    assert body["models"]["zero_shot"]["model_id"] == ensure_zero_shot(api_home)["model_id"]
    assert body["limits"]["max_images"] == MAX_IMAGES and body["limits"]["max_image_bytes"] == MAX_IMAGE_BYTES


@pytest.mark.parametrize("method,path", [("GET", "/v1/models"), ("GET", "/v1/words"), ("POST", "/v1/predict"),
                                         ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/no-such-page")])
def test_every_endpoint_but_healthz_needs_the_token(server, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = requests.request(method, server + path, headers=headers, timeout=10)
        assert r.status_code == 401 and "token" in r.json()["error"], (path, headers)
    assert requests.request(method, server + path, headers=AUTH, timeout=10).status_code != 401


def test_one_photo_gives_the_object_predict_json_prints(server, http, api_home, capsys):
    from hashtag_workbench.jobs.cli import main
    photo = _photos(api_home, 1)[0]
    r = http.post(server + "/v1/predict", params={"seed": 3}, files=_upload([photo]), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == 1 and set(body["models"]) == {"supervised", "zero_shot"}
    got = body["results"][0]
    assert main(["--home", str(api_home), "predict", "--json", "--seed", "3", str(photo)]) == 0
    want = json.loads(capsys.readouterr().out.strip())
    assert set(got) == set(want) == {"image", "supervised", "zero_shot"}
    assert got["image"] == photo.name
    for role in ("supervised", "zero_shot"):
        assert [w for w, _ in got[role]["top"]] == [w for w, _ in want[role]["top"]]
        assert all(abs(a[1] - b[1]) < 1e-3 for a, b in zip(got[role]["top"], want[role]["top"]))
        assert got[role]["hashtags"] == want[role]["hashtags"]


def test_several_photos_and_the_hashtag_count(server, http, api_home):
    photos = _photos(api_home, 4)
    r = http.post(server + "/v1/predict", params={"hashtags": 5}, files=_upload(photos), timeout=60)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["image"] for x in results] == [p.name for p in photos]
    for x in results:
        assert len(x["supervised"]["top"]) == 4 and len(x["zero_shot"]["top"]) == 5
        tags = x["zero_shot"]["hashtags"]  # from confident words only: none when nothing fits well
        assert len(tags) == (5 if x["zero_shot"]["confident"] else 0) and not any(t.startswith("#") for t in tags)


def test_file_names_are_only_echoed_and_cors_is_off_by_default(server, http, api_home, tmp_path):
    photo = _photos(api_home, 1)[0]
    before = sorted(p.name for p in (api_home / "images").rglob("*"))
    name = "../../../" + str(tmp_path / "evil.jpg")
    r = http.post(server + "/v1/predict", files=[("image", (name, photo.read_bytes(), "image/jpeg"))],
                  headers={"Origin": "http://elsewhere.example"}, timeout=60)
    assert r.status_code == 200 and r.json()["results"][0]["image"] == name
    assert not (tmp_path / "evil.jpg").exists() and sorted(p.name for p in (api_home / "images").rglob("*")) == before
    assert not any(h.lower().startswith("access-control-") for h in r.headers)


def test_urls_are_fetched_through_the_safe_fetcher(server, http, api_home, httpserver):
    photo = _photos(api_home, 1)[0]
    httpserver.expect_request("/a.jpg").respond_with_data(photo.read_bytes(), content_type="image/jpeg")
    httpserver.expect_request("/page").respond_with_data("<html></html>", content_type="text/html")
    httpserver.expect_request("/missing.jpg").respond_with_data("", status=404)
    httpserver.expect_request("/down.jpg").respond_with_data("", status=503)
    url = httpserver.url_for("/a.jpg")
    r = http.post(server + "/v1/predict", json={"urls": [url, url]}, timeout=60)
    assert r.status_code == 200, r.text
    assert [x["image"] for x in r.json()["results"]] == [url, url]
    for path, words in (("/missing.jpg", "not found"), ("/page", "not usable as an image")):
        r = http.post(server + "/v1/predict", json={"urls": [httpserver.url_for(path)]}, timeout=60)
        assert r.status_code == 422 and words in r.json()["error"], r.text
    r = http.post(server + "/v1/predict", json={"urls": [httpserver.url_for("/down.jpg")]}, timeout=60)
    assert r.status_code == 502 and "503" in r.json()["error"]  # the other side failed: not the client's mistake


def _bomb_png() -> bytes:
    """A PNG header that claims 100000 x 100000 pixels (far past the pixel limit) and holds almost nothing."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_each_bad_input_is_a_4xx_with_one_json_line(server, http, api_home):
    good = _photos(api_home, 1)[0]
    data = good.read_bytes()
    post = server + "/v1/predict"
    cases = [
        ("not an image", dict(files=[("image", ("notes.txt", b"just text", "text/plain"))]), 422, "not an image"),
        ("truncated", dict(files=[("image", ("cut.jpg", data[:len(data) // 3], "image/jpeg"))]), 422, "truncated"),
        ("too many pixels", dict(files=[("image", ("bomb.png", _bomb_png(), "image/png"))]), 422, "bomb"),
        ("too large", dict(files=[("image", ("big.jpg", b"\xff" * (MAX_IMAGE_BYTES + 10), "image/jpeg"))]), 413,
         "larger than"),
        ("too many", dict(files=_upload([good] * (MAX_IMAGES + 1))), 400, "too many"),
        ("no image field", dict(files=[("photo", ("a.jpg", data, "image/jpeg"))]), 400, "'image'"),
        ("unknown model", dict(params={"model": "999"}, files=_upload([good])), 404, "no model with id 999"),
        ("bad model", dict(params={"model": "best"}, files=_upload([good])), 400, "model id"),
        ("bad hashtags", dict(params={"hashtags": "0"}, files=_upload([good])), 400, "hashtags"),
        ("bad URL", dict(json={"urls": ["ftp://example.com/a.jpg"]}), 422, "refused"),
        ("not a URL list", dict(json={"url": "x"}), 400, "urls"),
        ("bad JSON", dict(data=b"{no", headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
        ("wrong type", dict(data=b"hello", headers={"Content-Type": "text/plain"}), 415, "multipart"),
    ]
    for name, kwargs, status, words in cases:
        r = http.post(post, timeout=60, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error"} and words in body["error"] and "\n" not in body["error"], (name, body)
    assert http.post(post, files=_upload([good]), timeout=60).status_code == 200  # still up, still answering


def test_eight_concurrent_clients_get_no_errors(server, api_home):
    photos = _photos(api_home, 8)

    def client(i: int) -> list[int]:
        with requests.Session() as s:
            s.trust_env = False
            return [s.post(server + "/v1/predict", headers=AUTH, files=_upload([photos[(i + k) % 8]]),
                           timeout=120).status_code for k in range(4)]
    with ThreadPoolExecutor(8) as pool:
        codes = [c for cs in pool.map(client, range(8)) for c in cs]
    assert codes == [200] * 32


def _recorded(home, run_id: int) -> int:
    with connect(home, read_only=True) as con:
        return con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id]).fetchone()[0]


def test_a_busy_warehouse_delays_the_record_not_the_response(server, http, api_home):
    with connect(api_home, read_only=True) as con:
        run_id = con.execute("SELECT max(run_id) FROM runs WHERE kind = 'serve'").fetchone()[0]
    photo = _photos(api_home, 1)[0]
    deadline = time.monotonic() + 60
    while http.get(server + "/healthz", timeout=10).json()["recorder"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)  # earlier tests' records land first
    before = _recorded(api_home, run_id)
    with connect(api_home):  # the test process holds the write lock: the server cannot write
        started = time.monotonic()
        for _ in range(3):
            assert http.post(server + "/v1/predict", files=_upload([photo]), timeout=60).status_code == 200
        assert time.monotonic() - started < 30
        assert http.get(server + "/healthz", timeout=10).json()["recorder"]["pending"] >= 1
    deadline = time.monotonic() + 60
    while _recorded(api_home, run_id) < before + 6 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _recorded(api_home, run_id) == before + 6  # 3 photos x 2 models, each naming the serve run


def test_a_newer_model_is_picked_up_without_a_restart(server, http, api_home):
    from hashtag_workbench.jobs.train import train
    photo = _photos(api_home, 1)[0]
    old = http.post(server + "/v1/predict", files=_upload([photo]), timeout=60).json()["models"]["supervised"]
    # nothing is evaluated here, so the newest supervised model is the best one (as `predict` picks it)
    new = train(api_home, models=("probe",), threads=1)["model_ids"][0]
    assert new != old
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = http.post(server + "/v1/predict", files=_upload([photo]), timeout=60).json()
        if body["models"]["supervised"] == new:
            break
        time.sleep(0.3)
    assert body["models"]["supervised"] == new
    listed = {m["model_id"]: m for m in http.get(server + "/v1/models", timeout=10).json()["models"]}
    assert listed[new]["default"] and not listed[old]["default"] and listed[new]["role"] == "supervised"
    assert listed[new]["words"] == ["bird", "flowers", "fruit", "music"] and listed[new]["training_run_id"] == new


def test_a_vocabulary_edit_rebuilds_the_zero_shot_model(server, http, api_home):
    from hashtag_workbench.warehouse.words import add_word
    assert "castle" not in {w["word"] for w in http.get(server + "/v1/words", timeout=10).json()["words"]}
    add_word(api_home, "castle", hashtags=["castle", "medieval"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        zs = http.get(server + "/healthz", timeout=10).json()["models"]["zero_shot"]
        if zs["words"] == 77:
            break
        time.sleep(0.5)
    assert zs["words"] == 77  # built by the server over the new vocabulary, as `predict` would
    words = {w["word"]: w["hashtags"] for w in http.get(server + "/v1/words", timeout=10).json()["words"]}
    assert len(words) == 77 and words["castle"] == ["castle", "medieval"]


def test_a_non_loopback_address_needs_a_token(home):
    env = {k: v for k, v in os.environ.items() if k != "HASHTAG_API_TOKEN"}
    proc = subprocess.run(CLI + ["--home", str(home), "serve", "--host", "0.0.0.0"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "refusing to serve on 0.0.0.0 without a token" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    check_bind("0.0.0.0", "a-token")  # with a token it may bind anywhere


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path):
    from hashtag_workbench.api.recorder import Recorder
    from hashtag_workbench.warehouse.db import WarehouseLocked
    written, fail = [], [True]

    def write(home, rows):
        if fail[0]:
            raise WarehouseLocked("locked")
        written.extend(rows)
    rec = Recorder(tmp_path, run_id=7, write=write, max_pending=5)
    rec.add([{"model_id": 1, "sha256": "a", "top": [], "hashtags": []}] * 4)
    assert rec.flush() == 0 and rec.stats()["pending"] == 4 and rec.failed_flushes == 1
    rec.add([{"model_id": 2, "sha256": "b", "top": [], "hashtags": []}] * 3)
    assert rec.stats() == {"recorded": 0, "pending": 5, "dropped": 2, "failed_flushes": 1}
    fail[0] = False
    assert rec.flush() == 5 and len(written) == 5 and all(r["run_id"] == 7 for r in written)
