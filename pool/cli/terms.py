"""`farmpool site set`, `contract set|list`, `meter import`, `energy update`, `report`: the
sites' and tenants' terms, meter readings, energy hours and the statements
(pool/accounting/terms.py, meters.py, energy.py, report.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pool.cli.common import config_settings, fee_ppm, ledger, options
from pool.cli.errors import EXIT_BAD_INPUT, CliError, blame_database


def cmd_site_set(args: argparse.Namespace) -> int:
    """farmpool site set NAME [--timezone] [--currency] [--price P --band ...] [--heat-...]"""
    from pool.accounting.terms import set_site_terms

    settings = config_settings(args)
    with blame_database(settings.database_url):
        with ledger(settings) as engine:
            terms = ("timezone", "currency", "price", "heat_factor", "heat_price", "hosting_terms")
            site = set_site_terms(engine, args.name, **options(args, *terms, bands="band"))
        print(json.dumps(site))
        return 0


def cmd_contract(args: argparse.Namespace) -> int:
    """farmpool contract set TENANT SITE [...] | list [--json]"""
    from datetime import date

    from pool.accounting.energy import parse_machine
    from pool.accounting.terms import list_contracts, set_contract

    settings = config_settings(args)
    with blame_database(settings.database_url), ledger(settings) as engine:
        if args.action == "list":
            rows = list_contracts(engine)
            print(json.dumps([r.to_json() for r in rows]))
            return 0
        kw: dict[str, Any] = {}
        if args.fee_percent is not None:
            kw["fee_ppm"] = None if args.fee_percent == "pool" else fee_ppm(args.fee_percent)
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
                raise CliError(
                    f"--valid-from: a local date YYYY-MM-DD, got {args.valid_from!r}",
                    EXIT_BAD_INPUT,
                ) from None
        row = set_contract(engine, args.tenant, args.site, **kw)
        print(json.dumps(row.to_json()))
        return 0


def cmd_meter_import(args: argparse.Namespace) -> int:
    """farmpool meter import FILE.csv"""
    from pathlib import Path

    from pool.accounting.meters import import_readings

    settings = config_settings(args)
    with blame_database(settings.database_url):
        with ledger(settings) as engine:
            readings = import_readings(engine, Path(args.file))
        kwh = sum(r.wh for r in readings) / 1000
        print(f"imported {len(readings)} readings ({kwh:.3f} kWh) from {args.file}")
        return 0


def cmd_energy_update(args: argparse.Namespace) -> int:
    """farmpool energy update"""
    from pool.accounting.energy import update_energy

    settings = config_settings(args)
    with blame_database(settings.database_url), ledger(settings) as engine:
        print(f"energy: {update_energy(engine)} hour rows written")
        return 0


def cmd_report(args: argparse.Namespace) -> int:
    """farmpool report tenant|site|pool --period P [--site S] [--tenant T] --format F"""
    from pool.accounting.report import check, render, statement

    settings = config_settings(args)
    with blame_database(settings.database_url):
        query = check(args.level, args.period, args.site, args.tenant)
        with ledger(settings) as engine:
            rows = statement(engine, query)
        out = render(rows, args.format, query.level)
        sys.stdout.write(out if args.format == "csv" else out + "\n")
        return 0
