"""`farmpool ... --help` at every depth: each subcommand says what it does, each argument has
help, and every default an argument has is shown in its help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from pool.cli import build_parser


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help of one argument as `--help` prints it (defaults expanded)."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def test_every_subcommand_describes_its_arguments_and_shows_their_defaults() -> None:
    parsers = list(walk(build_parser()))
    assert len(parsers) > 30  # every level, down to e.g. `tenant set`
    problems = []
    for path, parser in parsers:
        command = " ".join(("farmpool", *path))
        if not (parser.description or "").strip():
            problems.append(f"{command}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip():
                problems.append(f"{command} {name}: no help")
                continue
            default = action.default
            if default is None or default is False or default is argparse.SUPPRESS:
                continue
            if str(default) not in shown_help(parser, action):
                problems.append(f"{command} {name}: default {default!r} not shown")
    assert problems == []


def test_help_prints_the_defaults() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pool", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "connect a simulated fleet to a pool" in text
    assert "how long to run (default: 20.0)" in text
