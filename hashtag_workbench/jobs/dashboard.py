"""`dashboard`: serve the installed Streamlit app over the data directory (a process, never an import)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option

HELP = "serve the dashboard (Streamlit) on 127.0.0.1"
DESCRIPTION = "Serve the multipage dashboard over the data directory until Ctrl-C."

@dataclass(frozen=True)
class DashboardConfig:
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(8501, "port")


CONFIGS = (DashboardConfig,)

# The app's path, not an import: jobs never import the dashboard layer.
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def streamlit_command(*, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal"]  # no Deploy button or developer menu for users


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def serving(home: Path, *, host: str = "127.0.0.1", port: int | None = None, log: Path | None = None,
            timeout: float = 120) -> Iterator[str]:
    """The dashboard served over `home` in a child process while the block runs; yields its base URL
    once the server answers its health check (benchmarks and browser tests drive it this way)."""
    port = port or free_port(host)
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (the server writes until it stops)
    proc = subprocess.Popen(streamlit_command(host=host, port=port), env={**os.environ, "HASHTAG_HOME": str(home)},
                            stdout=out, stderr=subprocess.STDOUT)
    base = f"http://{host}:{port}"
    try:
        _wait_healthy(proc, base, timeout, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def _wait_healthy(proc: subprocess.Popen, base: str, timeout: float, log: Path | None) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"the dashboard did not start at {base}. {tail}")
        time.sleep(0.5)


def run_command(args):  # never returns: the process becomes Streamlit
    print(f"Dashboard over {args.home}: open http://{args.host}:{args.port} (Ctrl-C to stop)", file=sys.stderr,
          flush=True)
    # This process becomes Streamlit, so Ctrl-C and a plain `kill` reach the server itself and never
    # leave an orphan serving behind.
    cmd = streamlit_command(host=args.host, port=args.port)
    os.execve(cmd[0], cmd, {**os.environ, "HASHTAG_HOME": str(args.home)})
