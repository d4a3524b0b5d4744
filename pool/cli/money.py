"""`farmpool blocks update|list`, `farmpool balances`, `farmpool payout`: the blocks found, the
money loop's pass (pool/accounting/money_loop.py), the balances and the payout runs
(pool/accounting/payout.py).

A payout run that stopped part way, or skipped a tenant, exits 1 after its summary; so does a
tracker pass that reported a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pool.cli.common import config_settings, ledger
from pool.cli.errors import blame_database
from pool.cli.output import print_rows
from pool.config import Settings
from pool.units import btc_text


def _chain(settings: Settings) -> Any:
    from pool.accounting.chainview import ChainView
    from pool.chain.rpc import NodeRPC

    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    rpc.check_network(settings.network)
    return ChainView(rpc, settings.network)


def cmd_blocks(args: argparse.Namespace) -> int:
    """farmpool blocks update | list [--json]"""
    from pool.accounting.money_loop import run_pass
    from pool.api.queries import blocks

    settings = config_settings(args)
    with blame_database(settings.database_url):
        with ledger(settings) as engine:
            if args.action == "update":
                done = run_pass(engine, settings, _chain(settings))
                if done.text:
                    print(done.text)
                for error in done.errors:
                    print(f"ERROR: {error}")
                if done.failures:  # each is logged; the first is the command's error
                    raise done.failures[0].error
                return 1 if done.errors else 0
            rows = blocks(engine, limit=None)
        print_rows(
            rows,
            args.json,
            ["HEIGHT", "HASH", "STATUS", "CONF", "REWARD BTC", "SPLIT", "TENANT", "SITE", "FOUND"],
            lambda r: [
                str(r["height"]),
                r["hash"],
                r["status"],
                str(r["confirmations"]),
                btc_text(r["reward_sat"]),
                r["scheme"] or "-",
                r["tenant"],
                r["site"],
                r["found_at"],
            ],
            "no blocks found yet",
            to_json=lambda r: r,
        )
        return 0


def cmd_balances(args: argparse.Namespace) -> int:
    """farmpool balances [--json]"""
    from pool.accounting.payout import balances

    settings = config_settings(args)
    with blame_database(settings.database_url):
        with ledger(settings) as engine, engine.connect() as conn:
            rows = balances(conn, settings.payout)
        print_rows(
            rows,
            args.json,
            ["TENANT", "IMMATURE BTC", "MATURE BTC", "PAID BTC", "OWED BTC", "THRESHOLD BTC"],
            lambda b: [
                b.tenant,
                btc_text(b.immature_sat),
                btc_text(b.mature_sat),
                btc_text(b.paid_sat),
                btc_text(b.owed_sat),
                btc_text(b.threshold_sat),
            ],
            "no tenants yet",
        )
        return 0


def cmd_payout(args: argparse.Namespace) -> int:
    """farmpool payout --dry-run | --execute [--json]"""
    from pool.accounting.payout import run_payouts
    from pool.accounting.wallet import Wallet
    from pool.chain.rpc import NodeRPC

    settings = config_settings(args)

    def progress(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    with blame_database(settings.database_url):
        rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
        rpc.check_network(settings.network)
        wallet = Wallet(rpc, settings.payout, settings.network)
        with ledger(settings) as engine:
            summary = run_payouts(
                engine, wallet, settings.payout, execute=args.execute, progress=progress
            )
        if args.json:
            print(json.dumps(summary.to_json()))
        else:
            _print_summary(summary)
        return 1 if summary.error or summary.skipped else 0


def _print_summary(summary: Any) -> None:
    verb = "would pay" if summary.dry_run else "paid"
    for r in summary.recovered:
        how = f" (paid by {r['paid_by']})" if r.get("paid_by") else ""
        how += f" (waiting: {r['waiting']})" if r.get("waiting") else ""
        print(f"recovered payout {r['payout']} {r['txid']}: now {r['status']}{how}")
    money = summary.solvency
    if money.get("spendable_sat") is not None:
        print(
            f"owed {btc_text(money['owed_sat'])} BTC, due now {btc_text(money['due_sat'])} BTC; "
            f"the wallet can spend {btc_text(money['spendable_sat'])} BTC"
        )
    if money.get("unfunded_sat"):
        print(
            f"SHORT: {btc_text(money['unfunded_sat'])} BTC due is not paid in this run: smallest "
            "balances are paid first (NOT PAID below); fund the wallet and run again"
        )
    total = 0
    for entry in summary.sent:
        total += entry["total_sat"]
        where = f" in {entry['txid']}" if "txid" in entry else ""
        print(f"batch {entry['batch']}: {verb} {btc_text(entry['total_sat'])} BTC{where}")
        for p in entry["payments"]:
            print(f"  {p['tenant']:<20} {btc_text(p['amount_sat']):>20} BTC  {p['address']}")
    print(f"{verb} {btc_text(total)} BTC in {len(summary.sent)} transactions")
    for s in summary.skipped:
        print(f"NOT PAID {s['tenant']}: owed {btc_text(s['owed_sat'])} BTC: {s['reason']}")
    for b in summary.owed:
        print(
            f"owed below threshold: {b['tenant']} {btc_text(b['owed_sat'])} BTC "
            f"(threshold {btc_text(b['threshold_sat'])})"
        )
    print(f"immature (not yet payable): {btc_text(summary.immature_sat)} BTC")
    if summary.error:
        print(f"STOPPED: {summary.error}")
