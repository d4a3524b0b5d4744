"""The `farmpool` command: the admin's and operator's entry points.

Each subcommand validates its arguments in one place, prints a clear message and exits 2 on
bad input, and exits 1 on a failure of the node or the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pool.accounting import commands as money_commands
from pool.clihelp import Parser
from pool.config import ConfigError, Settings, load_settings

log = logging.getLogger("farmpool")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CliError(Exception):
    """A failure to report on one line and exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic's INFO lines (plugins, context, each migration run) say nothing an admin acts
    # on; the commands print their outcome. --log-level debug shows them.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config or os.environ.get("FARMPOOL_CONFIG"))
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None


# --- share-check ---------------------------------------------------------------------------


def cmd_share_check(args: argparse.Namespace) -> int:
    from pool import sharecheck as sc

    try:
        extranonce2_size = sc.parse_extranonce2_size(args.extranonce2_size)
        notify = sc.parse_notify(args.notify)
        submit = sc.parse_submit(args.submit, extranonce2_size)
        extranonce1 = sc.parse_extranonce1(args.extranonce1)
        difficulty = sc.parse_difficulty(args.difficulty)
        mask = sc.parse_mask(args.version_mask)
    except sc.InputError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    result = sc.check_share(notify, extranonce1, submit, difficulty, mask)
    if args.json:
        print(json.dumps(result))
    else:
        print(sc.format_text(result))
    return 0


# --- node check and work -----------------------------------------------------------------


def _prepare_node(settings: Settings, wait_s: float = 0.0) -> tuple[Any, bool, str]:
    from pool.service import prepare_node

    return prepare_node(settings, wait_s)


def cmd_node_check(args: argparse.Namespace) -> int:
    from pool.chain.rpc import NodeError
    from pool.chain.template import fetch_template

    settings = _settings(args)
    try:
        rpc, segwit, chain = _prepare_node(settings)
        template = fetch_template(rpc, segwit)
    except NodeError as exc:
        raise CliError(str(exc)) from None
    print(
        json.dumps(
            {
                "node": settings.node.redacted_url,
                "chain": chain,
                "segwit": segwit,
                "height": template.height,
                "prevhash": template.prevhash_hex,
                "transactions": len(template.transactions),
                "coinbasevalue": template.coinbasevalue,
                "witness_commitment": template.witness_commitment is not None,
                "longpoll": template.longpollid is not None,
            }
        )
    )
    return 0


def cmd_node_release(args: argparse.Namespace) -> int:
    """farmpool node release NAME: a decommissioned stratum node's prefix byte is free again."""
    from pool.ledger.leases import LeaseError, release_prefix

    settings = _settings(args)

    def release(engine: Any) -> int | None:
        try:
            return release_prefix(engine, args.name)
        except LeaseError as exc:
            raise CliError(str(exc), EXIT_BAD_INPUT) from None

    held = _admin_call(settings, release)
    if held is None:
        print(f"node {args.name} held no extranonce1 prefix")
    else:
        print(f"node {args.name}: extranonce1 prefix {held:02x} released (do not start it again)")
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    """Run the work source; print every job; with --mine, mine and submit blocks (regtest)."""
    from twisted.internet import defer, threads
    from twisted.internet import reactor as _reactor

    from pool.chain.cpuminer import mine
    from pool.chain.job import Job, JobFactory
    from pool.chain.rpc import AsyncNode, NodeError, NodeRPC
    from pool.chain.worksource import WorkSource

    reactor: Any = _reactor
    settings = _settings(args)
    if args.mine and settings.network != "regtest":
        raise CliError("--mine is for regtest only", EXIT_BAD_INPUT)
    if args.mine < 0 or args.seconds <= 0 or args.wait_node < 0:
        raise CliError(
            "--mine and --wait-node must be 0 or more, --seconds positive", EXIT_BAD_INPUT
        )
    outcome: dict[str, Any] = {"code": 0, "found": []}
    factory = JobFactory(settings.coinbase)
    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    node = AsyncNode(rpc, reactor)
    extranonce1 = b"\x00" * settings.coinbase.extranonce1_size

    def report(job: Job) -> None:
        print(
            json.dumps(
                {
                    "event": "job",
                    "job_id": job.job_id,
                    "height": job.height,
                    "clean": job.clean,
                    "transactions": len(job.template.transactions),
                    "prevhash": job.prevhash_hex,
                }
            ),
            flush=True,
        )

    @defer.inlineCallbacks
    def main() -> Any:
        try:
            _, segwit, chain = yield node.run(_prepare_node, settings, args.wait_node)
            log.info("node %s: chain %s, segwit %s", settings.node.redacted_url, chain, segwit)
            source = WorkSource(node, factory, settings.node, segwit, reactor)
            source.listeners.append(report)
            yield source.start()
            counter = 0
            while len(outcome["found"]) < args.mine:
                job = source.current
                assert job is not None
                counter += 1
                extranonce2 = counter.to_bytes(settings.coinbase.extranonce2_size, "big")
                solution = yield threads.deferToThread(mine, job, extranonce1, extranonce2)
                if solution is None or source.current is not job:
                    continue
                result = yield node.submit_block(solution.block(job).hex())
                block_hash = solution.hash[::-1].hex()
                print(
                    json.dumps(
                        {
                            "event": "block",
                            "height": job.height,
                            "hash": block_hash,
                            "accepted": result.accepted,
                            "reason": result.reason,
                        }
                    ),
                    flush=True,
                )
                if not result.accepted:
                    raise CliError(f"node rejected block {block_hash}: {result.reason}")
                outcome["found"].append(block_hash)
                # Wait for the work source to see its own block as the new tip.
                while source.current is job:
                    yield task_sleep(reactor, 0.05)
            if not args.mine:
                yield task_sleep(reactor, args.seconds)
            source.stop()
        except (NodeError, CliError) as exc:
            outcome["code"] = getattr(exc, "code", EXIT_FAILED)
            outcome["error"] = str(exc)
        finally:
            reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    if "error" in outcome:
        raise CliError(outcome["error"], outcome["code"])
    return int(outcome["code"])


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the stratum server until SIGTERM/SIGINT."""
    from twisted.internet import reactor

    from pool import service

    settings = _settings(args)
    if not settings.listeners:
        raise CliError(f"{settings.source}: listeners: none configured", EXIT_BAD_INPUT)
    if args.wait_node < 0:
        raise CliError("--wait-node must be 0 or more", EXIT_BAD_INPUT)
    error = service.run(settings, reactor, args.wait_node)
    if error is not None:
        raise CliError(error)
    log.info("stopped")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """farmpool db upgrade [REV] | current | downgrade REV"""
    from pool.ledger import db

    settings = _settings(args)
    url = settings.database_url
    try:
        if args.action == "upgrade":
            db.upgrade(url, args.revision)
        elif args.action == "downgrade":
            db.downgrade(url, args.revision)
        engine = db.make_engine(url)
        try:
            current = db.current_revision(engine)
        finally:
            engine.dispose()
    except db.DatabaseError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the driver's own errors: unreachable, refused, bad URL
        raise CliError(f"database {db.redacted(url)}: {type(exc).__name__}: {exc}") from None
    head = db.head_revision(url)
    state = "up to date" if current == head else f"head is {head}"
    print(f"{db.redacted(url)}: at {current or 'no migration'} ({state})")
    return 0


def cmd_ledger_compact(args: argparse.Namespace) -> int:
    """farmpool ledger compact: roll shares older than --keep-hours into hourly aggregates."""
    from datetime import timedelta

    from pool.ledger import compaction, db

    if not 1 <= args.keep_hours <= 87_600:
        raise CliError("--keep-hours must be between 1 and 87600 (10 years)", EXIT_BAD_INPUT)
    if args.batch_rows < 1:
        raise CliError("--batch-rows must be 1 or more", EXIT_BAD_INPUT)
    if args.max_batches is not None and args.max_batches < 1:
        raise CliError("--max-batches must be 1 or more", EXIT_BAD_INPUT)
    settings = _settings(args)
    url = settings.database_url
    older_than = compaction.cutoff(timedelta(hours=args.keep_hours))
    print(f"compacting shares created before {older_than.isoformat()}", flush=True)

    def report(so_far: compaction.CompactionResult) -> None:
        print(
            f"  {so_far.rows} shares in {so_far.batches} batches, {so_far.rows_per_s:.0f} rows/s",
            flush=True,
        )

    try:
        engine = db.make_engine(url)
        try:
            db.require_current(engine, url)
            per_share = settings.payout.scheme in ("pps", "fpps")
            if per_share:
                older_than = _pps_hold(engine, older_than)
            result = compaction.compact(
                engine, older_than, args.batch_rows, args.max_batches, report, keep_late=per_share
            )
        finally:
            engine.dispose()
    except (db.DatabaseError, compaction.CompactionError) as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the driver's own errors: unreachable, refused, locked
        raise CliError(f"database {db.redacted(url)}: {type(exc).__name__}: {exc}") from None
    print(
        f"compacted {result.rows} shares into {result.hours_touched} worker-hours in "
        f"{result.batches} batches, {result.seconds:.2f} s ({result.rows_per_s:.0f} rows/s)",
        flush=True,
    )
    return 0


def _pps_hold(engine: Any, older_than: Any) -> Any:
    """PPS credits shares by their height, which compacted hours do not keep: shares not
    credited yet (and their whole hour) stay as they are."""
    from pool.accounting.pps import pps_hold

    with engine.connect() as conn:
        hold = pps_hold(conn)
    if hold is None:
        return older_than
    hour = hold.replace(minute=0, second=0, microsecond=0)
    if hour < older_than:
        print(f"keeping shares from {hour.isoformat()} on: PPS has not credited them yet")
        return hour
    return older_than


# --- sites and tenants ---------------------------------------------------------------------

#: How the fields of pool.ledger.admin's errors are spelled on the command line.
_ADMIN_FIELDS = {
    "name": "NAME",
    "timezone": "--timezone",
    "payout_address": "--payout-address",
    "changes": "--payout-address/--active/--inactive/--fee-percent/--payout-threshold-sat/--solo",
    "fee_ppm": "--fee-percent",
    "payout_threshold_sat": "--payout-threshold-sat",
}


def _admin_call(settings: Settings, action: Any) -> Any:
    """Run `action(engine)` on the config's database, which must be at the newest migration.
    Bad input (admin.AdminError) exits 2 naming the option; database failures exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from pool.ledger import admin, db

    url = settings.database_url
    try:
        engine = db.make_engine(url)
        try:
            db.require_current(engine, url)
            return action(engine)
        finally:
            engine.dispose()
    except admin.AdminError as exc:
        option = _ADMIN_FIELDS.get(exc.field, exc.field)
        raise CliError(f"{option}: {exc.message}", EXIT_BAD_INPUT) from None
    except db.DatabaseError as exc:
        raise CliError(str(exc)) from None
    except (SQLAlchemyError, OSError, ValueError) as exc:  # unreachable, refused, bad URL
        raise CliError(f"database {db.redacted(url)}: {type(exc).__name__}: {exc}") from None


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> None:
    if not rows:
        print(empty)
        return
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M:%S"))


def cmd_tenant_token(args: argparse.Namespace) -> int:
    """farmpool tenant token NAME --create [--label L] | --revoke ID | --list [--json]"""
    from pool.api import tokens

    settings = _settings(args)

    def act(engine: Any) -> Any:
        try:
            if args.create:
                return tokens.create_token(engine, args.name, args.label)
            if args.revoke is not None:
                return tokens.revoke_token(engine, args.name, args.revoke)
            return tokens.list_tokens(engine, args.name)
        except tokens.TokenError as exc:
            raise CliError(str(exc), EXIT_BAD_INPUT) from None

    result = _admin_call(settings, act)
    if args.create:
        token, row = result
        print(f"token {row.id} for tenant {row.tenant} (shown this once; keep it safe):")
        print(token)
    elif args.revoke is not None:
        print(f"token {result.id} ({result.prefix}...) of tenant {result.tenant} revoked")
    elif args.json:
        print(json.dumps([row.to_json() for row in result]))
    else:
        _print_table(
            ["ID", "PREFIX", "LABEL", "CREATED (UTC)", "LAST USED (UTC)", "REVOKED (UTC)"],
            [
                [
                    str(row.id),
                    row.prefix + "...",
                    row.label or "-",
                    _when(row.created_at),
                    _when(row.last_used_at) if row.last_used_at else "-",
                    _when(row.revoked_at) if row.revoked_at else "-",
                ]
                for row in result
            ],
            f"tenant {args.name} has no tokens",
        )
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    """farmpool site add NAME [--timezone TZ] | list [--json]"""
    from pool.ledger import admin

    settings = _settings(args)
    if args.action == "add":
        row = _admin_call(settings, lambda e: admin.add_site(e, args.name, args.timezone))
        print(f"site {row.name} added (time zone {row.timezone})")
        return 0
    sites = _admin_call(settings, admin.list_sites)
    if args.json:
        print(json.dumps([site.to_json() for site in sites]))
    else:
        _print_table(
            ["NAME", "TIMEZONE", "CREATED (UTC)"],
            [[s.name, s.timezone, _when(s.created_at)] for s in sites],
            "no sites yet (farmpool site add NAME)",
        )
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    """farmpool tenant add NAME [--payout-address A] | list [--json] | set NAME [...]"""
    from pool.ledger import admin

    settings = _settings(args)
    network = settings.network
    if args.action == "add":
        row = _admin_call(
            settings, lambda e: admin.add_tenant(e, args.name, network, args.payout_address)
        )
        print(f"tenant {row.name} added (payout address {row.payout_address or 'none'})")
        return 0
    if args.action == "set":
        fee: Any = admin.UNSET
        if args.fee_percent is not None:
            fee = None if args.fee_percent == "pool" else _fee_ppm(args.fee_percent)
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
        row = _admin_call(
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
    tenants = _admin_call(settings, admin.list_tenants)
    if args.json:
        print(json.dumps([tenant.to_json() for tenant in tenants]))
    else:
        _print_table(
            ["NAME", "PAYOUT ADDRESS", "ACTIVE", "CREATED (UTC)"],
            [
                [t.name, t.payout_address or "-", "yes" if t.active else "no", _when(t.created_at)]
                for t in tenants
            ],
            "no tenants yet (farmpool tenant add NAME)",
        )
    return 0


def _fee_ppm(text: str) -> int:
    from pool.units import percent_to_ppm

    try:
        return percent_to_ppm(text)
    except ValueError:
        raise CliError(
            f"--fee-percent: 0 to 100 with at most 4 decimals, or pool; got {text!r}",
            EXIT_BAD_INPUT,
        ) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a simulated fleet against a pool for a while; print its totals as JSON."""
    from twisted.internet import reactor as _reactor

    from pool.sim.miner import MinerFactory, MinerSpec

    reactor: Any = _reactor
    endpoints = []
    for item in args.connect.split(","):
        host, _, port_text = item.strip().rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CliError(
                f"--connect: expected HOST:PORT[,HOST:PORT], got {item!r}", EXIT_BAD_INPUT
            )
        endpoints.append((host, int(port_text)))
    tenants = [t for t in args.tenants.split(",") if t]
    if not tenants:
        raise CliError("--tenants: name at least one tenant", EXIT_BAD_INPUT)
    if args.miners < 1 or args.hashrate <= 0 or args.seconds <= 0:
        raise CliError("--miners, --hashrate and --seconds must be positive", EXIT_BAD_INPUT)
    for name in ("stale_rate", "duplicate_rate"):
        if not 0 <= getattr(args, name) <= 0.5:
            raise CliError(f"--{name.replace('_', '-')}: 0 to 0.5", EXIT_BAD_INPUT)
    if args.reconnect_after is not None and args.reconnect_after <= 0:
        raise CliError("--reconnect-after: seconds, more than 0", EXIT_BAD_INPUT)
    factories: list[MinerFactory] = []
    for e, (host, port) in enumerate(endpoints):
        for tenant in tenants:
            for n in range(args.miners):
                spec = MinerSpec(
                    tenant,
                    f"sim{e}-{n:03d}",
                    args.hashrate,
                    suggest_difficulty=args.suggest_difficulty,
                    stale_rate=args.stale_rate,
                    duplicate_rate=args.duplicate_rate,
                    # Half of the fleet restarts once, part way (and resumes its session).
                    reconnect_after_s=args.reconnect_after if n % 2 == 1 else None,
                )
                factory = MinerFactory(spec, reactor, seed=len(factories))
                factories.append(factory)
                reactor.connectTCP(host, port, factory, timeout=10)

    def stop() -> None:
        for factory in factories:
            factory.stopping = True
        reactor.stop()

    reactor.callLater(args.seconds, stop)
    reactor.run()
    totals: dict[str, dict[str, Any]] = {}
    for factory in factories:
        stats = factory.stats
        row = totals.setdefault(
            factory.spec.tenant,
            {
                "miners": 0, "connected": 0, "submitted": 0, "accepted": 0, "rejected": 0,
                "stale": 0, "duplicate": 0, "blocks": 0, "work": 0.0, "reconnects": 0,
                "resumed": 0,
            },
        )  # fmt: skip
        row["miners"] += 1
        row["connected"] += int(factory.miner is not None and factory.miner.authorized)
        row["submitted"] += stats.submitted
        row["accepted"] += stats.accepted
        row["rejected"] += sum(stats.rejected.values())
        row["stale"] += stats.rejected.get(21, 0)
        row["duplicate"] += stats.rejected.get(22, 0)
        row["blocks"] += stats.blocks
        row["work"] += stats.work
        row["reconnects"] += max(0, stats.connects - 1)
        row["resumed"] += stats.resumed
    print(json.dumps({"event": "simulation", "tenants": totals}))
    return 0


def task_sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"{settings.source}: OK (network {settings.network}, node {settings.node.redacted_url})")
    return 0


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="farmpool", description=__doc__)
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

    group = sub.add_parser("config", help="configuration")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("check", help="load and validate the config")
    c.set_defaults(func=cmd_config_check)

    group = sub.add_parser("node", help="the node")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
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

    group = sub.add_parser("db", help="the database schema (Alembic migrations)")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
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

    group = sub.add_parser("ledger", help="the share ledger")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
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

    group = sub.add_parser("site", help="the farm's sites (in the database)")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("add", help="add a site")
    c.add_argument("name", help="letters, digits, _ and - (1-64)")
    c.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    c.set_defaults(func=cmd_site)
    c = actions.add_parser("list", help="list the sites")
    c.add_argument("--json", action="store_true", help="a JSON list instead of a table")
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
    c.set_defaults(func=money_commands.cmd_site_set)

    group = sub.add_parser("tenant", help="the farm's tenants (in the database)")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("add", help="add an active tenant")
    c.add_argument("name", help="letters, digits, _ and - (1-64); miners log in as NAME.worker")
    c.add_argument("--payout-address", help="where the tenant is paid (checked for the network)")
    c.set_defaults(func=cmd_tenant)
    c = actions.add_parser("list", help="list the tenants")
    c.add_argument("--json", action="store_true", help="a JSON list instead of a table")
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

    money_commands.add_parsers(sub)

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
        with contextlib.suppress(CliError):  # reported by the command itself
            level = args.log_level or _settings(args).log_level
    _setup_logging(level)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"farmpool: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
