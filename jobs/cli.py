"""`python -m jobs`: one sub-command per job module.

Each module in this package that defines `register(subparsers)` adds its command, named
like the module (`import-folder` lives in jobs/import_folder.py); the handler it sets as
`func` receives the parsed args and returns an exit code. Some modules import torch, which
takes seconds, so a named command loads only its own module; `--help` loads them all.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import jobs
from warehouse.db import WarehouseLocked
from warehouse.store import resolve_home


def _job_modules() -> list[str]:
    return [info.name for info in pkgutil.iter_modules(jobs.__path__)
            if not info.name.startswith("_") and info.name != "cli"]


def _requested_module(argv: list[str]) -> str | None:
    """The module of the command named in `argv`, if it names one that exists."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--home")
    _, rest = pre.parse_known_args(argv)
    if rest and not rest[0].startswith("-"):
        name = rest[0].replace("-", "_")
        if name in _job_modules():
            return name
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser with every job's command, or just the one in module `only`."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs",
        description="Hashtag workbench jobs: collect, clean, train, evaluate and predict.",
    )
    parser.add_argument("--home", help="data directory (default: $HASHTAG_HOME or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = []
    for name in [only] if only else _job_modules():
        mod = importlib.import_module(f"jobs.{name}")
        if hasattr(mod, "register"):
            modules.append(mod)
    for mod in sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_requested_module(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.home = resolve_home(args.home)
    try:
        return int(args.func(args) or 0)
    except WarehouseLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: work done so far is saved; run the same command again to resume.", file=sys.stderr)
        return 130
