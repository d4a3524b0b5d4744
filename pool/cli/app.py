"""The `farmpool` command's parser (every command and option, in the order `--help` lists them)
and its entry point: logging set up, the command run, a known failure reported on one line.

The commands are in the modules beside this one, by subject; the one error handler is
pool/cli/errors.py.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pool.cli.common import config_settings
from pool.cli.database import cmd_db, cmd_ledger_compact
from pool.cli.errors import known
from pool.cli.farm import cmd_site, cmd_tenant, cmd_tenant_token
from pool.cli.money import cmd_balances, cmd_blocks, cmd_payout
from pool.cli.node import cmd_node_check, cmd_node_release, cmd_work
from pool.cli.parser import Parser
from pool.cli.serve import cmd_serve
from pool.cli.simulate import cmd_simulate
from pool.cli.terms import (
    cmd_contract,
    cmd_energy_update,
    cmd_meter_import,
    cmd_report,
    cmd_site_set,
)
from pool.cli.tools import cmd_config_check, cmd_share_check
from pool.config import ConfigError

#: `farmpool --help`'s description.
DESCRIPTION = """The `farmpool` command: the admin's and operator's entry points.

Each subcommand validates its arguments in one place, prints a clear message and exits 2 on
bad input, and exits 1 on a failure of the node or the environment.
"""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic's INFO lines (plugins, context, each migration run) say nothing an admin acts
    # on; the commands print their outcome. --log-level debug shows them.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def _command_group(sub: Any, name: str, help_text: str) -> Any:
    """A command whose actions are subcommands (`farmpool NAME ACTION ...`): their parsers."""
    group = sub.add_parser(name, help=help_text)
    return group.add_subparsers(dest="action", required=True, metavar="ACTION")


def _json_list(parser: Any) -> None:
    """The listing's --json option."""
    parser.add_argument("--json", action="store_true", help="a JSON list instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="farmpool", description=DESCRIPTION)
    parser.add_argument("-c", "--config", help="YAML config (default: embedded regtest defaults)")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="what is logged to stderr (default: the config's log_level, else info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("share-check", help="replay one share and explain its verdict")
    p.add_argument("--notify", required=True, help="the mining.notify message (JSON)")
    p.add_argument("--extranonce1", required=True, help="the session's extranonce1 (hex)")
    p.add_argument("--extranonce2-size", required=True, type=int, help="bytes of extranonce2")
    p.add_argument("--submit", required=True, help="the mining.submit message (JSON)")
    p.add_argument("--difficulty", default="1", help="the session's pool difficulty (default 1)")
    p.add_argument("--version-mask", help="negotiated version-rolling mask (default 1fffe000)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_share_check)

    actions = _command_group(sub, "config", "configuration")
    c = actions.add_parser("check", help="load and validate the config")
    c.set_defaults(func=cmd_config_check)

    actions = _command_group(sub, "node", "the node")
    c = actions.add_parser("check", help="connect, check network and segwit, fetch a template")
    c.set_defaults(func=cmd_node_check)
    c = actions.add_parser(
        "release", help="free the extranonce1 prefix of a stratum node that is gone for good"
    )
    c.add_argument("name", help="the stratum node's name (node_name in its config)")
    c.set_defaults(func=cmd_node_release)

    p = sub.add_parser("serve", help="run the stratum server")
    p.add_argument(
        "--wait-node", type=float, default=60.0, help="seconds to wait for an unreachable node"
    )
    p.set_defaults(func=cmd_serve)

    actions = _command_group(sub, "db", "the database schema (Alembic migrations)")
    c = actions.add_parser(
        "upgrade", help="migrate to REVISION; creates a SQLite database that is not there yet"
    )
    c.add_argument(
        "revision", nargs="?", default="head", help="a migration id, or head (the newest)"
    )
    c.set_defaults(func=cmd_db)
    c = actions.add_parser("current", help="show the database's migration")
    c.set_defaults(func=cmd_db, revision=None)
    c = actions.add_parser("downgrade", help="migrate back to REVISION")
    c.add_argument("revision", help="a migration id, or base (no tables)")
    c.set_defaults(func=cmd_db)

    actions = _command_group(sub, "ledger", "the share ledger")
    c = actions.add_parser(
        "compact", help="roll shares older than --keep-hours into per-worker hourly aggregates"
    )
    c.add_argument(
        "--keep-hours",
        type=int,
        default=48,
        metavar="H",
        help="keep shares of the last H hours as they are (default 48; payouts need them)",
    )
    c.add_argument(
        "--batch-rows", type=int, default=50_000, metavar="N", help="shares per transaction"
    )
    c.add_argument(
        "--max-batches", type=int, metavar="N", help="stop after N batches (default: until done)"
    )
    c.set_defaults(func=cmd_ledger_compact)

    actions = _command_group(sub, "site", "the farm's sites (in the database)")
    c = actions.add_parser("add", help="add a site")
    c.add_argument("name", help="letters, digits, _ and - (1-64)")
    c.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    c.set_defaults(func=cmd_site)
    c = actions.add_parser("list", help="list the sites")
    _json_list(c)
    c.set_defaults(func=cmd_site)
    c = actions.add_parser("set", help="a site's currency, tariff, heat and hosting terms")
    c.add_argument("name", help="the site")
    c.add_argument(
        "--timezone", help="IANA time zone (only while the site has no calendar hours yet)"
    )
    c.add_argument("--currency", help="ISO 4217 code of its prices, e.g. EUR")
    c.add_argument("--price", help="electricity price per kWh (up to 6 decimals)")
    c.add_argument(
        "--band", action="append", help="HH:00-HH:00=PRICE, local time (repeat; with --price)"
    )
    c.add_argument("--heat-factor", help="kWh of heat recovered per kWh used, 0 to 1")
    c.add_argument("--heat-price", help="price of a kWh of heat sold")
    c.add_argument("--hosting-terms", help="the hosting terms, as text")
    c.set_defaults(func=cmd_site_set)

    actions = _command_group(sub, "tenant", "the farm's tenants (in the database)")
    c = actions.add_parser("add", help="add an active tenant")
    c.add_argument("name", help="letters, digits, _ and - (1-64); miners log in as NAME.worker")
    c.add_argument("--payout-address", help="where the tenant is paid (checked for the network)")
    c.set_defaults(func=cmd_tenant)
    c = actions.add_parser("list", help="list the tenants")
    _json_list(c)
    c.set_defaults(func=cmd_tenant)
    c = actions.add_parser("set", help="change a tenant's payout address or whether it may mine")
    c.add_argument("name", help="the tenant")
    c.add_argument("--payout-address", help="the new payout address")
    state = c.add_mutually_exclusive_group()
    state.add_argument(
        "--active", dest="active", action="store_const", const=True, help="miners may connect"
    )
    state.add_argument(
        "--inactive", dest="active", action="store_const", const=False, help="refuse its miners"
    )
    c.add_argument("--fee-percent", help="its pool fee in percent (pool: the pool's)")
    c.add_argument(
        "--payout-threshold-sat",
        help="smallest balance paid to it, satoshis, at least 546 (pool: the pool's)",
    )
    mode = c.add_mutually_exclusive_group()
    mode.add_argument(
        "--solo", dest="solo", action="store_const", const=True, help="it takes the blocks it finds"
    )
    mode.add_argument(
        "--pooled", dest="solo", action="store_const", const=False, help="it shares (default)"
    )
    c.set_defaults(func=cmd_tenant, active=None, solo=None)
    c = actions.add_parser(
        "token", help="a tenant's API tokens: each sees that tenant's numbers and nothing else"
    )
    c.add_argument("name", help="the tenant")
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--create", action="store_true", help="make a token (shown once)")
    what.add_argument("--revoke", type=int, metavar="ID", help="revoke the token with this id")
    what.add_argument("--list", action="store_true", help="the tenant's tokens (never the tokens)")
    c.add_argument("--label", help="with --create: what the token is for (e.g. grafana)")
    c.add_argument("--json", action="store_true", help="with --list: JSON instead of a table")
    c.set_defaults(func=cmd_tenant_token)

    actions = _command_group(sub, "blocks", "the blocks the pool found, and the block tracker")
    c = actions.add_parser("list", help="list found blocks with their status")
    _json_list(c)
    c.set_defaults(func=cmd_blocks)
    c = actions.add_parser(
        "update", help="follow blocks to maturity or orphaning, and credit them (one pass)"
    )
    c.set_defaults(func=cmd_blocks)

    p = sub.add_parser("balances", help="every tenant's immature, mature, paid and owed amounts")
    _json_list(p)
    p.set_defaults(func=cmd_balances)

    actions = _command_group(sub, "contract", "tenants' terms per site: fee, hosting, fleet")
    c = actions.add_parser("set", help="create or change a tenant's contract at a site")
    c.add_argument("tenant", help="the tenant")
    c.add_argument("site", help="the site")
    c.add_argument("--fee-percent", help="the pool fee here, percent (pool: the tenant's/pool's)")
    c.add_argument("--hosting", choices=["kw_month", "kwh", "none"], help="how hosting is billed")
    c.add_argument("--hosting-price", help="per kW of the fleet per month, or per kWh")
    c.add_argument(
        "--machine",
        action="append",
        help="MODEL:COUNT:THS:WATTS of the declared fleet (repeat; replaces the fleet)",
    )
    c.add_argument("--valid-from", help="local date the terms start (YYYY-MM-DD; default now)")
    c.set_defaults(func=cmd_contract)
    c = actions.add_parser("list", help="every contract, as JSON")
    c.set_defaults(func=cmd_contract)

    actions = _command_group(sub, "meter", "meter readings")
    c = actions.add_parser("import", help="import a CSV: site,tenant,period_start,period_end,kwh")
    c.add_argument("file", help="the CSV file (RFC 4180, a header row)")
    c.set_defaults(func=cmd_meter_import)

    actions = _command_group(sub, "energy", "hourly energy, heat and hosting per tenant and site")
    c = actions.add_parser("update", help="estimate and price the hours up to now")
    c.set_defaults(func=cmd_energy_update)

    p = sub.add_parser("report", help="statements per tenant and site, site, or pool")
    p.add_argument(
        "level", choices=["tenant", "site", "pool"], help="rows per tenant and site, site or pool"
    )
    p.add_argument("--period", required=True, help="YYYY-MM or YYYY-MM-DD (the site's local)")
    p.add_argument("--site", help="only this site (default: every site)")
    p.add_argument("--tenant", help="only this tenant (default: every tenant)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="the output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("payout", help="pay mature balances through the node's wallet")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--dry-run", action="store_true", help="show what would be paid; change nothing"
    )
    mode.add_argument("--execute", action="store_true", help="pay (one run at a time)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_payout)

    p = sub.add_parser("simulate", help="connect a simulated fleet to a pool for a while")
    p.add_argument(
        "--connect", required=True, help="the pool's HOST:PORT (several: comma-separated)"
    )
    p.add_argument("--tenants", required=True, help="comma-separated tenant names")
    p.add_argument("--miners", type=int, default=2, help="miners per tenant and endpoint")
    p.add_argument("--hashrate", type=float, default=2.0, help="hashes per second each pretends")
    p.add_argument(
        "--suggest-difficulty",
        type=float,
        help="difficulty each miner suggests (default: none; the listener's start difficulty)",
    )
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run")
    p.add_argument(
        "--stale-rate", type=float, default=0.0, help="fraction of shares sent for the old job"
    )
    p.add_argument(
        "--duplicate-rate", type=float, default=0.0, help="fraction of shares sent twice"
    )
    p.add_argument(
        "--reconnect-after",
        type=float,
        help="every other miner drops its connection after this many seconds and resumes "
        "(default: none drops)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("work", help="follow the node's templates and print every job")
    p.add_argument("--mine", type=int, default=0, help="regtest: mine N blocks with the CPU")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to follow without --mine")
    p.add_argument(
        "--wait-node", type=float, default=60.0, help="seconds to wait for an unreachable node"
    )
    p.set_defaults(func=cmd_work)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or "info"
    if args.config is not None or os.environ.get("FARMPOOL_CONFIG"):
        with contextlib.suppress(ConfigError):  # reported by the command itself
            level = args.log_level or config_settings(args).log_level
    _setup_logging(level)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        error = known(exc)
        if error is None:
            raise
        print(f"farmpool: {error}", file=sys.stderr)
        return error.code
