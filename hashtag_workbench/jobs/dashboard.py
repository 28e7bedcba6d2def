"""`dashboard`: serve the installed Streamlit app over the data directory (a process, never an import)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

HELP = "serve the dashboard (Streamlit) on 127.0.0.1"
DESCRIPTION = "Serve the multipage dashboard over the data directory until Ctrl-C."

# The app's path, not an import: jobs never import the dashboard layer.
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def streamlit_command(*, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal"]  # no Deploy button or developer menu for users


def run_command(args):  # never returns: the process becomes Streamlit
    print(f"Dashboard over {args.home}: open http://{args.host}:{args.port} (Ctrl-C to stop)", file=sys.stderr,
          flush=True)
    # This process becomes Streamlit, so Ctrl-C and a plain `kill` reach the server itself and never
    # leave an orphan serving behind.
    cmd = streamlit_command(host=args.host, port=args.port)
    os.execve(cmd[0], cmd, {**os.environ, "HASHTAG_HOME": str(args.home)})


def add_options(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
