"""Benchmark: share compaction speed (pool/ledger/compaction.py) on SQLite and PostgreSQL.

For each database: a fresh one (a temporary SQLite file; a temporary PostgreSQL database
created and dropped through postgresql://postgres@127.0.0.1:5432/postgres, or
$FARMPOOL_BENCH_PG), migrated with Alembic, gets two nodes, two sites, three tenants with 20
workers each and `--rows` shares (default 300,000) spread over the 3 days before the 48 h
cutoff, plus 10 % as many newer shares that stay; vardiff difficulties, fractional ones
included; ids `node_id << 48 | sequence` in time order. Then `compact(engine, cutoff,
batch_rows)` runs once (default batches of 50,000, as `farmpool ledger compact`) and the
figure is shares compacted per second of its wall time. The per-(worker, site, hour) totals
are checked to be exactly the same before and after (outside the timing).

Figures: compaction_rows_per_s_sqlite, compaction_rows_per_s_postgres (rows/s, no target,
better higher).

Run: python benchmarks/ledger_compaction.py [--rows 300000] [--batch-rows 50000]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _harness as H
import psycopg
from sqlalchemy import Engine, insert, select

from pool.ledger import db
from pool.ledger.compaction import compact, cutoff, work_totals
from pool.ledger.models import Node, Site, Tenant, Worker
from pool.ledger.writer import work_of

PG_ADMIN = os.environ.get("FARMPOOL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ID_SHIFT = 48
COLUMNS = (
    "id",
    "hash",
    "node_id",
    "worker_id",
    "tenant_id",
    "site_id",
    "job_id",
    "height",
    "difficulty",
    "share_difficulty",
    "work",
    "is_block",
    "created_at",
)
DIFFICULTIES = [0.001, 0.5, 1.0, 2.75, 16.0, 512.0, 1024.0, 8192.0, 65536.0, 123456.789]


def log(message: str) -> None:
    print(message, flush=True)


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'compaction.sqlite3'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"farmpool_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin_url = PG_ADMIN.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(engine: Engine, old_rows: int, new_rows: int, older: datetime) -> None:
    """The names, then the shares (straight through the driver, like the ledger writer)."""
    rng = random.Random(2026)
    made = older - timedelta(days=30)
    with engine.begin() as conn:
        for name in ("node-a", "node-b"):
            conn.execute(insert(Node), [{"name": name, "created_at": made}])
        for name in ("north", "south"):
            conn.execute(insert(Site), [{"name": name, "timezone": "UTC", "created_at": made}])
        for name in ("acme", "globex", "initech"):
            conn.execute(insert(Tenant), [{"name": name, "active": True, "created_at": made}])
        for tenant_id in conn.execute(select(Tenant.id)).scalars().all():
            conn.execute(
                insert(Worker),
                [
                    {"tenant_id": tenant_id, "name": f"s19-{w:03d}", "created_at": made}
                    for w in range(20)
                ],
            )
        nodes = list(conn.execute(select(Node.id)).scalars())
        sites = list(conn.execute(select(Site.id)).scalars())
        workers = [(w, t) for w, t in conn.execute(select(Worker.id, Worker.tenant_id))]
    start = older - timedelta(days=3)
    spans = [(start, older, old_rows), (older, older + timedelta(hours=47), new_rows)]
    seq = dict.fromkeys(nodes, 0)
    rows: list[tuple[Any, ...]] = []
    for begin, end, n in spans:
        step = (end - begin) / n
        for i in range(n):
            node_id = rng.choice(nodes)
            seq[node_id] += 1
            worker_id, tenant_id = rng.choice(workers)
            difficulty = rng.choice(DIFFICULTIES)
            at = (begin + step * i + timedelta(microseconds=rng.randrange(1000))).replace(
                tzinfo=None
            )
            rows.append(
                (
                    node_id << ID_SHIFT | seq[node_id],
                    rng.randbytes(32),
                    node_id,
                    worker_id,
                    tenant_id,
                    sites[worker_id % len(sites)],
                    f"{rng.getrandbits(32):08x}",
                    800_000 + i // 2000,
                    difficulty,
                    difficulty / (1.0 - rng.random()),
                    work_of(difficulty),
                    False,
                    at,
                )
            )
    with engine.begin() as conn:
        cursor: Any = conn.connection.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY shares ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # the text SQLAlchemy's DateTime writes on SQLite
            text_rows = [(*r[:-1], r[-1].strftime("%Y-%m-%d %H:%M:%S.%f")) for r in rows]
            cursor.executemany(
                f"INSERT INTO shares ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 13)})",
                text_rows,
            )
        cursor.close()


def measure(url: str, rows: int, batch_rows: int) -> float:
    """Shares compacted per second on a fresh database at `url`."""
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        older = cutoff(timedelta(hours=48))
        started = time.monotonic()
        seed(engine, rows, rows // 10, older)
        log(f"  seeded {rows + rows // 10} shares in {time.monotonic() - started:.1f} s")
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        before = work_totals(engine)

        def progress(so_far: Any) -> None:
            log(f"  {so_far.rows} rows, {so_far.rows_per_s:.0f} rows/s")

        result = compact(engine, older, batch_rows=batch_rows, progress=progress)
        if result.rows != rows:
            raise SystemExit(f"compacted {result.rows} shares, expected {rows}")
        if work_totals(engine) != before:
            raise SystemExit("totals changed by compaction")
        log(
            f"  compacted {result.rows} shares into {result.hours_touched} worker-hours in "
            f"{result.batches} batches, {result.seconds:.2f} s: {result.rows_per_s:.0f} rows/s "
            f"(totals exact)"
        )
        return result.rows_per_s
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="shares to compact")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="shares per transaction")
    args = parser.parse_args()
    if args.rows < 10 or args.batch_rows < 1:
        parser.error("--rows at least 10, --batch-rows at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="farmpool-bench-compaction-"))
    figures: dict[str, Any] = {}
    failed = False
    try:
        log("sqlite:")
        with sqlite_database(workdir) as url:
            value = measure(url, args.rows, args.batch_rows)
        figures["compaction_rows_per_s_sqlite"] = H.figure(value, "rows/s", None, "higher")
        log("postgresql:")
        try:
            with postgres_database() as url:
                pg_value: float | None = measure(url, args.rows, args.batch_rows)
        except psycopg.OperationalError as exc:
            print(f"PostgreSQL at {PG_ADMIN}: {exc}", file=sys.stderr)
            pg_value, failed = None, True
        figures["compaction_rows_per_s_postgres"] = H.figure(pg_value, "rows/s", None, "higher")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    H.print_result("ledger_compaction", figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
