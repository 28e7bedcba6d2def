"""Command-line flags generated from config dataclasses (core/config.option fields), and back.

`--name-with-dashes` per field; the type comes from the annotation (bool -> a switch, tuple/list ->
comma-separated, `X | None` -> X), the default and help from the field. `config_from(args, Config)`
rebuilds the config from the parsed flags, so the handler never spells an option again.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from types import NoneType, UnionType

from hashtag_workbench.jobs.common import split_list


def _base_type(hint):
    """int for `int`, `int | None`; tuple for `tuple[str, ...]`; and so on."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not NoneType)
    return typing.get_origin(hint) or hint


def _shown(default) -> str:
    if isinstance(default, (tuple, list)):
        return ",".join(map(str, default)) or "none"
    return "none" if default is None else str(default)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def cli_fields(config_cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_cls) if f.init and f.metadata.get("cli")]


def add_config_options(parser: argparse.ArgumentParser, config_cls, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per CLI field of `config_cls` (except `skip`), default and help from the field."""
    hints = typing.get_type_hints(config_cls)
    for f in cli_fields(config_cls):
        if f.name not in skip:
            _add_flag(parser, f, _base_type(hints[f.name]))


def _add_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, base) -> None:
    default, meta = _default(f), f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    if base is bool:
        if meta.get("flag"):  # a named switch: it sets the field to the opposite of its default
            action = "store_false" if default else "store_true"
        else:                 # a switch; one that is on by default is turned off with --no-NAME
            action = argparse.BooleanOptionalAction if default else "store_true"
        parser.add_argument(flag, dest=f.name, action=action, default=default, help=meta["help"])
        return
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    # None or empty: the help says what happens then
    shown = "" if default is None or default in ((), []) else f" (default: {_shown(default)})"
    kwargs = {"default": default, "metavar": meta["metavar"], "help": meta["help"] + shown}
    if base in (tuple, list):
        kwargs["type"] = lambda text, base=base: base(split_list(text) or ())
    else:
        kwargs["type"], kwargs["choices"] = base, choices
    parser.add_argument(flag, dest=f.name, **kwargs)


def config_from(args: argparse.Namespace, config_cls, **overrides):
    """The config the parsed flags describe (fields without a flag keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in cli_fields(config_cls) if hasattr(args, f.name)}
    return config_cls(**{**values, **overrides})
