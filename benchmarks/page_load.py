"""Dashboard page timings in real headless Chromium: first load (a fresh server, cold caches) and warm (again).

    python benchmarks/page_load.py --home DATA_DIR [--pages jobs,predict,...] [--shots DIR] [--upload PHOTO]

Starts `hashtags dashboard`'s own Streamlit command on a free port over DATA_DIR (use a copy: pages
may write thumbnails), opens the Overview once to boot the frontend (timed apart), then opens each page
twice and times from navigation until the page has finished its script run and stayed idle for 1 s (the
idle second is not counted). Prints one line per page and saves a full-page screenshot per page when
--shots is given. --upload: a photo uploaded on the Predict page, timed until its hashtags show.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hashtag_workbench.jobs.dashboard import serving  # noqa: E402

PAGES = {"overview": "", "words": "words", "review": "review", "embedding": "embedding",
         "evaluation": "evaluation", "predict": "predict", "word_space": "word_space", "jobs": "jobs"}
READY = {"embedding": ".js-plotly-plot", "evaluation": ".js-plotly-plot", "word_space": ".js-plotly-plot",
         "overview": '[data-testid="stDataFrame"]', "jobs": '[data-testid="stDataFrame"]'}
IDLE_JS = """() => !!document.querySelector('h1')
                  && !document.querySelector('[data-testid="stStatusWidget"]')
                  && !document.querySelector('[data-stale="true"]')
                  && !document.querySelector('[data-testid="stSkeleton"]')
                  && !document.querySelector('[data-testid="stSpinner"]')"""
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]


def until_idle(pg, t0: float, ready: str | None, timeout: float = 240) -> float:
    """Seconds from t0 until the page was idle (and showed `ready`), confirmed by 1 s of calm."""
    if ready:
        pg.wait_for_selector(ready, timeout=timeout * 1000)
    first = None
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if pg.evaluate(IDLE_JS):
            first = first or time.perf_counter()
            if time.perf_counter() - first >= 1.0:
                return first - t0
        else:
            first = None
        pg.wait_for_timeout(100)
    raise TimeoutError("the page did not settle")


def shot(pg, path: Path) -> None:
    """A tall screenshot (the app scrolls inside itself, so a full-page shot needs a tall window)."""
    pg.set_viewport_size({"width": 1440, "height": 2400})
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(path), full_page=True)
    pg.set_viewport_size({"width": 1440, "height": 900})


def time_pages(pg, base: str, pages: list[str], shots: Path | None, upload: str | None) -> None:
    # boot: the first page a browser opens also loads Streamlit's frontend and the server's imports;
    # timed apart, so each page's "first load" is its own cold caches only
    t0 = time.perf_counter()
    pg.goto(f"{base}/", timeout=240_000)
    print(f"{'(boot)':<11} first page (overview) {until_idle(pg, t0, READY['overview']):6.2f} s", flush=True)
    for name in pages:
        times = []
        for _ in range(2):                       # first load, then warm
            t0 = time.perf_counter()
            pg.goto(f"{base}/{PAGES[name]}", timeout=240_000)
            times.append(until_idle(pg, t0, READY.get(name)))
        errors = pg.locator('[data-testid="stException"]').count()
        print(f"{name:<11} first load {times[0]:6.2f} s   warm {times[1]:6.2f} s"
              + (f"   {errors} exception(s) shown!" if errors else ""), flush=True)
        if shots:
            shot(pg, shots / f"{name}.png")
        if name == "predict" and upload:
            t0 = time.perf_counter()
            pg.set_input_files("input[type=file]", upload)
            pg.wait_for_selector('[data-testid="stCode"]', timeout=240_000)
            took = until_idle(pg, t0, None)
            print(f"{'':<11} upload {Path(upload).name} -> hashtags {took:6.2f} s", flush=True)
            if shots:
                shot(pg, shots / "predict-upload.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True, help="the data directory to serve (a copy)")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated pages (default: all)")
    ap.add_argument("--shots", help="folder for one screenshot per page")
    ap.add_argument("--upload", help="a photo to upload on the Predict page (timed until hashtags show)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    with serving(Path(args.home)) as base, sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=LAUNCH_ARGS)
        ctx = b.new_context(viewport={"width": 1440, "height": 900})
        time_pages(ctx.new_page(), base, args.pages.split(","), shots, args.upload)
        ctx.close()
        b.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
