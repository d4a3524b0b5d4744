"""`farmpool site add|list`, `farmpool tenant add|list|set|token`: the farm's sites, tenants
and tenants' API tokens (pool/ledger/admin.py, pool/api/tokens.py)."""

from __future__ import annotations

import argparse
from typing import Any

from pool.cli.common import admin_call, config_settings, fee_ppm
from pool.cli.errors import EXIT_BAD_INPUT, CliError
from pool.cli.output import print_rows, when


def cmd_tenant_token(args: argparse.Namespace) -> int:
    """farmpool tenant token NAME --create [--label L] | --revoke ID | --list [--json]"""
    from pool.api import tokens

    settings = config_settings(args)

    def act(engine: Any) -> Any:
        if args.create:
            return tokens.create_token(engine, args.name, args.label)
        if args.revoke is not None:
            return tokens.revoke_token(engine, args.name, args.revoke)
        return tokens.list_tokens(engine, args.name)

    result = admin_call(settings, act)
    if args.create:
        token, row = result
        print(f"token {row.id} for tenant {row.tenant} (shown this once; keep it safe):")
        print(token)
    elif args.revoke is not None:
        print(f"token {result.id} ({result.prefix}...) of tenant {result.tenant} revoked")
    else:
        print_rows(
            result,
            args.json,
            ["ID", "PREFIX", "LABEL", "CREATED (UTC)", "LAST USED (UTC)", "REVOKED (UTC)"],
            lambda row: [
                str(row.id),
                row.prefix + "...",
                row.label or "-",
                when(row.created_at),
                when(row.last_used_at) if row.last_used_at else "-",
                when(row.revoked_at) if row.revoked_at else "-",
            ],
            f"tenant {args.name} has no tokens",
        )
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    """farmpool site add NAME [--timezone TZ] | list [--json]"""
    from pool.ledger import admin

    settings = config_settings(args)
    if args.action == "add":
        row = admin_call(settings, lambda e: admin.add_site(e, args.name, args.timezone))
        print(f"site {row.name} added (time zone {row.timezone})")
        return 0
    sites = admin_call(settings, admin.list_sites)
    print_rows(
        sites,
        args.json,
        ["NAME", "TIMEZONE", "CREATED (UTC)"],
        lambda s: [s.name, s.timezone, when(s.created_at)],
        "no sites yet (farmpool site add NAME)",
    )
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    """farmpool tenant add NAME [--payout-address A] | list [--json] | set NAME [...]"""
    from pool.ledger import admin

    settings = config_settings(args)
    network = settings.network
    if args.action == "add":
        row = admin_call(
            settings, lambda e: admin.add_tenant(e, args.name, network, args.payout_address)
        )
        print(f"tenant {row.name} added (payout address {row.payout_address or 'none'})")
        return 0
    if args.action == "set":
        fee: Any = admin.UNSET
        if args.fee_percent is not None:
            fee = None if args.fee_percent == "pool" else fee_ppm(args.fee_percent)
        threshold: Any = admin.UNSET
        if args.payout_threshold_sat is not None:
            threshold = None
            if args.payout_threshold_sat != "pool":
                try:
                    threshold = int(args.payout_threshold_sat)
                except ValueError:
                    raise CliError(
                        "--payout-threshold-sat: a whole number of satoshis, or pool",
                        EXIT_BAD_INPUT,
                    ) from None
        row = admin_call(
            settings,
            lambda e: admin.set_tenant(
                e,
                args.name,
                network,
                payout_address=args.payout_address,
                active=args.active,
                fee_ppm=fee,
                payout_threshold_sat=threshold,
                solo=args.solo,
            ),
        )
        state = "active" if row.active else "inactive"
        terms = row.to_json()
        fee_text = f"{terms['fee_percent']} %" if row.fee_ppm is not None else "the pool's"
        threshold_text = (
            f"{row.payout_threshold_sat} sat" if row.payout_threshold_sat else "the pool's"
        )
        print(
            f"tenant {row.name}: {state}, payout address {row.payout_address or 'none'}, "
            f"fee {fee_text}, threshold {threshold_text}, {'solo' if row.solo else 'pooled'}"
        )
        return 0
    tenants = admin_call(settings, admin.list_tenants)
    print_rows(
        tenants,
        args.json,
        ["NAME", "PAYOUT ADDRESS", "ACTIVE", "CREATED (UTC)"],
        lambda t: [
            t.name,
            t.payout_address or "-",
            "yes" if t.active else "no",
            when(t.created_at),
        ],
        "no tenants yet (farmpool tenant add NAME)",
    )
    return 0
