"""Download throughput of scrape-images: 1 worker vs 8, against a local server adding latency per image.

    .venv/bin/python benchmarks/download.py [--images 32] [--latency 0.25]

A local stand-in for DuckDuckGo (token page, one `i.js` page) serves N distinct JPEGs,
each answered after `--latency` seconds, like a slow remote host. The whole job runs
(search, download, validation, storage, warehouse writes) in a fresh temp warehouse
per setting; images/s counts stored images over the job's wall time.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

VQD = "4-117954356782045379364619233108521764823"


def make_images(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        img = Image.effect_noise((256, 192), 40 + i).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def serve(images: list[bytes], latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep the benchmark's output readable
            pass

        def _send(self, body: bytes, ctype: str, status: int = 200):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if url.path == "/":
                self._send(f'<html><script>DDG.page = {{vqd="{VQD}"}};</script></html>'.encode(), "text/html")
            elif url.path == "/i.js":
                results = [{"image": f"{base}/img/{i}.jpg", "thumbnail": f"{base}/th/{i}.jpg", "title": f"photo {i}",
                            "url": f"{base}/page/{i}", "width": 256, "height": 192, "source": "Bing"}
                           for i in range(len(images))]
                self._send(json.dumps({"results": results, "query": q.get("q", [""])[0]}).encode(),
                           "application/x-javascript")
            elif url.path.startswith("/img/"):
                time.sleep(latency)
                i = int(url.path[5:].split(".")[0])
                self._send(images[i], "image/jpeg")
            else:
                self._send(b"not found", "text/plain", 404)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run_once(workers: int, n: int) -> tuple[float, int]:
    from hashtag_workbench.jobs.common import ensure_ready
    from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images

    home = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        ensure_ready(home)   # seed the vocabulary outside the timed part
        settings = ScrapeSettings(per_class=n, workers=workers, search_delay=0.0)
        t0 = time.perf_counter()
        counts = scrape_images(home, words=["bird"], settings=settings)   # its summary line goes to stderr
        elapsed = time.perf_counter() - t0
        return elapsed, counts.get("done", 0)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def pool_only(workers: int, n: int, base: str) -> tuple[float, int]:
    """Just the worker pool: download + Pillow validation of n images, no warehouse."""
    from hashtag_workbench.jobs.download import DownloadPool, ScrapeSettings

    pool = DownloadPool(ScrapeSettings(workers=workers))
    try:
        cands = [{"url": f"{base}/img/{i}.jpg"} for i in range(n)]
        t0 = time.perf_counter()
        ok = sum(1 for f in pool.run(cands) if f.info is not None)
        return time.perf_counter() - t0, ok
    finally:
        pool.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="images per setting (default 32)")
    ap.add_argument("--latency", type=float, default=0.25, help="seconds the server waits per image (default 0.25)")
    args = ap.parse_args()
    srv = serve(make_images(args.images), args.latency)
    os.environ["HASHTAG_DDG_URL"] = f"http://127.0.0.1:{srv.server_address[1]}"
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["HASHTAG_ALLOW_PRIVATE_URLS"] = "1"   # the benchmark's image server is on 127.0.0.1
    print(f"{args.images} images, {args.latency * 1000:.0f} ms server latency per image, {os.cpu_count()} CPUs")
    for label, measure in (("whole scrape-images job (search, download, validate, store, warehouse)",
                            lambda w: run_once(w, args.images)),
                           ("download pool only (download + Pillow validation)",
                            lambda w: pool_only(w, args.images, os.environ["HASHTAG_DDG_URL"]))):
        print(label)
        rates = {}
        for workers in (1, 8):
            elapsed, done = measure(workers)
            if done != args.images:
                print(f"warning: {workers} worker(s) got {done} of {args.images} images", file=sys.stderr)
            rates[workers] = done / elapsed
            print(f"  {workers} worker{'s' if workers > 1 else ' '}: {done} images in {elapsed:6.2f} s = "
                  f"{rates[workers]:6.2f} images/s")
        print(f"  ratio 8 workers / 1 worker: {rates[8] / rates[1]:.2f}x")
    srv.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
