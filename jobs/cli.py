"""`python -m jobs`: one sub-command per job module.

Each module in this package that defines `register(subparsers)` adds its commands;
the handler it sets as `func` receives the parsed args and returns an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import jobs
from warehouse.db import WarehouseLocked
from warehouse.store import resolve_home


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs",
        description="Hashtag workbench jobs: collect, clean, train, evaluate and predict.",
    )
    parser.add_argument("--home", help="data directory (default: $HASHTAG_HOME or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = []
    for info in pkgutil.iter_modules(jobs.__path__):
        if info.name.startswith("_") or info.name == "cli":
            continue
        mod = importlib.import_module(f"jobs.{info.name}")
        if hasattr(mod, "register"):
            modules.append(mod)
    for mod in sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
