"""Fair turns at the warehouse: how long a reader waits while a greedy writer reopens at once.

A writer process runs back-to-back write transactions (each holding the file for
--hold seconds, reopening at once); reader processes, like dashboard sessions, each
make a short read every --gap seconds. Without turns the writer wins every race; with
them a reader waits about one writer transaction. Prints each side's waits.

    python -m benchmarks.locks [--seconds 8] [--hold 0.05] [--readers 1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SIDE = """
    import json, sys, time
    from pathlib import Path
    from hashtag_workbench.warehouse.db import connect
    home, role = Path(sys.argv[1]), sys.argv[2]
    until, hold, gap = (float(a) for a in sys.argv[3:6])
    waits = []
    while time.time() < until:
        t = time.perf_counter()
        with connect(home, read_only=(role == "reader")) as con:
            waits.append(time.perf_counter() - t)
            if role == "writer":
                con.execute("INSERT INTO bench VALUES (1)")
                time.sleep(hold)
            else:
                con.execute("SELECT count(*) FROM bench").fetchone()
        if role == "reader":
            time.sleep(gap)
    print(json.dumps(waits))
"""


def measure(seconds: float, hold: float, readers: int, gap: float) -> dict:
    from hashtag_workbench.warehouse.db import connect
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with connect(home) as con:
            con.execute("CREATE TABLE bench (x INTEGER)")
        until = time.time() + 2.0 + seconds   # every side starts before the clock runs
        code = textwrap.dedent(SIDE)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(home), role, str(until), str(hold), str(gap)],
                                  stdout=subprocess.PIPE, text=True)
                 for role in ["writer"] + ["reader"] * readers]
        outs = [json.loads(p.communicate(timeout=seconds + 120)[0]) for p in procs]
    reader_waits = sorted(w for out in outs[1:] for w in out)
    return {"writer_transactions": len(outs[0]), "reads": len(reader_waits),
            "reader_max_s": reader_waits[-1] if reader_waits else float("nan"),
            "reader_p95_s": reader_waits[int(0.95 * (len(reader_waits) - 1))] if reader_waits else float("nan"),
            "reader_mean_s": sum(reader_waits) / max(1, len(reader_waits))}


def summary(r: dict, args) -> str:
    return (f"locks: {r['writer_transactions']} writer transactions of {args.hold * 1000:.0f} ms, {r['reads']} "
            f"reads by {args.readers} reader(s) in {args.seconds:.0f} s; reader wait max {r['reader_max_s']:.3f} s, "
            f"p95 {r['reader_p95_s'] * 1000:.0f} ms, mean {r['reader_mean_s'] * 1000:.0f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="how long both sides run (default 8)")
    ap.add_argument("--hold", type=float, default=0.05, help="seconds each write transaction holds the file")
    ap.add_argument("--readers", type=int, default=1, help="reader processes (default 1)")
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between one reader's reads (default 0.02)")
    args = ap.parse_args(argv)
    print(summary(measure(args.seconds, args.hold, args.readers, args.gap), args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
