"""`farmpool blocks`, `farmpool balances` and `farmpool payout`: the money side of the CLI.

Where it sits: the admin's entry points to the block tracker, the balances and payout runs
(pool/accounting/*); argument checks and output here, the work in those modules. Exit codes
as in pool/cli.py: 2 bad input, 1 a failure (node, wallet, database), 0 done; a payout run
that stopped part way, or skipped a tenant, exits 1 after its summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pool.config import Settings

if TYPE_CHECKING:  # the CLI imports this module; sqlalchemy loads only for these commands
    from sqlalchemy import Engine


def _base() -> Any:
    from pool import cli

    return cli


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    from pool.ledger import db

    engine = db.make_engine(settings.database_url)
    try:
        db.require_current(engine, settings.database_url)
        yield engine
    finally:
        engine.dispose()


def _guard(settings: Settings, action: Callable[[], int]) -> int:
    """Run `action`, turning node, wallet, lock and database failures into one-line errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from pool.accounting.payout import PayoutError
    from pool.accounting.runlock import LockBusy
    from pool.accounting.schemes import SchemeError
    from pool.accounting.wallet import WalletError
    from pool.chain.rpc import NodeError
    from pool.ledger import db

    cli = _base()
    try:
        return action()
    except (NodeError, WalletError, PayoutError, LockBusy, SchemeError, db.DatabaseError) as exc:
        raise cli.CliError(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        url = db.redacted(settings.database_url)
        raise cli.CliError(f"database {url}: {type(exc).__name__}: {exc}") from None


def btc(sat: int) -> str:
    from pool.units import btc_text

    return btc_text(sat)


def _chain(settings: Settings) -> Any:
    from pool.accounting.chainview import ChainView
    from pool.chain.rpc import NodeRPC

    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    rpc.check_network(settings.network)
    return ChainView(rpc, settings.network)


def update_money(engine: Engine, settings: Settings, chain: Any) -> tuple[str, list[str]]:
    """One tracker pass, plus PPS crediting when the scheme pays per share, plus the sites'
    calendars and energy hours up to now: a summary line, and the problems the operator must
    look at."""
    from pool.accounting.energy import update_energy
    from pool.accounting.pps import accrue_pps
    from pool.accounting.runlock import run_lock
    from pool.accounting.tracker import track_blocks

    with run_lock(engine, "tracker"):
        energy = update_energy(engine)
        report = track_blocks(engine, chain, settings.payout)
        text = report.summary()
        errors = list(report.errors)
        if settings.payout.scheme in ("pps", "fpps"):
            pps = accrue_pps(engine, chain, settings.payout)
            text += (
                f"; {settings.payout.scheme}: {pps.shares} shares credited {pps.credited_sat} sat"
            )
    if energy:
        text += f"; energy: {energy} hour rows"
    return text, errors


def cmd_blocks(args: argparse.Namespace) -> int:
    """farmpool blocks update | list [--json]"""
    settings = _base()._settings(args)

    def run() -> int:
        from pool.api.queries import blocks

        with _engine(settings) as engine:
            if args.action == "update":
                text, errors = update_money(engine, settings, _chain(settings))
                print(text)
                for error in errors:
                    print(f"ERROR: {error}")
                return 1 if errors else 0
            rows = blocks(engine, limit=None)
        if args.json:
            print(json.dumps(rows))
            return 0
        _base()._print_table(
            ["HEIGHT", "HASH", "STATUS", "CONF", "REWARD BTC", "SPLIT", "TENANT", "SITE", "FOUND"],
            [
                [
                    str(r["height"]),
                    r["hash"],
                    r["status"],
                    str(r["confirmations"]),
                    btc(r["reward_sat"]),
                    r["scheme"] or "-",
                    r["tenant"],
                    r["site"],
                    r["found_at"],
                ]
                for r in rows
            ],
            "no blocks found yet",
        )
        return 0

    return _guard(settings, run)


def cmd_balances(args: argparse.Namespace) -> int:
    """farmpool balances [--json]"""
    from pool.accounting.payout import balances

    settings = _base()._settings(args)

    def run() -> int:
        with _engine(settings) as engine, engine.connect() as conn:
            rows = balances(conn, settings.payout)
        if args.json:
            print(json.dumps([b.to_json() for b in rows]))
            return 0
        _base()._print_table(
            ["TENANT", "IMMATURE BTC", "MATURE BTC", "PAID BTC", "OWED BTC", "THRESHOLD BTC"],
            [
                [
                    b.tenant,
                    btc(b.immature_sat),
                    btc(b.mature_sat),
                    btc(b.paid_sat),
                    btc(b.owed_sat),
                    btc(b.threshold_sat),
                ]
                for b in rows
            ],
            "no tenants yet",
        )
        return 0

    return _guard(settings, run)


def cmd_payout(args: argparse.Namespace) -> int:
    """farmpool payout --dry-run | --execute [--json]"""
    from pool.accounting.payout import run_payouts
    from pool.accounting.wallet import Wallet
    from pool.chain.rpc import NodeRPC

    settings = _base()._settings(args)

    def progress(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    def run() -> int:
        rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
        rpc.check_network(settings.network)
        wallet = Wallet(rpc, settings.payout, settings.network)
        with _engine(settings) as engine:
            summary = run_payouts(
                engine, wallet, settings.payout, execute=args.execute, progress=progress
            )
        if args.json:
            print(json.dumps(summary.to_json()))
        else:
            _print_summary(summary)
        return 1 if summary.error or summary.skipped else 0

    return _guard(settings, run)


def _print_summary(summary: Any) -> None:
    verb = "would pay" if summary.dry_run else "paid"
    for r in summary.recovered:
        how = f" (paid by {r['paid_by']})" if r.get("paid_by") else ""
        how += f" (waiting: {r['waiting']})" if r.get("waiting") else ""
        print(f"recovered payout {r['payout']} {r['txid']}: now {r['status']}{how}")
    money = summary.solvency
    if money.get("spendable_sat") is not None:
        print(
            f"owed {btc(money['owed_sat'])} BTC, due now {btc(money['due_sat'])} BTC; "
            f"the wallet can spend {btc(money['spendable_sat'])} BTC"
        )
    if money.get("unfunded_sat"):
        print(
            f"SHORT: {btc(money['unfunded_sat'])} BTC due is not paid in this run: smallest "
            "balances are paid first (NOT PAID below); fund the wallet and run again"
        )
    total = 0
    for entry in summary.sent:
        total += entry["total_sat"]
        where = f" in {entry['txid']}" if "txid" in entry else ""
        print(f"batch {entry['batch']}: {verb} {btc(entry['total_sat'])} BTC{where}")
        for p in entry["payments"]:
            print(f"  {p['tenant']:<20} {btc(p['amount_sat']):>20} BTC  {p['address']}")
    print(f"{verb} {btc(total)} BTC in {len(summary.sent)} transactions")
    for s in summary.skipped:
        print(f"NOT PAID {s['tenant']}: owed {btc(s['owed_sat'])} BTC: {s['reason']}")
    for b in summary.owed:
        print(
            f"owed below threshold: {b['tenant']} {btc(b['owed_sat'])} BTC "
            f"(threshold {btc(b['threshold_sat'])})"
        )
    print(f"immature (not yet payable): {btc(summary.immature_sat)} BTC")
    if summary.error:
        print(f"STOPPED: {summary.error}")


def _terms_guard(settings: Settings, action: Callable[[], int]) -> int:
    from pool.accounting.energy import TariffError
    from pool.accounting.meters import MeterFileError
    from pool.accounting.report import ReportError
    from pool.accounting.terms import TermsError

    cli = _base()
    try:
        return _guard(settings, action)
    except TermsError as exc:
        raise cli.CliError(str(exc), cli.EXIT_BAD_INPUT) from None
    except (TariffError, ReportError) as exc:
        raise cli.CliError(str(exc), cli.EXIT_BAD_INPUT) from None
    except MeterFileError as exc:
        raise cli.CliError(str(exc), cli.EXIT_BAD_INPUT) from None


def cmd_site_set(args: argparse.Namespace) -> int:
    """farmpool site set NAME [--timezone] [--currency] [--price P --band ...] [--heat-...]"""
    from pool.accounting.terms import set_site_terms

    settings = _base()._settings(args)

    def run() -> int:
        with _engine(settings) as engine:
            site = set_site_terms(
                engine,
                args.name,
                timezone=args.timezone,
                currency=args.currency,
                price=args.price,
                bands=args.band,
                heat_factor=args.heat_factor,
                heat_price=args.heat_price,
                hosting_terms=args.hosting_terms,
            )
        print(json.dumps(site))
        return 0

    return _terms_guard(settings, run)


def cmd_contract(args: argparse.Namespace) -> int:
    """farmpool contract set TENANT SITE [...] | list [--json]"""
    from datetime import date

    from pool.accounting.energy import parse_machine
    from pool.accounting.terms import list_contracts, set_contract

    settings = _base()._settings(args)
    cli = _base()

    def run() -> int:
        with _engine(settings) as engine:
            if args.action == "list":
                rows = list_contracts(engine)
                print(json.dumps([r.to_json() for r in rows]))
                return 0
            kw: dict[str, Any] = {}
            if args.fee_percent is not None:
                kw["fee_ppm"] = (
                    None if args.fee_percent == "pool" else cli._fee_ppm(args.fee_percent)
                )
            if args.hosting is not None:
                kw["hosting"] = None if args.hosting == "none" else args.hosting
            if args.hosting_price is not None:
                kw["hosting_price"] = args.hosting_price
            if args.machine:
                kw["machines"] = [parse_machine(m) for m in args.machine]
            if args.valid_from is not None:
                try:
                    kw["valid_from"] = date.fromisoformat(args.valid_from)
                except ValueError:
                    raise cli.CliError(
                        f"--valid-from: a local date YYYY-MM-DD, got {args.valid_from!r}",
                        cli.EXIT_BAD_INPUT,
                    ) from None
            row = set_contract(engine, args.tenant, args.site, **kw)
            print(json.dumps(row.to_json()))
            return 0

    return _terms_guard(settings, run)


def cmd_meter_import(args: argparse.Namespace) -> int:
    """farmpool meter import FILE.csv"""
    from pathlib import Path

    from pool.accounting.meters import import_readings

    settings = _base()._settings(args)

    def run() -> int:
        with _engine(settings) as engine:
            readings = import_readings(engine, Path(args.file))
        kwh = sum(r.wh for r in readings) / 1000
        print(f"imported {len(readings)} readings ({kwh:.3f} kWh) from {args.file}")
        return 0

    return _terms_guard(settings, run)


def cmd_energy_update(args: argparse.Namespace) -> int:
    """farmpool energy update"""
    from pool.accounting.energy import update_energy

    settings = _base()._settings(args)

    def run() -> int:
        with _engine(settings) as engine:
            print(f"energy: {update_energy(engine)} hour rows written")
        return 0

    return _terms_guard(settings, run)


def cmd_report(args: argparse.Namespace) -> int:
    """farmpool report tenant|site|pool --period P [--site S] [--tenant T] --format F"""
    from pool.accounting.report import check, render, statement

    settings = _base()._settings(args)

    def run() -> int:
        query = check(args.level, args.period, args.site, args.tenant)
        with _engine(settings) as engine:
            rows = statement(engine, query)
        out = render(rows, args.format, query.level)
        sys.stdout.write(out if args.format == "csv" else out + "\n")
        return 0

    return _terms_guard(settings, run)


def add_parsers(sub: Any) -> None:
    group = sub.add_parser("blocks", help="the blocks the pool found, and the block tracker")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("list", help="list found blocks with their status")
    c.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    c.set_defaults(func=cmd_blocks)
    c = actions.add_parser(
        "update", help="follow blocks to maturity or orphaning, and credit them (one pass)"
    )
    c.set_defaults(func=cmd_blocks)

    p = sub.add_parser("balances", help="every tenant's immature, mature, paid and owed amounts")
    p.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    p.set_defaults(func=cmd_balances)

    group = sub.add_parser("contract", help="tenants' terms per site: fee, hosting, fleet")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
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

    group = sub.add_parser("meter", help="meter readings")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("import", help="import a CSV: site,tenant,period_start,period_end,kwh")
    c.add_argument("file", help="the CSV file (RFC 4180, a header row)")
    c.set_defaults(func=cmd_meter_import)

    group = sub.add_parser("energy", help="hourly energy, heat and hosting per tenant and site")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
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
