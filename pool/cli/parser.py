"""The `farmpool` command's help: each subcommand described, each option's default shown.

Where it sits: pool/cli/app.py builds the parser with `Parser`; every subparser is one too,
so `farmpool ... --help` at any depth prints the subcommand's description and, after an
option's help, `(default: X)` unless the default is nothing (None, False) or the help already
names it.
"""

from __future__ import annotations

import argparse
from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with the default after the help of any argument that has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS:
            return text
        if "default" in text or isinstance(action, argparse._StoreConstAction):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class _SubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose own --help starts with the line the parent lists them with."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if "help" in kwargs and "description" not in kwargs:
            kwargs["description"] = kwargs["help"]
        return super().add_parser(name, **kwargs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with HelpFormatter whose subparsers are Parsers too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)
