"""Config fields that carry their own default and help text (nanoGPT's "config in one place").

A job's or model's config is a dataclass of `option(...)` fields; the CLI builds its flags from it
(jobs/options.py), the Jobs page its forms (via `schema`), and the run records `asdict(config)`.
So a default or its help exists once, and `--help` cannot name a default the code does not use.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any


def option(default: Any, help: str, *, choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
           metavar: str | None = None, cli: bool = True, flag: str | None = None) -> Any:
    """A dataclass field: `default`, and the `help` the CLI shows (its default is appended for it).

    `choices` may be a callable (evaluated when the parser is built); tuples and lists are given on the
    command line comma-separated; `cli=False` keeps a field out of the command line; `flag` names the
    flag when it is not `--field-name` (a bool field on by default is then a switch that turns it off,
    e.g. `conse_variants` <- `--plain-conse-only`).
    """
    meta = {"help": help, "choices": choices, "metavar": metavar, "cli": cli, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
