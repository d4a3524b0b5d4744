"""What the `farmpool` commands share: the settings, the database at the newest migration,
and option values every command parses the same way."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pool.cli.errors import EXIT_BAD_INPUT, CliError, blame_database
from pool.config import Settings, load_settings

if TYPE_CHECKING:  # sqlalchemy loads only for the commands that open a database
    from sqlalchemy import Engine

T = TypeVar("T")


def options(args: argparse.Namespace, *names: str, **renamed: str) -> dict[str, Any]:
    """Parsed options as keyword arguments: each of `names` as itself, and keyword=option
    for each of `renamed`."""
    picked = {name: getattr(args, name) for name in names}
    picked.update((keyword, getattr(args, option)) for keyword, option in renamed.items())
    return picked


def config_settings(args: argparse.Namespace) -> Settings:
    """The settings of `-c CONFIG`, else `FARMPOOL_CONFIG`, else the embedded defaults."""
    return load_settings(args.config or os.environ.get("FARMPOOL_CONFIG"))


@contextmanager
def ledger(settings: Settings) -> Iterator[Engine]:
    """The config's database, which must be at the newest migration."""
    from pool.ledger import db

    engine = db.make_engine(settings.database_url)
    try:
        db.require_current(engine, settings.database_url)
        yield engine
    finally:
        engine.dispose()


def admin_call(settings: Settings, action: Callable[[Engine], T]) -> T:
    """Run `action(engine)` on the config's database (at the newest migration); the driver's
    errors, and values it refuses, are the database's."""
    from sqlalchemy.exc import SQLAlchemyError

    with (
        blame_database(settings.database_url, SQLAlchemyError, OSError, ValueError),
        ledger(settings) as engine,
    ):
        return action(engine)


def fee_ppm(text: str) -> int:
    """--fee-percent's value (other than `pool`) in parts per million."""
    from pool.units import percent_to_ppm

    try:
        return percent_to_ppm(text)
    except ValueError:
        raise CliError(
            f"--fee-percent: 0 to 100 with at most 4 decimals, or pool; got {text!r}",
            EXIT_BAD_INPUT,
        ) from None
