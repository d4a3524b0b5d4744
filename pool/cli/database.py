"""`farmpool db upgrade|current|downgrade` and `farmpool ledger compact`: the schema and the
share ledger's size."""

from __future__ import annotations

import argparse

from pool.cli.common import config_settings
from pool.cli.errors import EXIT_BAD_INPUT, CliError, blame_database


def cmd_db(args: argparse.Namespace) -> int:
    """farmpool db upgrade [REV] | current | downgrade REV"""
    from pool.ledger import db

    settings = config_settings(args)
    url = settings.database_url
    # Any other failure here is the driver's or Alembic's: unreachable, refused, bad URL.
    with blame_database(url, Exception):
        if args.action == "upgrade":
            db.upgrade(url, args.revision)
        elif args.action == "downgrade":
            db.downgrade(url, args.revision)
        engine = db.make_engine(url)
        try:
            current = db.current_revision(engine)
        finally:
            engine.dispose()
    head = db.head_revision(url)
    state = "up to date" if current == head else f"head is {head}"
    print(f"{db.redacted(url)}: at {current or 'no migration'} ({state})")
    return 0


def cmd_ledger_compact(args: argparse.Namespace) -> int:
    """farmpool ledger compact: roll shares older than --keep-hours into hourly aggregates."""
    from datetime import timedelta

    from pool.accounting.pps import pps_hold
    from pool.accounting.scheme_registry import scheme
    from pool.ledger import compaction, db

    if not 1 <= args.keep_hours <= 87_600:
        raise CliError("--keep-hours must be between 1 and 87600 (10 years)", EXIT_BAD_INPUT)
    if args.batch_rows < 1:
        raise CliError("--batch-rows must be 1 or more", EXIT_BAD_INPUT)
    if args.max_batches is not None and args.max_batches < 1:
        raise CliError("--max-batches must be 1 or more", EXIT_BAD_INPUT)
    settings = config_settings(args)
    url = settings.database_url
    older_than = compaction.cutoff(timedelta(hours=args.keep_hours))
    print(f"compacting shares created before {older_than.isoformat()}", flush=True)

    def report(so_far: compaction.CompactionResult) -> None:
        print(
            f"  {so_far.rows} shares in {so_far.batches} batches, {so_far.rows_per_s:.0f} rows/s",
            flush=True,
        )

    # Any other failure here is the driver's: unreachable, refused, locked.
    with blame_database(url, Exception):
        engine = db.make_engine(url)
        try:
            db.require_current(engine, url)
            per_share = scheme(settings.payout.scheme).per_share
            if per_share:
                held = compaction.hold_uncredited(engine, older_than, pps_hold)
                if held < older_than:
                    print(
                        f"keeping shares from {held.isoformat()} on: PPS has not credited them yet"
                    )
                    older_than = held
            result = compaction.compact(
                engine, older_than, args.batch_rows, args.max_batches, report, keep_late=per_share
            )
        finally:
            engine.dispose()
    print(
        f"compacted {result.rows} shares into {result.hours_touched} worker-hours in "
        f"{result.batches} batches, {result.seconds:.2f} s ({result.rows_per_s:.0f} rows/s)",
        flush=True,
    )
    return 0
