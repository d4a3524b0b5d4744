"""pool.ledger.writer.LedgerWriter on real databases (SQLite and PostgreSQL): group commits from
many threads, blocks, reject counts, the spool through a real outage, and the spool loaded
after a crash.

The writer's contract with the reactor is `reactor.callFromThread(fn, *args)` from its own
thread, and that the reactor runs `fn` on its (one) thread. Here a small stand-in takes the
reactor's place: callFromThread runs `fn` at once, under a lock that the recording threads
also hold while they call `writer.record()` and add their callbacks. That keeps the one
property of the reactor the writer relies on (records and Deferred callbacks never run at the
same time) and lets the tests drive the writer's thread from several threads without running
a reactor; the writer under the real reactor is covered by the e2e tests (tests/e2e).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url

from pool.ledger import admin, db
from pool.ledger.models import Block, Node, Share, ShareReject, Site, Tenant, Worker
from pool.ledger.spool import Spool
from pool.ledger.writer import BlockRecord, LedgerWriter, ShareRecord, work_of
from tests.helpers import seed_ledger, wait_until

TENANTS = ("acme", "beta")
SITES = ("north", "south")
#: Difficulties whose work (difficulty x 2^16, rounded, at least 1) is not a round number.
DIFFICULTIES = (2.0**-32, 1e-12, 0.001, 1.0, 3.3, 8192.0, 65536.5, 1048576.25)
HOUR = 3600.0
T0 = 1_790_000_000.0  # 2026-09-21 12:53:20 UTC


class ThreadReactor:
    """The reactor's place in these tests (see the module docstring): callFromThread runs the
    call at once under `lock`, the lock the recording threads hold around `writer.record()`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.errors: list[BaseException] = []
        self.calls = 0

    def callFromThread(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        with self.lock:
            self.calls += 1
            try:
                fn(*args, **kw)
            except BaseException as exc:  # the reactor would log it and carry on
                self.errors.append(exc)


class Acks:
    """What each record's Deferred did, by key (share hash, block hash)."""

    def __init__(self, reactor: ThreadReactor) -> None:
        self.reactor = reactor
        self.fired: defaultdict[Any, list[str]] = defaultdict(list)

    def record(self, writer: LedgerWriter, record: ShareRecord | BlockRecord) -> None:
        key = record.hash
        with self.reactor.lock:
            d = writer.record(record)
            d.addCallbacks(
                lambda _: self.fired[key].append("ok"),
                lambda failure: self.fired[key].append(f"error: {failure.value}"),
            )

    def record_all(
        self, writer: LedgerWriter, records: list[ShareRecord], threads: int = 4
    ) -> list[threading.Thread]:
        """Record from `threads` threads at once; returns the (started) threads."""
        chunks = [records[i::threads] for i in range(threads)]

        def run(chunk: list[ShareRecord]) -> None:
            for n, record in enumerate(chunk):
                self.record(writer, record)
                if n % 50 == 49:
                    time.sleep(0.001)  # let the batches interleave with the recording

        started = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
        for thread in started:
            thread.start()
        return started

    def count(self) -> int:
        with self.reactor.lock:
            return len(self.fired)

    def wait(self, keys: set[Any], writer: LedgerWriter, timeout: float = 60.0) -> None:
        wait_until(
            lambda: keys <= self.fired.keys(),
            timeout,
            lambda: (
                f"{len(keys - self.fired.keys())} of {len(keys)} records never acknowledged; "
                f"writer thread alive: {writer._thread is not None and writer._thread.is_alive()}, "
                f"stats {dict(writer.stats)}, reactor errors {self.reactor.errors[:3]}"
            ),
        )

    def check_once(self, keys: set[Any]) -> None:
        with self.reactor.lock:
            assert set(self.fired) == keys
            wrong = {k: v for k, v in self.fired.items() if v != ["ok"]}
        assert not wrong, (
            f"{len(wrong)} Deferreds did not fire exactly once: {list(wrong.items())[:3]}"
        )
        assert not self.reactor.errors, self.reactor.errors[:3]


def share(
    tag: str,
    n: int,
    *,
    tenant: str = "acme",
    worker: str = "w0",
    site: str = "north",
    difficulty: float = 1.0,
    when: float = T0,
    is_block: bool = False,
) -> ShareRecord:
    return ShareRecord(
        hash=hashlib.sha256(f"{tag}/{n}".encode()).digest(),
        tenant=tenant,
        worker=worker,
        site=site,
        job_id=f"{n % 4096:x}",
        height=800 + n % 3,
        difficulty=difficulty,
        share_difficulty=difficulty * 1.5,
        is_block=is_block,
        time=when + n * 0.001,
    )


def shares(tag: str, count: int, workers: int = 12) -> list[ShareRecord]:
    """`count` shares spread over the tenants, sites, `workers` workers per tenant and the
    difficulties."""
    return [
        share(
            tag,
            n,
            tenant=TENANTS[n % 2],
            worker=f"rig{(n // 2) % workers:03d}",
            site=SITES[(n // 3) % 2],
            difficulty=DIFFICULTIES[n % len(DIFFICULTIES)],
        )
        for n in range(count)
    ]


def prepare(url: str) -> None:
    """Schema at head, the sites and tenants of these tests."""
    seed_ledger(url, SITES, TENANTS)


def ledger_shares(engine: Engine) -> list[tuple[bytes, str, str, str, int, float]]:
    """(hash, tenant, worker, site, work, difficulty) of every share row."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Share.hash, Tenant.name, Worker.name, Site.name, Share.work, Share.difficulty)
            .join(Tenant, Share.tenant_id == Tenant.id)
            .join(Worker, Share.worker_id == Worker.id)
            .join(Site, Share.site_id == Site.id)
        ).all()
    return [(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


def check_ledger(engine: Engine, records: list[ShareRecord]) -> None:
    """Every record is in the ledger exactly once, as recorded, and nothing else is."""
    rows = ledger_shares(engine)
    counts = Counter(row[0] for row in rows)
    duplicated = [h.hex() for h, c in counts.items() if c > 1]
    assert not duplicated, f"{len(duplicated)} shares stored twice, e.g. {duplicated[:3]}"
    expected = {r.hash: r for r in records}
    missing = expected.keys() - counts.keys()
    extra = counts.keys() - expected.keys()
    assert not missing, f"{len(missing)} of {len(expected)} shares missing"
    assert not extra, f"{len(extra)} shares that were never recorded"
    for hash_, tenant, worker, site, work, difficulty in rows:
        r = expected[hash_]
        assert (tenant, worker, site, difficulty) == (r.tenant, r.worker, r.site, r.difficulty)
        assert work == work_of(r.difficulty)
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(Share.work))).scalar()
    assert total == sum(work_of(r.difficulty) for r in records)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Engine]:
    prepare(db_url)
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writers() -> Iterator[Callable[..., LedgerWriter]]:
    """Makes opened writers; every one still running is stopped at the end."""
    made: list[LedgerWriter] = []

    def make(
        engine: Engine, name: str, spool: Path, reactor: ThreadReactor, **kw: Any
    ) -> LedgerWriter:
        writer = LedgerWriter(engine, name, spool, reactor, **kw)
        made.append(writer)
        writer.open()
        return writer

    yield make
    for writer in made:
        if writer._thread is not None and writer._thread.is_alive():
            writer.stop(timeout=10)


# --- group commits ----------------------------------------------------------------------------


def test_shares_from_many_threads_and_two_nodes_are_written_once_with_exact_work(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    reactor = ThreadReactor()
    acks = Acks(reactor)
    a = writers(ledger, "node-a", tmp_path / "a.jsonl", reactor, batch_max=400)
    b = writers(ledger, "node-b", tmp_path / "b.jsonl", reactor, batch_max=400)
    a.start()
    b.start()
    records_a = shares("a", 4000)
    records_b = shares("b", 2000)  # the same workers, from another node at the same time
    threads = acks.record_all(a, records_a, 4) + acks.record_all(b, records_b, 2)
    for thread in threads:
        thread.join()
    records = records_a + records_b
    keys = {r.hash for r in records}
    acks.wait(keys, a)
    a.stop()
    b.stop()

    acks.check_once(keys)
    check_ledger(ledger, records)
    assert a.stats["committed"] == 4000 and b.stats["committed"] == 2000
    assert a.stats["spooled"] == b.stats["spooled"] == 0
    assert a.stats["batches"] > 1  # group commits, not one row each and not one huge batch
    assert a.spool.size() == b.spool.size() == 0
    with ledger.connect() as conn:
        workers = conn.execute(
            select(Tenant.name, Worker.name).join(Tenant, Worker.tenant_id == Tenant.id)
        ).all()
        by_tenant = dict(
            conn.execute(
                select(Tenant.name, func.sum(Share.work))
                .join(Tenant, Share.tenant_id == Tenant.id)
                .group_by(Tenant.name)
            ).all()
        )
    assert sorted(workers) == sorted({(r.tenant, r.worker) for r in records})
    for tenant in TENANTS:
        assert by_tenant[tenant] == sum(
            work_of(r.difficulty) for r in records if r.tenant == tenant
        )


def test_blocks_are_recorded_with_the_node_answer(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = writers(ledger, "node-a", tmp_path / "spool.jsonl", reactor)
    writer.start()
    found = share("block", 1, tenant="beta", worker="big", site="south", is_block=True)
    accepted = BlockRecord(
        "00" * 31 + "aa", 801, 625_000_000, "beta", "big", "south", True, None, T0
    )
    rejected = BlockRecord(
        "00" * 31 + "bb", 802, 312_500_000, "acme", "w1", "north", False, "high-hash", T0 + 1
    )
    for record in (found, accepted, rejected):
        acks.record(writer, record)
    keys = {found.hash, accepted.hash, rejected.hash}
    acks.wait(keys, writer)
    # The same block again (a resubmission): one row, and its Deferred fires too.
    again = BlockRecord("00" * 31 + "aa", 801, 625_000_000, "beta", "big", "south", True, None, T0)
    fired_before = len(acks.fired[accepted.hash])
    acks.record(writer, again)
    wait_until(lambda: len(acks.fired[accepted.hash]) > fired_before, 30)
    writer.stop()

    with ledger.connect() as conn:
        blocks = conn.execute(
            select(
                Block.hash,
                Block.height,
                Block.reward_sat,
                Block.accepted,
                Block.node_answer,
                Block.status,
                Tenant.name,
                Worker.name,
                Site.name,
            )
            .join(Tenant, Block.tenant_id == Tenant.id)
            .join(Worker, Block.worker_id == Worker.id)
            .join(Site, Block.site_id == Site.id)
            .order_by(Block.height)
        ).all()
        is_block = conn.execute(select(Share.is_block).where(Share.hash == found.hash)).scalar()
    assert [tuple(b) for b in blocks] == [
        (accepted.hash, 801, 625_000_000, True, None, "accepted", "beta", "big", "south"),
        (rejected.hash, 802, 312_500_000, False, "high-hash", "rejected", "acme", "w1", "north"),
    ]
    assert is_block is True
    assert acks.fired[accepted.hash] == ["ok", "ok"]
    assert acks.fired[found.hash] == acks.fired[rejected.hash] == ["ok"]
    assert not reactor.errors


def test_reject_counts_are_upserted_and_summed_across_flushes_and_nodes(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    reactor = ThreadReactor()
    a = writers(ledger, "node-a", tmp_path / "a.jsonl", reactor, rejects_every_s=0.05)
    b = writers(ledger, "node-b", tmp_path / "b.jsonl", reactor, rejects_every_s=0.05)
    a.start()
    b.start()
    hour = T0 - T0 % HOUR

    def count(writer: LedgerWriter, n: int, reason: str, when: float, worker: str = "w1") -> None:
        for _ in range(n):
            writer.count_reject("acme", worker, "north", reason, when)

    def stored() -> dict[tuple[str, str, float], int]:
        with ledger.connect() as conn:
            rows = conn.execute(
                select(Worker.name, ShareReject.reason, ShareReject.hour, ShareReject.count).join(
                    Worker, ShareReject.worker_id == Worker.id
                )
            ).all()
        return {(w, reason, h.timestamp()): c for w, reason, h, c in rows}

    count(a, 5, "low-difficulty", hour + 10)
    count(a, 3, "stale", hour + 20)
    count(a, 2, "low-difficulty", hour + 3599)  # the same hour
    wait_until(lambda: stored().get(("w1", "low-difficulty", hour)) == 7, 30, lambda: str(stored()))
    count(a, 4, "low-difficulty", hour + 100)  # a later flush: added to the row
    count(b, 6, "low-difficulty", hour + 200)  # another node: added to the same row
    count(b, 1, "duplicate", hour + HOUR + 1, worker="new-rig")  # a new hour, a new worker
    a.stop()
    b.stop()
    assert stored() == {
        ("w1", "low-difficulty", hour): 17,
        ("w1", "stale", hour): 3,
        ("new-rig", "duplicate", hour + HOUR): 1,
    }


# --- outage and spool ---------------------------------------------------------------------------


class Outage:
    """Makes the test database refuse commits for real, and lets it recover.

    PostgreSQL: the database stops accepting connections (ALLOW_CONNECTIONS false, which
    holds for superusers too) and its backends are terminated, so a transaction in flight
    dies and every new connection is refused. SQLite: another connection holds the write
    lock (BEGIN EXCLUSIVE), so every write times out with "database is locked" (the writer's
    engine waits 200 ms for the lock instead of the default 30 s).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.name = make_url(url).database or ""
        self._locker: sqlite3.Connection | None = None

    def engine(self) -> Engine:
        engine = db.make_engine(self.url)
        if self.dialect == "sqlite":

            @event.listens_for(engine, "connect")
            def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA busy_timeout=200")

        return engine

    def _admin(self) -> psycopg.Connection[Any]:
        server = make_url(self.url).set(drivername="postgresql", database="postgres")
        return psycopg.connect(
            server.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )

    def start(self) -> None:
        if self.dialect == "sqlite":
            self._locker = sqlite3.connect(self.name, timeout=30, isolation_level=None)
            self._locker.execute("BEGIN EXCLUSIVE")
            return
        with self._admin() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            )

    def end(self) -> None:
        if self.dialect == "sqlite":
            if self._locker is not None:
                self._locker.execute("ROLLBACK")
                self._locker.close()
                self._locker = None
            return
        with self._admin() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


def spooled_hashes(spool: Spool) -> list[bytes]:
    return [bytes.fromhex(item["hash"]) for item in spool.read() if item.get("t") == "share"]


def test_outage_spools_and_the_spool_is_loaded_exactly_once(
    db_url: str, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    prepare(db_url)
    outage = Outage(db_url)
    engine = outage.engine()
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = writers(
        engine, "node-a", tmp_path / "spool.jsonl", reactor, batch_max=200, retry_s=0.2
    )
    writer.start()
    try:
        # 1. A load, and the database fails in the middle of it.
        before = shares("before", 2000)
        threads = acks.record_all(writer, before, 4)
        wait_until(lambda: acks.count() >= 400, 30)
        outage.start()
        for thread in threads:
            thread.join()
        acks.wait({r.hash for r in before}, writer)
        # 2. While it is down: acknowledged from the spool, which grows (new workers too).
        during = [
            share(
                "during",
                n,
                tenant=TENANTS[n % 2],
                worker=f"late{n % 7}",
                site=SITES[n % 2],
                difficulty=DIFFICULTIES[n % len(DIFFICULTIES)],
            )
            for n in range(600)
        ]
        spooled_before, size_before = writer.stats["spooled"], writer.spool.size()
        for thread in acks.record_all(writer, during, 3):
            thread.join()
        acks.wait({r.hash for r in during}, writer)
        assert writer.stats["spooled"] >= spooled_before + len(during)
        assert writer.spool.size() > size_before
        assert {r.hash for r in during} <= set(spooled_hashes(writer.spool))
    finally:
        outage.end()
    # 3. It answers again; more load while the spool is loaded back.
    after = shares("after", 1000)
    for thread in acks.record_all(writer, after, 2):
        thread.join()
    records = before + during + after
    keys = {r.hash for r in records}
    acks.wait(keys, writer)
    wait_until(
        lambda: writer.db_ok and writer.spool.size() == 0,
        60,
        lambda: f"spool {writer.spool.size()} bytes, db_ok {writer.db_ok}, {dict(writer.stats)}",
    )
    writer.stop()

    acks.check_once(keys)
    check_ledger(engine, records)
    assert writer.stats["spooled"] > 0
    assert writer.stats["replayed"] == writer.stats["spooled"]
    assert writer.stats["committed"] + writer.stats["spooled"] == len(records)
    assert writer.spool.size() == 0 and spooled_hashes(writer.spool) == []
    engine.dispose()


def spool_for_later(
    engine: Engine,
    spool: Path,
    records: list[ShareRecord],
    reactor: ThreadReactor,
    writers: Callable[..., LedgerWriter],
    **kw: Any,
) -> None:
    """Spool `records` as a writer does while its database is down (ids and all), then leave
    them there as a crash would."""
    acks = Acks(reactor)
    writer = writers(engine, "node-a", spool, reactor, retry_s=3600, **kw)
    writer.db_ok = False  # as after a failed commit; no retry within the test
    writer.start()
    for record in records:
        acks.record(writer, record)
    acks.wait({r.hash for r in records}, writer)
    writer.stop()
    assert writer.stats["spooled"] == len(records)


def test_a_spool_left_by_a_crash_is_loaded_once_by_the_next_open(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    reactor = ThreadReactor()
    spool_path = tmp_path / "spool.jsonl"
    # Committed before the crash:
    committed = shares("committed", 300)
    first = writers(ledger, "node-a", spool_path, reactor)
    first.start()
    acks = Acks(reactor)
    for record in committed:
        acks.record(first, record)
    acks.wait({r.hash for r in committed}, first)
    first.stop()
    # Spooled before the crash, with new workers:
    pending = [share("pending", n, worker=f"spooled{n % 3}") for n in range(200)]
    spool_for_later(ledger, spool_path, pending, reactor, writers)
    # ... and a commit whose answer was lost: those shares were spooled as well.
    Spool(spool_path).append(r.to_json() for r in committed[100:250])
    assert len(spooled_hashes(Spool(spool_path))) == 350

    again = writers(ledger, "node-a", spool_path, reactor)  # the restart: open() loads it
    check_ledger(ledger, committed + pending)
    assert again.spool.size() == 0
    assert again.stats["replayed"] == 350
    # The node goes on writing new shares after the replay, none of them clashing.
    again.start()
    later = shares("later", 500)
    acks = Acks(reactor)
    for thread in acks.record_all(again, later, 2):
        thread.join()
    acks.wait({r.hash for r in later}, again)
    again.stop()
    acks.check_once({r.hash for r in later})
    check_ledger(ledger, committed + pending + later)
    assert again.stats["committed"] == 500 and again.stats["spooled"] == 0


def test_a_torn_last_spool_line_is_skipped_with_a_warning(
    ledger: Engine,
    tmp_path: Path,
    writers: Callable[..., LedgerWriter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reactor = ThreadReactor()
    spool_path = tmp_path / "spool.jsonl"
    whole = [share("whole", n) for n in range(20)]
    spool_for_later(ledger, spool_path, whole, reactor, writers)
    torn = share("torn", 1)
    line = (
        Spool(spool_path)
        .path.read_bytes()
        .splitlines()[-1]
        .replace(whole[-1].hash.hex().encode(), torn.hash.hex().encode())
    )
    with spool_path.open("ab") as f:
        f.write(line[: len(line) // 2])  # the process died while writing it: no newline
    caplog.set_level(logging.WARNING, logger="pool.ledger.spool")
    again = writers(ledger, "node-a", spool_path, reactor)
    assert any("torn" in r.getMessage() for r in caplog.records), caplog.text
    check_ledger(ledger, whole)
    assert again.spool.size() == 0


# --- found by these tests -----------------------------------------------------------------------


def test_a_rolled_back_batch_leaves_no_new_worker_behind(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """A batch that fails after the writer inserted a new worker row (here: a share already in
    the ledger, as after a commit whose answer was lost) is rolled back, worker row and all;
    the writer must not go on using that worker's id, or the batch (and every later one from
    that worker) fails for ever on the foreign key, or lands on another worker that got the
    id (SQLite reuses it)."""
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = writers(ledger, "node-a", tmp_path / "spool.jsonl", reactor, retry_s=0.1)
    writer.start()
    old = share("old", 1)
    acks.record(writer, old)
    acks.wait({old.hash}, writer)
    writer.stop()

    writer = writers(ledger, "node-a", tmp_path / "spool.jsonl", reactor, retry_s=0.1)
    new = share("new", 1, worker="brand-new")
    acks.record(writer, new)  # queued before the thread runs: one batch with the old share
    with reactor.lock:
        writer.record(old)  # written again: its Deferred was checked above
    writer.start()
    acks.wait({new.hash}, writer)
    wait_until(
        lambda: writer.spool.size() == 0 and writer.db_ok, 10, lambda: str(dict(writer.stats))
    )
    other = share("other", 1, worker="another-new")
    acks.record(writer, other)
    acks.wait({other.hash}, writer)
    writer.stop()
    check_ledger(ledger, [old, new, other])


def test_spool_lines_longer_than_a_replay_chunk_are_loaded(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """The spool is loaded in chunks of about batch_max x 400 bytes; with `ledger.batch_max: 1`
    a share of a long worker name is a longer line than that, and so is a torn last line of
    one: each must still be loaded (or skipped), not read as nothing for ever."""
    reactor = ThreadReactor()
    spool_path = tmp_path / "spool.jsonl"
    tenant = "farm-customer-" + "t" * 50  # 64 characters, the most a name may have
    admin.add_tenant(ledger, tenant, "regtest")
    rig = "rack-07-shelf-3-" + "x" * 112  # 128 characters, the most a worker may have
    long = [share("long", n, tenant=tenant, worker=rig) for n in range(5)]
    spool_for_later(ledger, spool_path, long, reactor, writers, batch_max=1)
    line = spool_path.read_bytes().splitlines()[-1]
    assert len(line) > 400
    torn = share("torn", 1, tenant=tenant, worker=rig)
    with spool_path.open("ab") as f:
        f.write(line.replace(long[-1].hash.hex().encode(), torn.hash.hex().encode())[:-5])
    opened: list[LedgerWriter] = []
    opener = threading.Thread(
        target=lambda: opened.append(writers(ledger, "node-a", spool_path, reactor, batch_max=1)),
        daemon=True,
    )
    opener.start()
    opener.join(30)
    assert opened, "open() did not return within 30 s: the spool is not being loaded"
    check_ledger(ledger, long)
    assert opened[0].spool.size() == 0


# --- share times ----------------------------------------------------------------------------------


def test_share_times_are_stored_to_the_microsecond_never_a_second_early(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """A share at hh:59:59.9999998 is a share of the next hour (the microsecond rounds up into
    it), as Python and PostgreSQL read that time; SQLite once stored it as hh:59:59.000000, a
    second early and in the wrong hour. Every time below is stored as datetime.fromtimestamp
    reads it, on both databases."""
    hour_end = 1_790_002_800.0  # 2026-09-21 15:00:00 UTC
    times = [
        hour_end - 1 + 0.9999998,  # rounds up to 15:00:00.000000
        hour_end - 1 + 0.9999995,  # half a microsecond: rounds (half even) to 15:00:00
        hour_end - 1 + 0.9999994,  # stays 14:59:59.999999
        hour_end + 20 + 0.9999998,  # 15:00:21.000000
        hour_end + 0.0000004,  # 15:00:00.000000
        hour_end + 0.5,
        hour_end + 1.0000016,
    ]
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = writers(ledger, "node-a", tmp_path / "spool.jsonl", reactor)
    writer.start()
    records = [share("time", n, when=t - n * 0.001) for n, t in enumerate(times)]
    assert [r.time for r in records] == times
    for record in records:
        acks.record(writer, record)
    acks.wait({r.hash for r in records}, writer)
    writer.stop()
    with ledger.connect() as conn:
        stored = dict(conn.execute(select(Share.hash, Share.created_at)).all())
    want = {r.hash: datetime.fromtimestamp(r.time, UTC) for r in records}
    assert {bytes(h): t for h, t in stored.items()} == want
    assert want[records[0].hash] == datetime(2026, 9, 21, 15, 0, tzinfo=UTC)
    assert want[records[2].hash] == datetime(2026, 9, 21, 14, 59, 59, 999_999, tzinfo=UTC)


def test_network_targets_are_stored_and_spool_lines_from_before_them_still_load(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """Each share keeps the network target (bits) of its job, through the spool too; a spool
    line written before shares carried one loads with 0 (not known)."""
    reactor = ThreadReactor()
    spool_path = tmp_path / "spool.jsonl"
    mined = [share("bits", n) for n in range(3)]
    for record in mined:
        record.bits = 0x1702F128
    spool_for_later(ledger, spool_path, mined, reactor, writers)
    with ledger.connect() as conn:
        node_id = conn.execute(select(Node.id).where(Node.name == "node-a")).scalar_one()
    old = share("old-line", 1)
    line = old.to_json()
    del line["bits"]
    line["id"] = node_id << 48 | 999
    Spool(spool_path).append([line])
    writers(ledger, "node-a", spool_path, reactor)  # open() loads the spool
    with ledger.connect() as conn:
        stored = {bytes(h): b for h, b in conn.execute(select(Share.hash, Share.bits))}
    assert stored == {**{r.hash: 0x1702F128 for r in mined}, old.hash: 0}
    fresh = share("fresh", 1)
    fresh.bits = 0x207FFFFF
    writer = writers(ledger, "node-b", tmp_path / "b.jsonl", reactor)
    writer.start()
    acks = Acks(reactor)
    acks.record(writer, fresh)
    acks.wait({fresh.hash}, writer)
    writer.stop()
    with ledger.connect() as conn:
        assert conn.execute(select(Share.bits).where(Share.hash == fresh.hash)).scalar() == (
            0x207FFFFF
        )
