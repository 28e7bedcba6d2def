"""`schema`: every command's arguments as JSON, read from the parser itself.

The dashboard's Jobs page builds its forms from this, so it never parses `--help` text.
"""
from __future__ import annotations

import argparse
import json

from hashtag_workbench.jobs.runner import JobResult

HELP = "every command's arguments as JSON (for the dashboard's Jobs page)"
DESCRIPTION = (
    "Print each command's one-line help and its arguments (name, flag, switch, "
    "choices, default, help) as one JSON object."
)


def _plain(default):
    """A list default as the comma-separated text the flag takes (forms show it as typed)."""
    return ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default


def _argument(action: argparse.Action) -> dict:
    switch = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
    return {
        "name": action.dest,
        "flag": action.option_strings[-1] if action.option_strings else None,
        "positional": not action.option_strings,
        "switch": switch,
        "required": bool(action.required) if action.option_strings else action.nargs not in ("?", "*"),
        "many": action.nargs in ("+", "*"),
        "choices": [str(c) for c in action.choices] if action.choices else None,
        "default": None if switch or action.default is argparse.SUPPRESS else _plain(action.default),
        "help": action.help or "",
    }


def describe(parser: argparse.ArgumentParser) -> dict:
    """{command: {"help": one line, "arguments": [...]}} for every sub-command of `parser`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    out = {}
    for name, cmd in sub.choices.items():
        args = [a for a in cmd._actions if not isinstance(a, argparse._HelpAction)]
        out[name] = {"help": helps.get(name, ""), "arguments": [_argument(a) for a in args]}
    return out


def run_command(args) -> JobResult:
    # The CLI hands over its parser factory, so this module need not import the CLI (no cycle).
    return JobResult(text=json.dumps(describe(args.build_parser()), indent=1, default=str))
