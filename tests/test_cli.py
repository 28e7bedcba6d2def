"""The CLI's contract: global options reach every command, `--help` names the defaults the code uses,
and errors map to the documented exit codes (2 input, 3 busy, a bug keeps its traceback)."""
from __future__ import annotations

import argparse
import re
import subprocess

import pytest

from hashtag_workbench.jobs.cli import JOBS, build_parser, main
from tests.conftest import CLI, free_port


def _minimal_argv(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """The command with a placeholder for each required positional and flag."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    argv = [command]
    for action in sub._actions:
        if not action.option_strings and action.dest != "help":
            argv.append(next(iter(action.choices)) if action.choices else "x")
        elif action.required:
            argv += [action.option_strings[-1], "x"]
    return argv


@pytest.mark.parametrize("command", list(JOBS))
def test_global_threads_and_home_reach_every_command(command, tmp_path):
    parser = build_parser(only=command)
    args = parser.parse_args(["--home", str(tmp_path), "--threads", "3", *_minimal_argv(parser, command)])
    assert args.threads == 3, f"`{command}` overrides the global --threads"
    assert args.home == str(tmp_path), f"`{command}` overrides the global --home"


_SHOWN_DEFAULT = re.compile(r"\(default:? ([^(),;]+?)\)")


def _same(shown: str, default) -> bool:
    if isinstance(default, (tuple, list)):
        return shown == ",".join(map(str, default))
    try:
        return float(shown) == float(default)
    except (TypeError, ValueError):
        return shown == str(default)


def test_every_help_default_is_the_default_the_code_uses():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    wrong = []
    for name, sub in commands.items():
        for action in sub._actions:
            match = _SHOWN_DEFAULT.search(action.help or "")
            if match and action.default not in (None, argparse.SUPPRESS, ()) and not _same(match[1], action.default):
                wrong.append(f"{name} {action.option_strings}: help says {match[1]!r}, default is {action.default!r}")
    assert not wrong, "\n".join(wrong)


def _config_commands():
    import importlib
    out = []
    for name, module in JOBS.items():
        for config_cls in getattr(importlib.import_module(f"hashtag_workbench.jobs.{module}"), "CONFIGS", ()):
            out.append((name, config_cls))
    return out


@pytest.mark.parametrize("command,config_cls", _config_commands(), ids=lambda v: getattr(v, "__name__", v))
def test_every_config_field_is_a_flag_with_the_fields_default(command, config_cls):
    from hashtag_workbench.jobs.options import _default, cli_fields
    sub = next(a for a in build_parser(only=command)._actions if isinstance(a, argparse._SubParsersAction))
    actions = {a.dest: a for a in sub.choices[command]._actions}
    for f in cli_fields(config_cls):
        action = actions.get(f.name)
        assert action is not None, f"`{command}` has no flag for {config_cls.__name__}.{f.name}"
        default = _default(f)
        assert action.default == default, f"{command} {action.option_strings}"
        if isinstance(default, bool) or default is None or default in ((), []):
            continue  # a switch, or a flag whose help says what happens without it
        shown = re.search(r"\(default: ([^()]*)\)$", action.help)
        assert shown and _same(shown[1], default), f"{command} {action.option_strings}: {action.help!r}"


def test_the_train_flags_name_the_defaults_the_models_use():
    from hashtag_workbench.core.conse import ConSEConfig, default_config, standard_variants
    from hashtag_workbench.core.finetune import FinetuneConfig
    from hashtag_workbench.jobs.train import TrainConfig
    args = build_parser(only="train").parse_args(["train"])
    assert args.epochs == TrainConfig().epochs == FinetuneConfig().epochs
    assert args.train_blocks == FinetuneConfig().train_blocks and args.top_t == ConSEConfig().top_t
    assert args.word_vectors == default_config().word_vectors
    temperatures = {c.temperature for c in standard_variants()} - {None, default_config().temperature}
    assert temperatures == {args.temperature}
    assert args.conse_variants is True
    assert build_parser(only="train").parse_args(["train", "--plain-conse-only"]).conse_variants is False


def test_one_place_prints_a_result_text_or_json_and_returns_its_status(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "stats", "--all"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("word") and "total" in out and "stats: done" in err
    assert main(["--home", str(tmp_path), "stats", "--json", "--all"]) == 0
    out = capsys.readouterr().out
    import json
    assert json.loads(out)["bird"] == {"stored": 0, "failed": 0}


def test_input_error_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "import-folder", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bug_keeps_its_traceback(tmp_path):
    # A plain ValueError from inside a command is a bug, not the user's mistake: Python's traceback, status 1.
    code = ("import sys; from hashtag_workbench.jobs import cli, stats\n"
            "def boom(args): raise ValueError('internal invariant broken')\n"
            "stats.run_command = boom\n"
            f"sys.exit(cli.main(['--home', {str(tmp_path)!r}, 'stats']))")
    proc = subprocess.run([CLI[0], "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "internal invariant broken" in proc.stderr


def test_dashboard_command_serves_the_installed_app(tmp_path):
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([*CLI, "--home", str(tmp_path), "dashboard", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 120, ""
        while time.time() < deadline and body != "ok":
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body == "ok", "the dashboard did not come up"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<title>" in page.lower() or "streamlit" in page.lower()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"open http://127.0.0.1:{port}" in out
