"""Benchmark: accepted shares per second with durable acknowledgements, SQLite and PostgreSQL.

The same load as benchmarks/stratum_submit.py (1,000 sessions, distinct valid shares that are
not blocks, open-loop steps; scripts/loadgen.py), against `farmpool serve` whose every `true`
waits for the ledger writer's group commit. Once on SQLite (a file in the temp dir, WAL,
synchronous=FULL) and once on PostgreSQL (a database created for the run on
127.0.0.1:5432, dropped afterwards). A step passes with every reply received, >= 99.9 %
accepted and p99 <= 50 ms; the highest passing rate is the figure. Afterwards the shares the
run wrote are compacted into hourly aggregates, and the rows/s of that is measured too.

Figures: sqlite_shares_per_s (target 10000), postgres_shares_per_s (target 8000),
sqlite_reply_p99_ms and postgres_reply_p99_ms at those rates (target 50),
compaction_rows_per_s (SQLite and PostgreSQL, the lower of the two), and the server's and the
load generator's CPU.

Run: python benchmarks/ledger.py [--rates 5000,8000,...] [--step-seconds 8] [--only sqlite]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _harness as H
import stratum_submit as S

from pool.ledger.db import make_engine

PG_ADMIN = os.environ.get("FARMPOOL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
P99_TARGET_MS = 50.0


def create_pg_database() -> str:
    import psycopg

    name = f"farmpool_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def compaction_rate(url: str) -> tuple[float, int]:
    """Compact every share the run wrote; rows/s and rows."""
    from pool.ledger.compaction import compact

    engine = make_engine(url)
    try:
        result = compact(engine, datetime.now(UTC) + timedelta(hours=1), batch_rows=50_000)
    finally:
        engine.dispose()
    return result.rows / max(result.seconds, 1e-9), result.rows


def run_database(kind: str, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    nodes = H.start_nodes("bcoin", workdir)
    results: list[tuple[dict[str, Any], bool, str]] = []
    best: dict[str, Any] | None = None
    try:
        with (
            H.running_server(
                workdir,
                nodes,
                difficulty={"start": S.SHARE_DIFFICULTY, "min": S.SHARE_DIFFICULTY, "max": 1},
                vardiff=False,
                database_url=url,
            ) as server,
            H.loadgen.LoadGen("127.0.0.1", server.port, H.TENANT) as gen,
        ):
            meter = H.CpuMeter(server, nodes)
            opened = gen.open(args.sessions, batch=500, timeout=60)
            print(f"{kind}: server pid {server.pid}; {opened['sessions']} sessions", flush=True)
            S.run_step(gen, server, meter, 2000, 2, 1)  # warm-up: workers created, caches
            print(S.HEADER, flush=True)
            for rate in [float(r) for r in args.rates.split(",")]:
                result = S.run_step(gen, server, meter, rate, args.step_seconds, 1)
                ok, why = S.passed(result, P99_TARGET_MS, 99.9)
                results.append((result, ok, why))
                print(S.row(result, ok, why), flush=True)
                if ok and (best is None or result["accepted_rate"] > best["accepted_rate"]):
                    best = result
                if not ok:
                    break
                time.sleep(1.0)
    finally:
        nodes.stop()
    rows_per_s, rows = compaction_rate(url)
    print(f"{kind}: compacted {rows} shares at {rows_per_s:.0f} rows/s", flush=True)
    return {"best": best, "compaction_rows_per_s": rows_per_s, "compacted_rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,8000,10000,12000,15000,18000,21000")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers")
    if not rates or any(not 0 < r <= 100_000 for r in rates):
        parser.error("--rates: positive numbers up to 100000")
    if not 1 <= args.step_seconds <= 30 or not 1 <= args.sessions <= 15_000:
        parser.error("--step-seconds 1..30, --sessions 1..15000")
    H.raise_nofile(args.sessions + 256)
    outcome: dict[str, dict[str, Any]] = {}
    for kind in ("sqlite", "postgres"):
        if args.only and args.only != kind:
            continue
        workdir = Path(tempfile.mkdtemp(prefix=f"farmpool-bench-ledger-{kind}-"))
        url = (
            f"sqlite:///{workdir / 'data' / 'ledger.sqlite3'}"
            if kind == "sqlite"
            else create_pg_database()
        )
        try:
            outcome[kind] = run_database(kind, url, args, workdir)
        finally:
            if kind == "postgres":
                drop_pg_database(url)
            shutil.rmtree(workdir, ignore_errors=True)

    def best(kind: str, key: str) -> float | None:
        run = outcome.get(kind, {}).get("best")
        if run is None:
            return None
        if key == "rate":
            return float(run["accepted_rate"])
        if key == "p99":
            return float(run["latency_ms"]["p99"])
        return float(run[key]["pct"])

    figures = {
        "sqlite_shares_per_s": H.figure(best("sqlite", "rate"), "shares/s", 10000, "higher"),
        "postgres_shares_per_s": H.figure(best("postgres", "rate"), "shares/s", 8000, "higher"),
        "sqlite_reply_p99_ms": H.figure(best("sqlite", "p99"), "ms", P99_TARGET_MS, "lower"),
        "postgres_reply_p99_ms": H.figure(best("postgres", "p99"), "ms", P99_TARGET_MS, "lower"),
        "compaction_rows_per_s": H.figure(
            min((o["compaction_rows_per_s"] for o in outcome.values()), default=None),
            "rows/s",
            None,
            "higher",
        ),
        "sqlite_server_cpu_pct": H.figure(best("sqlite", "server_cpu"), "%", None, "lower"),
        "sqlite_loadgen_cpu_pct": H.figure(best("sqlite", "client_cpu"), "%", None, "lower"),
        "postgres_server_cpu_pct": H.figure(best("postgres", "server_cpu"), "%", None, "lower"),
        "postgres_loadgen_cpu_pct": H.figure(best("postgres", "client_cpu"), "%", None, "lower"),
    }
    H.print_result("ledger", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
