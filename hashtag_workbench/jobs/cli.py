"""`hashtags`: one sub-command per job module, listed once in JOBS.

Each listed module is one command: `HELP` (its line in `--help`), `DESCRIPTION`, `CONFIGS` (the config
dataclasses its flags are generated from, jobs/options.py), optionally `add_options(parser)` for what
no config holds (positional arguments, `--json`), and `run_command(args)`, which returns a
`JobResult` that `show` prints: the one place a command's output is written. Some modules import
torch, which takes seconds, so a named command loads only its own module; `--help` and
`schema` load them all.

Exit status: 0 done; 1 the job failed (or found problems, as `check` does), or a bug, which keeps
its traceback; 2 a mistake in the input (an InputError, JobError among them: one line, no
traceback); 3 the warehouse stayed busy (another writer held it too long); 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.infra.runtime import configure_threads
from hashtag_workbench.jobs.options import add_config_options
from hashtag_workbench.jobs.runner import JobResult
from hashtag_workbench.warehouse.db import WarehouseLocked
from hashtag_workbench.warehouse.store import resolve_home

# The registry of jobs: command name -> module under jobs/, in the order `--help` lists them.
JOBS: dict[str, str] = {
    "demo": "demo",
    "import-folder": "import_folder",
    "scrape-images": "scrape_images",
    "scrape-hashtags": "scrape_hashtags",
    "features": "features",
    "outliers": "outliers",
    "map": "map",
    "split": "split",
    "train": "train",
    "evaluate": "evaluate",
    "curve": "curve",
    "predict": "predict",
    "serve": "serve",
    "words": "words",
    "export": "export",
    "check": "check",
    "stats": "stats",
    "schema": "schema",
    "dashboard": "dashboard",
}


def _requested(argv: list[str]) -> str | None:
    """The command named in `argv`, if it names a known one."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--home")
    pre.add_argument("--threads")
    _, rest = pre.parse_known_args(argv)
    if rest and rest[0] in JOBS:
        return rest[0]
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser with every job's command, or just command `only`."""
    parser = argparse.ArgumentParser(
        prog="hashtags",
        description="Hashtag workbench jobs: collect, clean, train, evaluate and predict.",
    )
    parser.add_argument("--home", help="data directory (default: $HASHTAG_HOME or ./data)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and ONNX Runtime (default: the cores available)")
    parser.set_defaults(build_parser=build_parser)  # for `schema`, which describes every command
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only else JOBS:
        _add_command(sub, name)
    return parser


def _add_command(sub, name: str) -> None:
    """A command from its module: HELP (one line), DESCRIPTION, CONFIGS, add_options(parser), run_command(args)."""
    module = importlib.import_module(f"hashtag_workbench.jobs.{JOBS[name]}")
    p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
    for config_cls in getattr(module, "CONFIGS", ()):
        add_config_options(p, config_cls)
    if hasattr(module, "add_options"):
        module.add_options(p)
    p.set_defaults(func=module.run_command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_requested(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.home = resolve_home(args.home)
    args.threads = configure_threads(args.threads)
    # Only the user's mistakes are caught below: any other exception is a bug, and Python prints its
    # traceback and exits with status 1.
    try:
        return show(args.func(args), as_json=getattr(args, "json", False))
    except WarehouseLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (InputError, FileNotFoundError) as exc:  # the user's input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: work done so far is saved; run the same command again to resume.", file=sys.stderr)
        return 130


def show(result: JobResult, *, as_json: bool = False) -> int:
    """Print a command's result (stdout: its report, or with --json its data; stderr: its summary) and
    return its exit status."""
    if not isinstance(result, JobResult):
        raise TypeError(f"run_command returned {type(result).__name__}, not a JobResult")
    if as_json and result.data is not None:
        rows = result.data if result.lines else [result.data]
        for row in rows:
            print(json.dumps(row, indent=None if result.lines else 1, default=str))
    elif result.text:
        print(result.text)
    if result.summary:
        print(result.summary, file=sys.stderr)
    return result.exit_code
