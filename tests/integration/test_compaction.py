"""Share compaction on real SQLite and PostgreSQL databases (migrated with Alembic).

Realistic shares (several tenants, sites and workers, ~3 days, vardiff difficulties including
fractional ones, inserted out of time order as a replayed spool would) are compacted in small
batches; the per (worker, site, hour) totals of the combined view must be exactly what the
shares themselves add up to (computed here in Python), before and after, through repeated
runs, interruptions inside a batch, a killed `farmpool ledger compact` process, concurrent
share writes and hours that already have aggregates.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select

from pool import cli
from pool.config import DEFAULT_CONFIG
from pool.ledger import db
from pool.ledger.compaction import (
    CompactionResult,
    compact,
    cutoff,
    floor_hour,
    work_totals,
)
from pool.ledger.models import Node, Share, ShareHour, Site, Tenant, Worker
from pool.ledger.writer import work_of

REPO = Path(__file__).resolve().parents[2]

#: A fixed "now" for the library tests (the CLI tests use the real clock).
NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)

#: Vardiff-like assigned difficulties, fractional ones included.
DIFFICULTIES = [1e-8, 0.001, 1 / 3, 0.5, 1.0, 2.75, 16.0, 1024.0, 65536.0, 123456.789, 1e6]

#: Share ids are `node_id << ID_SHIFT | sequence` (the ledger writer's).
ID_SHIFT = 48

Key = tuple[int, int, datetime]
Totals = dict[Key, tuple[int, int, float]]


def add(totals: Totals, key: Key, shares: int, work: int, best: float) -> None:
    old = totals.get(key)
    if old is not None:
        shares, work, best = old[0] + shares, old[1] + work, max(old[2], best)
    totals[key] = (shares, work, best)


@dataclass
class Ledger:
    """A migrated database with sites, tenants, workers and the shares written to it; `expected`
    is what the shares (and any aggregates put in directly) add up to, computed in Python."""

    url: str
    engine: Engine
    rng: random.Random
    nodes: list[int] = field(default_factory=list)
    seq: dict[int, int] = field(default_factory=dict)  # node_id -> last sequence number
    workers: list[tuple[int, int]] = field(default_factory=list)  # (worker_id, tenant_id)
    sites: list[int] = field(default_factory=list)
    expected: Totals = field(default_factory=dict)
    times: list[datetime] = field(default_factory=list)

    def share_rows(self, n: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        span = (end - start).total_seconds()
        rows = []
        for _ in range(n):
            worker_id, tenant_id = rng.choice(self.workers)
            # most of a worker's shares come from its home site, some from elsewhere
            site_id = self.sites[worker_id % len(self.sites)]
            if rng.random() < 0.15:
                site_id = rng.choice(self.sites)
            difficulty = rng.choice(DIFFICULTIES) * rng.choice([1, 1, 1, 1.5, 0.7])
            share_difficulty = difficulty / (1.0 - rng.random())  # >= difficulty, fractional
            at = start + timedelta(seconds=rng.random() * span)
            roll = rng.random()
            if roll < 0.02:  # exactly on an hour boundary
                at = floor_hour(at)
            elif roll < 0.04:  # the last microsecond of an hour
                at = floor_hour(at) + timedelta(hours=1, microseconds=-1)
            rows.append(self.row(worker_id, tenant_id, site_id, difficulty, share_difficulty, at))
        return rows

    def number(self, rows: list[dict[str, Any]], out_of_order: float = 0.1) -> None:
        """Give the shares ids as the writers do, `node_id << 48 | sequence`, in time order per
        node but for a fraction (clock steps, late replays); every other sequence number is left
        unused (see the concurrency test)."""
        rows.sort(key=lambda r: r["created_at"])
        for r in rows:
            node_id = self.rng.choice(self.nodes)
            self.seq[node_id] += 2
            r["node_id"], r["id"] = node_id, node_id << ID_SHIFT | self.seq[node_id]
        some = self.rng.sample(rows, int(len(rows) * out_of_order))
        ids = [(r["node_id"], r["id"]) for r in some]
        self.rng.shuffle(ids)
        for r, (node_id, share_id) in zip(some, ids, strict=True):
            r["node_id"], r["id"] = node_id, share_id

    def row(
        self,
        worker_id: int,
        tenant_id: int,
        site_id: int,
        difficulty: float,
        share_difficulty: float,
        at: datetime,
    ) -> dict[str, Any]:
        return {
            "id": 0,  # see number()
            "hash": self.rng.randbytes(32),
            "node_id": self.nodes[0],
            "worker_id": worker_id,
            "tenant_id": tenant_id,
            "site_id": site_id,
            "job_id": f"{self.rng.getrandbits(32):08x}",
            "height": 800_000 + self.rng.randrange(500),
            "difficulty": difficulty,
            "share_difficulty": share_difficulty,
            "work": work_of(difficulty),
            "is_block": False,
            "created_at": at,
        }

    def write(self, rows: list[dict[str, Any]], chunk: int = 2000) -> None:
        for i in range(0, len(rows), chunk):
            with self.engine.begin() as conn:
                conn.execute(insert(Share), rows[i : i + chunk])
        self.account(rows)

    def account(self, rows: list[dict[str, Any]]) -> None:
        """Add shares written to the database to the expected totals."""
        for r in rows:
            key = (r["worker_id"], r["site_id"], floor_hour(r["created_at"]))
            add(self.expected, key, 1, r["work"], r["share_difficulty"])
            self.times.append(r["created_at"])

    def count_before(self, moment: datetime) -> int:
        return sum(1 for t in self.times if t < moment)


def make_ledger(url: str, seed: int = 7) -> Ledger:
    db.upgrade(url)
    engine = db.make_engine(url)
    ledger = Ledger(url, engine, random.Random(seed))
    created = NOW - timedelta(days=30)
    with engine.begin() as conn:
        for name in ("node-a", "node-b"):
            conn.execute(insert(Node), [{"name": name, "created_at": created}])
        ledger.nodes = list(conn.execute(select(Node.id).order_by(Node.id)).scalars())
        ledger.seq = dict.fromkeys(ledger.nodes, 0)
        for name in ("north", "south"):
            conn.execute(insert(Site), [{"name": name, "timezone": "UTC", "created_at": created}])
        ledger.sites = list(conn.execute(select(Site.id).order_by(Site.id)).scalars())
        for t in ("acme", "globex", "initech"):
            conn.execute(insert(Tenant), [{"name": t, "active": True, "created_at": created}])
        for tenant_id in conn.execute(select(Tenant.id).order_by(Tenant.id)).scalars():
            for w in range(4):
                conn.execute(
                    insert(Worker),
                    [{"tenant_id": tenant_id, "name": f"s19-{w:02d}", "created_at": created}],
                )
        ledger.workers = [
            (w, t) for w, t in conn.execute(select(Worker.id, Worker.tenant_id).order_by(Worker.id))
        ]
    return ledger


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    """~3 days of shares up to NOW from two nodes, written in random order."""
    ledger = make_ledger(db_url)
    rows = ledger.share_rows(3000, NOW - timedelta(days=3), NOW)
    # shares exactly at the 48 h cutoff and a microsecond either side
    edge = cutoff(timedelta(hours=48), NOW)
    worker_id, tenant_id = ledger.workers[0]
    for delta in (-1, 0, 1):
        at = edge + timedelta(microseconds=delta)
        rows.append(ledger.row(worker_id, tenant_id, ledger.sites[0], 0.25, 0.75, at))
    ledger.number(rows)
    ledger.rng.shuffle(rows)
    ledger.write(rows)
    try:
        yield ledger
    finally:
        ledger.engine.dispose()


def shares_table(engine: Engine) -> dict[int, tuple[Any, ...]]:
    with engine.connect() as conn:
        return {r[0]: tuple(r) for r in conn.execute(select(Share.__table__))}


def hours_table(engine: Engine) -> dict[int, tuple[Any, ...]]:
    with engine.connect() as conn:
        return {r[0]: tuple(r) for r in conn.execute(select(ShareHour.__table__))}


#: Positions of `work` and `created_at` in a `shares` row as shares_table reads it.
WORK = [c.name for c in Share.__table__.columns].index("work")
CREATED = [c.name for c in Share.__table__.columns].index("created_at")


def oldest_share(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        oldest: datetime | None = conn.execute(select(func.min(Share.created_at))).scalar()
        return oldest


def hour_totals(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        shares, work = conn.execute(
            select(func.coalesce(func.sum(ShareHour.shares), 0), func.sum(ShareHour.work))
        ).one()
        return int(shares), int(work or 0)


# --- exact totals --------------------------------------------------------------------------


def test_compaction_preserves_totals_exactly(ledger: Ledger) -> None:
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    assert older == datetime(2026, 3, 12, 15, tzinfo=UTC)
    assert work_totals(engine) == ledger.expected
    before = shares_table(engine)
    old_ids = {i for i, r in before.items() if r[CREATED] < older}
    assert len(old_ids) == ledger.count_before(older) > 1000
    seen: list[CompactionResult] = []

    result = compact(engine, older, batch_rows=97, progress=seen.append)

    assert result.rows == len(old_ids)
    assert result.batches == math.ceil(len(old_ids) / 97) == len(seen)
    assert [s.rows for s in seen] == [min(97 * (i + 1), len(old_ids)) for i in range(len(seen))]
    assert seen[-1].hours_touched == result.hours_touched
    assert result.seconds > 0
    after = shares_table(engine)
    # only the old shares are gone; the others are untouched, column for column
    assert set(after) == set(before) - old_ids
    assert all(after[i] == before[i] for i in after)
    assert all(r[CREATED] >= older for r in after.values())
    # the share exactly at the cutoff is kept, the one a microsecond before it is not
    assert older in {r[CREATED] for r in after.values()}
    assert older - timedelta(microseconds=1) not in {r[CREATED] for r in after.values()}
    # one aggregate per (worker, site, hour), all of them before the cutoff
    hours = hours_table(engine)
    assert len(hours) == result.hours_touched
    assert len({(r[1], r[3], r[4]) for r in hours.values()}) == len(hours)
    assert all(r[4] < older for r in hours.values())
    assert hour_totals(engine) == (
        len(old_ids),
        sum(before[i][WORK] for i in old_ids),
    )
    # and the combined view adds up to exactly what the shares did
    assert work_totals(engine) == ledger.expected


def test_second_run_does_nothing(ledger: Ledger) -> None:
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    first = compact(engine, older, batch_rows=500)
    assert first.rows == ledger.count_before(older)
    shares, hours = shares_table(engine), hours_table(engine)

    second = compact(engine, older, batch_rows=500)

    assert (second.rows, second.batches, second.hours_touched) == (0, 0, 0)
    assert shares_table(engine) == shares
    assert hours_table(engine) == hours
    assert work_totals(engine) == ledger.expected


def test_max_batches_stops_and_the_next_run_goes_on(ledger: Ledger) -> None:
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    total = ledger.count_before(older)

    part = compact(engine, older, batch_rows=200, max_batches=3)

    assert (part.rows, part.batches) == (600, 3)
    assert hour_totals(engine)[0] == 600
    assert work_totals(engine) == ledger.expected
    rest = compact(engine, older, batch_rows=1000)
    assert rest.rows == total - 600
    assert rest.batches == math.ceil((total - 600) / 1000)
    assert oldest_share(engine) == older
    assert work_totals(engine) == ledger.expected


def test_later_cutoff_compacts_more_into_the_same_hours(ledger: Ledger) -> None:
    engine = ledger.engine
    compact(engine, cutoff(timedelta(hours=60), NOW), batch_rows=300)
    assert work_totals(engine) == ledger.expected
    # not hour-aligned: the cutoff's hour gets a partial aggregate, then the rest of it
    compact(engine, NOW - timedelta(hours=50, minutes=17), batch_rows=300)
    assert work_totals(engine) == ledger.expected
    compact(engine, cutoff(timedelta(hours=48), NOW), batch_rows=300)
    assert work_totals(engine) == ledger.expected
    hours = hours_table(engine)
    assert len({(r[1], r[3], r[4]) for r in hours.values()}) == len(hours)
    assert oldest_share(engine) == cutoff(timedelta(hours=48), NOW)


def test_compaction_adds_to_existing_aggregates(ledger: Ledger) -> None:
    """Aggregates already there (an earlier compaction, written through the ORM's types) are
    added to, row for row: no second row for the same hour, exact sums, best of both."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    old_keys = sorted((k for k in ledger.expected if k[2] < older), key=lambda k: k[2])
    chosen = ledger.rng.sample(old_keys, 12)
    tenant_of = dict(ledger.workers)
    existing: list[dict[str, Any]] = []
    for i, (worker_id, site_id, hour) in enumerate(chosen):
        best = ledger.expected[(worker_id, site_id, hour)][2]
        # half of them have a better best share than the shares to come, half a worse one
        best = best * 10 if i % 2 else best / 10
        shares, work = 1000 + i, (2**40) * (i + 1) + 12345
        existing.append(
            {
                "worker_id": worker_id,
                "tenant_id": tenant_of[worker_id],
                "site_id": site_id,
                "hour": hour,
                "shares": shares,
                "work": work,
                "best_share_difficulty": best,
            }
        )
        add(ledger.expected, (worker_id, site_id, hour), shares, work, best)
    # and one hour with an aggregate but no shares left at all
    worker_id, tenant_id = ledger.workers[1]
    lonely = floor_hour(NOW - timedelta(days=20))
    existing.append(
        {
            "worker_id": worker_id,
            "tenant_id": tenant_id,
            "site_id": ledger.sites[1],
            "hour": lonely,
            "shares": 5,
            "work": 5 * 2**16,
            "best_share_difficulty": 3.5,
        }
    )
    add(ledger.expected, (worker_id, ledger.sites[1], lonely), 5, 5 * 2**16, 3.5)
    with engine.begin() as conn:
        conn.execute(insert(ShareHour), existing)
    ids_before = {(r[1], r[3], r[4]): r[0] for r in hours_table(engine).values()}
    assert work_totals(engine) == ledger.expected

    result = compact(engine, older, batch_rows=250)

    hours = hours_table(engine)
    by_key = {(r[1], r[3], r[4]): r for r in hours.values()}
    assert len(by_key) == len(hours)  # the same hour never got a second row
    for key, row_id in ids_before.items():
        assert by_key[key][0] == row_id  # added to in place
    assert len(hours) == len({k for k in ledger.expected if k[2] < older})
    assert result.hours_touched == len(hours) - 1  # all but the lonely one
    assert work_totals(engine) == ledger.expected


# --- interruptions ---------------------------------------------------------------------------


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("after", ["INSERT INTO share_hours", "DELETE FROM shares"])
def test_interruption_inside_a_batch_rolls_it_back(ledger: Ledger, after: str) -> None:
    """The second batch fails right after one of its writes (SQLite: aggregates written,
    then shares deleted too; PostgreSQL: shares deleted, then aggregates written too), before
    its commit: none of it stays, the first batch does, and a rerun finishes, exactly."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    total = ledger.count_before(older)
    seen = 0

    def crash_after_second(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal seen
        if after.upper() in statement.upper():
            seen += 1
            if seen == 2:
                raise Crash("power cut")

    event.listen(engine, "after_cursor_execute", crash_after_second)
    try:
        with pytest.raises(Crash):
            compact(engine, older, batch_rows=400)
    finally:
        event.remove(engine, "after_cursor_execute", crash_after_second)

    assert seen == 2
    assert hour_totals(engine)[0] == 400  # the first batch only
    assert len(shares_table(engine)) == len(ledger.times) - 400
    assert work_totals(engine) == ledger.expected
    rest = compact(engine, older, batch_rows=400)
    assert rest.rows == total - 400
    assert hour_totals(engine)[0] == total
    assert oldest_share(engine) == older
    assert work_totals(engine) == ledger.expected


def test_progress_callback_raising_stops_after_a_committed_batch(ledger: Ledger) -> None:
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)

    def stop(so_far: CompactionResult) -> None:
        raise KeyboardInterrupt  # Ctrl-C between batches

    with pytest.raises(KeyboardInterrupt):
        compact(engine, older, batch_rows=333, progress=stop)

    assert hour_totals(engine)[0] == 333
    assert work_totals(engine) == ledger.expected
    compact(engine, older, batch_rows=333)
    assert hour_totals(engine)[0] == ledger.count_before(older)
    assert work_totals(engine) == ledger.expected


def test_shares_written_during_compaction_are_neither_lost_nor_counted_twice(
    ledger: Ledger,
) -> None:
    """Old shares written while compaction runs (a spool replayed; another node), half with
    ids inside the ranges the batches take, half above them: whatever a batch sees, it both
    aggregates and deletes, and what it does not see stays for the next batch."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    late = ledger.share_rows(1200, NOW - timedelta(days=3), NOW)
    ledger.number(late[600:])  # above
    node_id = ledger.nodes[0]  # inside: odd sequence numbers, which number() leaves unused
    unused = ledger.rng.sample(range(1, ledger.seq[node_id], 2), 600)
    for r, seq in zip(late[:600], unused, strict=True):
        r["node_id"], r["id"] = node_id, node_id << ID_SHIFT | seq
    ledger.rng.shuffle(late)
    errors: list[BaseException] = []
    done = threading.Event()

    def replay() -> None:
        try:
            for i in range(0, len(late), 20):
                with engine.begin() as conn:
                    conn.execute(insert(Share), late[i : i + 20])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=replay)
    writer.start()
    runs = 0
    while not done.is_set() or runs < 2:
        compact(engine, older, batch_rows=150)
        runs += 1
    writer.join()
    assert errors == []
    compact(engine, older, batch_rows=150)
    ledger.account(late)
    assert oldest_share(engine) == older
    assert hour_totals(engine)[0] == ledger.count_before(older)
    assert work_totals(engine) == ledger.expected


def test_two_compactions_at_once_count_every_share_once(ledger: Ledger) -> None:
    """Two compactions started together (an operator's run while cron's is going) share the
    work between them and count every share exactly once."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    results: list[CompactionResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            results.append(compact(engine, older, batch_rows=60))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sum(r.rows for r in results) == ledger.count_before(older)
    assert hour_totals(engine)[0] == ledger.count_before(older)
    assert oldest_share(engine) == older
    assert work_totals(engine) == ledger.expected


# --- arguments and the CLI -----------------------------------------------------------------


def test_keep_late_leaves_the_shares_pps_has_not_paid_and_takes_the_rest(
    ledger: Ledger,
) -> None:
    """Under PPS, a share loaded late from a spool (`late` true) is paid per share by its
    height, which an hourly row does not keep: compaction must leave it however old it is,
    and take it once it is paid (`late` false) like any other."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    old_ids = sorted(i for i, r in shares_table(engine).items() if r[CREATED] < older)
    unpaid, paid = old_ids[::7], old_ids[3::7]
    with engine.begin() as conn:
        conn.execute(Share.__table__.update().where(Share.id.in_(unpaid)).values(late=True))
        conn.execute(Share.__table__.update().where(Share.id.in_(paid)).values(late=False))

    kept = compact(engine, older, batch_rows=211, keep_late=True)

    assert kept.rows == len(old_ids) - len(unpaid)
    left = {i for i, r in shares_table(engine).items() if r[CREATED] < older}
    assert left == set(unpaid)
    assert work_totals(engine) == ledger.expected
    assert compact(engine, older, keep_late=True).rows == 0
    # Paid: they go with the next run. (Without keep_late they would have gone already.)
    with engine.begin() as conn:
        conn.execute(Share.__table__.update().where(Share.id.in_(unpaid)).values(late=False))
    assert compact(engine, older, keep_late=True).rows == len(unpaid)
    assert work_totals(engine) == ledger.expected


def test_hours_keep_the_network_target_of_their_shares(ledger: Ledger) -> None:
    """Shares of one worker, site and hour mined at two network targets (a difficulty change
    inside the hour) become two hourly rows, one per target, their sums exact."""
    engine = ledger.engine
    older = cutoff(timedelta(hours=48), NOW)
    with engine.begin() as conn:
        conn.execute(
            Share.__table__.update()
            .where(Share.created_at < older, Share.id % 4 == 0)
            .values(bits=0x1702F128)
        )
        conn.execute(
            Share.__table__.update()
            .where(Share.created_at < older, Share.id % 4 != 0)
            .values(bits=0x17031ABE)
        )
        want: dict[tuple[int, int, datetime, int], tuple[int, int]] = {}
        for worker_id, site_id, at, bits, work in conn.execute(
            select(Share.worker_id, Share.site_id, Share.created_at, Share.bits, Share.work).where(
                Share.created_at < older
            )
        ):
            key = (worker_id, site_id, floor_hour(at), bits)
            n, w = want.get(key, (0, 0))
            want[key] = (n + 1, w + work)

    compact(engine, older, batch_rows=500)

    with engine.connect() as conn:
        got = {
            (w, s, h, b): (n, wk)
            for w, s, h, b, n, wk in conn.execute(
                select(
                    ShareHour.worker_id,
                    ShareHour.site_id,
                    ShareHour.hour,
                    ShareHour.bits,
                    ShareHour.shares,
                    ShareHour.work,
                )
            )
        }
    assert got == want
    assert {k[3] for k in got} == {0x1702F128, 0x17031ABE}
    assert work_totals(engine) == ledger.expected


def test_bad_arguments_are_refused(ledger: Ledger) -> None:
    engine = ledger.engine
    with pytest.raises(ValueError, match="timezone"):
        compact(engine, datetime(2026, 1, 1), batch_rows=10)
    with pytest.raises(ValueError, match="batch_rows"):
        compact(engine, NOW, batch_rows=0)
    with pytest.raises(ValueError, match="max_batches"):
        compact(engine, NOW, max_batches=0)
    with pytest.raises(ValueError, match="keep"):
        cutoff(timedelta(0), NOW)
    assert work_totals(engine) == ledger.expected
    assert hours_table(engine) == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["--keep-hours", "0"],
        ["--keep-hours", "-5"],
        ["--keep-hours", "2.5"],
        ["--keep-hours", "100000"],
        ["--batch-rows", "0"],
        ["--batch-rows", "many"],
        ["--max-batches", "0"],
        ["--max-batches", "-1"],
    ],
)
def test_cli_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(["ledger", "compact", *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()


def write_config(path: Path, url: str) -> Path:
    path.write_text(json.dumps({**DEFAULT_CONFIG, "database_url": url, "log_level": "warning"}))
    return path


def farmpool(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pool", "-c", str(config), *args]


def test_cli_killed_mid_run_then_rerun(db_url: str, tmp_path: Path) -> None:
    """`farmpool ledger compact` killed (SIGKILL) after some batches leaves exact totals, and
    running it again finishes the job."""
    now = datetime.now(UTC)
    ledger = make_ledger(db_url, seed=11)
    try:
        rows = ledger.share_rows(3000, now - timedelta(days=3), now)
        ledger.number(rows)
        ledger.write(rows)
        config = write_config(tmp_path / "farmpool.json", db_url)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            farmpool(config, "ledger", "compact", "--batch-rows", "10"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("compacting shares created before"), first + proc.stderr.read()
        progress = proc.stdout.readline()
        assert "shares in 1 batches" in progress, progress + proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        compacted = hour_totals(ledger.engine)[0]
        old = ledger.count_before(cutoff(timedelta(hours=48), now))
        assert 10 <= compacted < old  # killed part-way
        assert compacted % 10 == 0  # whole batches only
        assert work_totals(ledger.engine) == ledger.expected

        done = subprocess.run(
            farmpool(config, "ledger", "compact", "--keep-hours", "48", "--batch-rows", "700"),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[-1].startswith("compacted "), done.stdout
        assert "rows/s" in lines[-1]
        remaining = oldest_share(ledger.engine)
        assert remaining is None or remaining >= cutoff(timedelta(hours=48), now)
        assert hour_totals(ledger.engine)[0] >= old
        assert work_totals(ledger.engine) == ledger.expected

        again = subprocess.run(
            farmpool(config, "ledger", "compact", "--max-batches", "1"),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[-1].startswith("compacted 0 shares"), again.stdout
    finally:
        ledger.engine.dispose()


def test_cli_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path / "farmpool.json", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    done = subprocess.run(
        farmpool(config, "ledger", "compact"), capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 1
    assert "farmpool db upgrade" in done.stderr
