"""Start `hashtags ...` as a separate process (never an import), its output streamed to a log file.

The job records itself in the warehouse's `runs` table like any CLI run; the Jobs
page follows it by polling that table and the log file. Launch records are kept as
JSON lines in <data dir>/logs/launched.jsonl so they survive a dashboard restart.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.infra.files import write_atomic
from hashtag_workbench.infra.procs import pid_alive

PACKAGE = Path(__file__).resolve().parent.parent
ROOT = PACKAGE.parent  # the folder that holds the package, importable by every job process
_COMMAND_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_procs: dict[int, subprocess.Popen] = {}


def _jobs_cmd(home: Path | str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "hashtag_workbench", "--home", str(home), *args]


def _env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_schema_cache: dict[tuple, dict] = {}


def _jobs_fingerprint() -> tuple:
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted((PACKAGE / "jobs").glob("*.py")))


def _schema_file(key: tuple) -> Path:
    """Where the schema of this exact set of job modules (and this Python) is kept between dashboard starts."""
    import hashlib
    import tempfile
    digest = hashlib.sha256(repr((sys.executable, str(PACKAGE), key)).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hashtag-workbench-schema-{digest}.json"


def job_schema(*, timeout: float = 120) -> dict:
    """`hashtags schema`: {command: {help, arguments}}, kept in memory and in a temp file until a job module
    changes (asking a new process costs ~10 s of imports on a busy machine: the Jobs page's first load)."""
    key = _jobs_fingerprint()
    if key in _schema_cache:
        return _schema_cache[key]
    path = _schema_file(key)
    try:
        _schema_cache[key] = json.loads(path.read_text())
        return _schema_cache[key]
    except (OSError, ValueError):
        pass
    out = subprocess.run([sys.executable, "-m", "hashtag_workbench", "schema"],
                         cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"`hashtags schema` failed: {(out.stderr or out.stdout).strip()[-300:]}")
    _schema_cache[key] = json.loads(out.stdout)
    with contextlib.suppress(OSError):  # a read-only temp dir: the in-memory copy still serves this process
        write_atomic(path, out.stdout.encode())
    return _schema_cache[key]


def commands(schema: dict) -> dict[str, str]:
    """command -> one-line description."""
    return {name: info["help"] for name, info in schema.items()}


def form_spec(schema: dict, command: str) -> dict:
    """One command's form: {"positionals": [{name, help}], "options": [{flag, metavar, choices, help}]}.

    `metavar` is None for a switch (a checkbox on the page)."""
    args = schema[command]["arguments"]
    return {"positionals": [{"name": a["name"], "help": a["help"]} for a in args if a["positional"]],
            "options": [{"flag": a["flag"], "metavar": None if a["switch"] else a["name"].upper(),
                         "choices": a["choices"], "help": a["help"]} for a in args if not a["positional"]]}


def build_args(command: str, spec: dict, values: dict) -> list[str]:
    """argv for one command from form values ({name or flag: value}); empty values are left out."""
    if not _COMMAND_RE.match(command):
        raise InputError(f"not a job command: {command!r}")
    args = [command]
    for p in spec.get("positionals", []):
        v = str(values.get(p["name"], "") or "").strip()
        if not v:
            raise InputError(f"{p['name']} is required ({p['help']})")
        args.append(v)
    for o in spec.get("options", []):
        v = values.get(o["flag"])
        if o["metavar"] is None:
            if v:
                args.append(o["flag"])
        elif v not in (None, ""):
            args += [o["flag"], str(v).strip()]
    return args


def _logs_dir(home: Path | str) -> Path:
    d = Path(home) / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def start_job(home: Path | str, args: list[str], *, before_run_id: int = 0) -> dict:
    """Start `hashtags --home HOME ARGS...` in the background; returns its launch record."""
    if not args or not _COMMAND_RE.match(args[0]):
        raise InputError("the first argument must be a job command")
    logs = _logs_dir(home)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = logs / f"{stamp}-{args[0]}-{os.getpid()}-{len(_procs)}.log"
    fh = open(log, "ab")  # noqa: SIM115 (handed to the child process, closed right after)
    try:
        proc = subprocess.Popen(_jobs_cmd(home, args), cwd=ROOT, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        fh.close()
    _procs[proc.pid] = proc
    rc_file = log.with_suffix(".rc")

    def _reap() -> None:  # wait so the child never lingers as a zombie; keep its exit code
        rc = proc.wait()
        rc_file.write_text(str(rc))

    threading.Thread(target=_reap, daemon=True).start()
    record = {"pid": proc.pid, "args": args, "command": args[0], "log": log.name, "started": time.time(),
              "before_run_id": int(before_run_id)}
    with open(logs / "launched.jsonl", "a") as fh2:
        fh2.write(json.dumps(record) + "\n")
    return record


def _records(home: Path | str) -> tuple[list[dict], set[str]]:
    """Every launch record in order, and the logs of those dismissed ({"dismissed": log} lines)."""
    path = Path(home) / "logs" / "launched.jsonl"
    if not path.exists():
        return [], set()
    recs, dismissed = [], set()
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "dismissed" in rec:
            dismissed.add(str(rec["dismissed"]))
        elif isinstance(rec, dict) and "log" in rec and "pid" in rec:
            recs.append(rec)
    return recs, dismissed


def launched(home: Path | str, limit: int = 10) -> list[dict]:
    """Jobs started from the dashboard and not dismissed, newest first, each with `returncode`
    (None while running)."""
    recs, dismissed = _records(home)
    out = []
    for rec in reversed(recs):
        if rec["log"] in dismissed:
            continue
        rc_file = (Path(home) / "logs" / rec["log"]).with_suffix(".rc")
        text = rc_file.read_text().strip() if rc_file.exists() else ""
        rec["returncode"] = int(text) if text else None
        if rec["returncode"] is None and not _alive(rec["pid"]):
            rec["returncode"] = "?"  # ended while no dashboard was watching it
        out.append(rec)
        if len(out) >= limit:
            break
    return out


def dismiss(home: Path | str, log_name: str) -> None:
    """Hide a finished job from the Jobs page for good (kept as a line in the launch records)."""
    with open(_logs_dir(home) / "launched.jsonl", "a") as fh:
        fh.write(json.dumps({"dismissed": str(log_name), "at": time.time()}) + "\n")


def collect_plan(stored: dict[str, int], per_word: int) -> dict[str, int]:
    """word -> photos `scrape-images --per-class per_word` would still fetch (its target counts those stored)."""
    return {w: max(0, int(per_word) - int(n)) for w, n in stored.items()}


def _alive(pid: int) -> bool:
    proc = _procs.get(pid)
    if proc is not None:
        return proc.poll() is None
    return pid_alive(pid)


def log_tail(home: Path | str, log_name: str, lines: int = 40) -> str:
    """The last lines of a launched job's log (progress-bar redraws collapsed)."""
    if "/" in log_name or "\\" in log_name or log_name.startswith("."):
        raise InputError("bad log name")
    path = Path(home) / "logs" / log_name
    if not path.exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64_000))
        text = fh.read().decode("utf-8", "replace")
    out = [seg.split("\r")[-1] for seg in text.split("\n")]
    return "\n".join(out[-lines:])


def stop_job(pid: int) -> bool:
    """Ask a job the dashboard started to stop (SIGINT, like Ctrl-C: it saves what it has done)."""
    import signal
    proc = _procs.get(pid)  # only processes this dashboard process started itself
    if proc is None or proc.poll() is not None:
        return False
    try:
        os.killpg(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)|error|[a-z][a-z0-9-]*: error)\b:?\s*(.*)$")


def failure_line(log_text: str, error: str | None = None) -> str:
    """One readable line saying why a job failed: the last error line of its log (the message of a
    traceback's last line, or an `error: ...` line), else the run's recorded error, else the last line."""
    lines = [ln.strip() for ln in (log_text or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = _ERROR_LINE.match(ln)
        if m and m.group(1):
            return m.group(1)
    if error and error.strip():
        first = error.strip().splitlines()[0]
        m = _ERROR_LINE.match(first)
        return m.group(1) if m and m.group(1) else first
    return lines[-1] if lines else "it printed nothing"
