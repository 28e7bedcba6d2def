"""The prediction API under load, side by side with `hashtags predict` run once per photo as a process.

Starts `hashtags serve` on 127.0.0.1 over a data directory with a linear probe and the default
ConSE (built from the demo photos when --home is not given), then measures:
  - the CLI: `hashtags predict --json PHOTO` as a new process, --cli-runs times;
  - one client: --single sequential requests (the latency baseline, p50);
  - --clients concurrent clients x --requests requests each, one real demo photo per request:
    p50/p95 latency, throughput, errors, and the server's RSS before and after.
Goals (issue 25): 0 errors; throughput >= 10x the per-process CLI; p95 at 8 clients <= 4x the
single-client p50; RSS growth over 2,000 requests <= 50 MB. The clients run in this process,
on the same cores as the server.

    python -m benchmarks.serve [--home DIR] [--clients 8] [--requests 250] [--single 50] [--cli-runs 5]
                               [--threads N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "datasets" / "demo" / "photos"
CLI = [sys.executable, "-m", "hashtag_workbench"]
WORDS = ("bird", "fruit", "flowers", "music")


def build_home(home: Path, per_word: int = 8) -> None:
    """A small warehouse: a few demo photos per word, a linear probe and the default ConSE."""
    tree = home.parent / "tree"
    for word in WORDS:
        (tree / word).mkdir(parents=True, exist_ok=True)
        for f in sorted((DEMO / word).glob("*.jpg"))[:per_word]:
            shutil.copy(f, tree / word / f.name)
    for cmd in (["import-folder", str(tree)], ["train", "--models", "probe,conse", "--plain-conse-only"]):
        subprocess.run(CLI + ["--home", str(home)] + cmd, check=True, stdout=subprocess.DEVNULL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cli_seconds(home: Path, photo: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(CLI + ["--home", str(home), "predict", "--json", str(photo)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def start_server(home: Path, log: Path, threads: int | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--threads", str(threads)] if threads else []
    cmd = CLI + ["--home", str(home)] + extra + ["serve", "--port", str(port), "--log-level", "warning"]
    with open(log, "w") as err:  # a file, not a pipe nobody reads (which could fill and block the server)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(base + "/healthz", timeout=2).ok:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not come up within 300 s")


def client(base: str, photo: Path, n: int) -> tuple[list[float], int]:
    """n requests one after another: (latencies of the good ones, errors)."""
    data, lat, errors = photo.read_bytes(), [], 0
    with requests.Session() as s:
        s.trust_env = False
        for _ in range(n):
            t = time.perf_counter()
            try:
                r = s.post(base + "/v1/predict", files=[("image", (photo.name, data, "image/jpeg"))], timeout=120)
                ok = r.status_code == 200 and len(r.json()["results"]) == 1
            except requests.RequestException:
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1
    return lat, errors


def load(base: str, photo: Path, clients: int, per_client: int, pid: int | None = None, steps: int = 1) -> dict:
    """clients x per_client requests in `steps` rounds, the server's RSS (MB) taken after each round."""
    lat, errors, rss, wall = [], 0, [], 0.0
    with ThreadPoolExecutor(clients) as pool:
        for k in range(steps):
            n = per_client // steps + (1 if k < per_client % steps else 0)
            t = time.perf_counter()
            parts = list(pool.map(client, [base] * clients, [photo] * clients, [n] * clients))
            wall += time.perf_counter() - t
            lat += [x for p, _ in parts for x in p]
            errors += sum(e for _, e in parts)
            if pid:
                rss.append(round(psutil.Process(pid).memory_info().rss / 2**20, 1))
    return {"requests": clients * per_client, "errors": errors, "seconds": wall,
            "throughput_rps": clients * per_client / wall, "p50_s": percentile(lat, 0.5),
            "p95_s": percentile(lat, 0.95), "rss_mb_after_each_round": rss}


def measure(home: Path, photo: Path, *, clients: int, per_client: int, single: int, cli_runs: int,
            threads: int | None = None, log: Path) -> dict:
    cli = cli_seconds(home, photo, cli_runs)
    proc, base = start_server(home, log, threads)
    try:
        client(base, photo, 20)  # warm-up: first batches, allocator pools, then every batch size once
        load(base, photo, clients, 5)
        one, one_err = client(base, photo, single)
        rss_before = psutil.Process(proc.pid).memory_info().rss
        many = load(base, photo, clients, per_client, proc.pid, steps=4)
        rss_after = psutil.Process(proc.pid).memory_info().rss
        health = requests.get(base + "/healthz", timeout=10).json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    cli_rps = 1 / statistics.mean(cli)
    return {"photo": photo.name, "cores": psutil.cpu_count(), "server_threads": threads or "default",
            "load_average_1m": os.getloadavg()[0],
            "cli": {"runs": cli_runs, "mean_s": statistics.mean(cli), "throughput_rps": cli_rps},
            "single": {"requests": single, "errors": one_err, "p50_s": percentile(one, 0.5),
                       "p95_s": percentile(one, 0.95)},
            "concurrent": {"clients": clients, **many},
            "rss_mb": {"before": rss_before / 2**20, "after": rss_after / 2**20,
                       "growth": (rss_after - rss_before) / 2**20},
            "recorded": health["recorder"], "ratios": {
                "throughput_vs_cli": many["throughput_rps"] / cli_rps,
                "p95_concurrent_vs_single_p50": many["p95_s"] / percentile(one, 0.5)}}


def report(r: dict) -> str:
    c, s, k, m = r["concurrent"], r["single"], r["cli"], r["rss_mb"]
    goals = [("errors", c["errors"] + s["errors"] == 0, f"{c['errors'] + s['errors']}"),
             ("throughput >= 10x CLI", r["ratios"]["throughput_vs_cli"] >= 10,
              f"{r['ratios']['throughput_vs_cli']:.1f}x"),
             (f"p95 at {c['clients']} clients <= 4x single p50", r["ratios"]["p95_concurrent_vs_single_p50"] <= 4,
              f"{r['ratios']['p95_concurrent_vs_single_p50']:.2f}x"),
             (f"RSS growth over {c['requests']} requests <= 50 MB", m["growth"] <= 50, f"{m['growth']:+.1f} MB")]
    lines = [f"photo {r['photo']}, {r['cores']} cores, server threads {r['server_threads']}, "
             f"load average {r['load_average_1m']:.1f} at the end",
             f"{'':28}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}{'errors':>8}",
             f"{'CLI, a process per photo':28}{k['mean_s'] * 1e3:9.0f}{'':9}{k['throughput_rps']:8.2f}{0:8d}",
             f"{'API, 1 client':28}{s['p50_s'] * 1e3:9.0f}{s['p95_s'] * 1e3:9.0f}{1 / s['p50_s']:8.1f}{s['errors']:8d}",
             f"{'API, ' + str(c['clients']) + ' clients':28}{c['p50_s'] * 1e3:9.0f}{c['p95_s'] * 1e3:9.0f}"
             f"{c['throughput_rps']:8.1f}{c['errors']:8d}",
             f"server RSS {m['before']:.0f} MB before, {m['after']:.0f} MB after {c['requests']} requests; "
             f"predictions recorded {r['recorded']['recorded']} (pending {r['recorded']['pending']}); "
             f"RSS after each quarter: {', '.join(map(str, c['rss_mb_after_each_round']))} MB"]
    lines += [f"goal {name}: {value} {'PASS' if ok else 'MISS'}" for name, ok, value in goals]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="data directory with models (default: a temporary demo one)")
    ap.add_argument("--photo", type=Path, help="the photo every request sends (default: the first demo bird)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=250, help="requests per client (default 250: 2,000 in all)")
    ap.add_argument("--single", type=int, default=50, help="sequential requests of the one-client baseline")
    ap.add_argument("--cli-runs", type=int, default=5, help="`hashtags predict` processes timed")
    ap.add_argument("--threads", type=int, help="the server's --threads (default: the cores available)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    photo = args.photo or sorted((DEMO / "bird").glob("*.jpg"))[0]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        home = args.home
        if home is None:
            home = Path(tmp) / "home"
            print("building a demo data directory (import 32 photos, train a probe and ConSE) ...", file=sys.stderr)
            build_home(home)
        result = measure(home, photo, clients=args.clients, per_client=args.requests, single=args.single,
                         cli_runs=args.cli_runs, threads=args.threads, log=Path(tmp) / "server.log")
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
