"""The durable share writer: the last step of the share path before the miner's `true`.

The reactor hands each accepted share (and each block) to `LedgerWriter.record`, which returns
a Deferred. One writer thread takes everything queued, writes it in one transaction (group
commit) and only then fires the Deferreds, so the reply leaves after the commit. When the
database cannot take a batch, the batch goes to the local spool (fsync'd) instead and is
acknowledged from there; the writer keeps spooling while the database is down, tries it again
every `retry_s`, and loads the spool back (idempotently, by share hash) once it answers.
Rejected-share counts are summed in memory and written every few seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from twisted.internet import defer

from pool.ledger import dialect
from pool.ledger.models import Block, Node, Share, ShareReject, Site, Tenant, Worker
from pool.ledger.records import (
    RecordError,
    ShareRecord,
    checked_int,
    checked_name,
    checked_time,
)
from pool.ledger.spool import Spool
from pool.units import MAX_MONEY_SAT, WORK_PER_DIFFICULTY

log = logging.getLogger(__name__)


class NotRecorded(RuntimeError):
    """A record the ledger could not keep (the share's Deferred fails with it)."""


def work_of(difficulty: float) -> int:
    """Expected hashes for a share of this difficulty, as a whole number (at least 1);
    RecordError for a difficulty that is not a finite number."""
    try:
        return max(1, round(difficulty * WORK_PER_DIFFICULTY))
    except (ValueError, OverflowError, TypeError):
        raise RecordError(f"difficulty: cannot credit {difficulty!r}") from None


@dataclass(slots=True)
class BlockRecord:
    """A block the pool found, with the node's answer."""

    hash: str
    height: int
    reward_sat: int
    tenant: str
    worker: str
    site: str
    accepted: bool
    node_answer: str | None
    time: float
    share_id: int = 0  # the finding share's id, once the writer has given it one
    share: ShareRecord | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "block",
            "share_id": self.share_id,
            "hash": self.hash,
            "height": self.height,
            "reward_sat": self.reward_sat,
            "tenant": self.tenant,
            "worker": self.worker,
            "site": self.site,
            "accepted": self.accepted,
            "node_answer": self.node_answer,
            "time": self.time,
        }

    def check(self) -> None:
        """RecordError if a field could not be stored as it is."""
        if not isinstance(self.hash, str) or len(self.hash) != 64:
            raise RecordError("hash: expected 64 hex digits")
        try:
            bytes.fromhex(self.hash)
        except ValueError:
            raise RecordError("hash: not hex") from None
        checked_int(self.height, "height", 0, 2**31 - 1)
        checked_int(self.reward_sat, "reward_sat", 0, MAX_MONEY_SAT)
        checked_name(self.tenant, "tenant")
        checked_name(self.worker, "worker")
        checked_name(self.site, "site")
        if not isinstance(self.accepted, bool):
            raise RecordError("accepted: expected true or false")
        if self.node_answer is not None and not isinstance(self.node_answer, str):
            raise RecordError("node_answer: expected text or null")
        checked_time(self.time)
        checked_int(self.share_id, "share_id", 0, 2**63 - 1)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BlockRecord:
        """A spooled block, every field checked (RecordError names the first bad one)."""
        if not isinstance(d, dict):
            raise RecordError(f"expected an object, got {type(d).__name__}")
        try:
            record = cls(
                d["hash"],
                d["height"],
                d["reward_sat"],
                d["tenant"],
                d["worker"],
                d["site"],
                d["accepted"],
                d["node_answer"],
                d["time"],
                d.get("share_id") or 0,
            )
        except KeyError as exc:
            raise RecordError(f"{exc.args[0]}: missing") from None
        record.time = checked_time(record.time)
        record.check()
        return record


Record = ShareRecord | BlockRecord

#: While records came in the last IDLE_AFTER_S, the writer polls its queue every POLL_S; after
#: that it blocks until the next record wakes it.
POLL_S = 0.001
IDLE_AFTER_S = 1.0

#: When fewer records than this are queued, the writer waits LINGER_S for more before a commit.
LINGER_BELOW = 64
LINGER_S = 0.002

#: Share ids are `node_id << ID_SHIFT | sequence`.
ID_SHIFT = 48

#: /health fails when records have waited this long without the writer taking any.
STUCK_AFTER_S = 10.0

#: Distinct internal errors logged with their traceback (later ones are only counted).
LOGGED_ERRORS_MAX = 100

_SHARE_COLUMNS = (
    "id, hash, node_id, worker_id, tenant_id, site_id, job_id, height, difficulty, "
    "share_difficulty, work, is_block, created_at, bits"
)


def _hour(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(minute=0, second=0, microsecond=0)


class LedgerWriter:
    """Group-commits shares and blocks from a thread of its own; spools when it must."""

    def __init__(
        self,
        engine: Engine,
        node_name: str,
        spool_path: Path,
        reactor: Any,
        *,
        batch_max: int = 5000,
        retry_s: float = 2.0,
        rejects_every_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self.node_name = node_name
        self.spool = Spool(spool_path)
        self.reactor = reactor
        self.batch_max = batch_max
        self.retry_s = retry_s
        self.rejects_every_s = rejects_every_s
        self.node_id = 0
        self.tenants: dict[str, int] = {}
        self.sites: dict[str, int] = {}
        self.workers: dict[tuple[int, str], int] = {}
        self.db_ok = True
        self.stats: Counter[str] = Counter()
        self.on_tenants: Callable[[set[str]], None] | None = None
        self._queue: deque[tuple[Record, defer.Deferred[None]]] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._last_work = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._rejects: Counter[tuple[str, str, str, str, datetime]] = Counter()
        self._rejects_lock = threading.Lock()
        self._dialect = engine.dialect.name
        self._seq = 0  # the last share sequence number handed out
        self._conn: Any = None  # the writer thread's own connection
        self._spool_offset = 0  # how far into the spool is already loaded
        self._id_cache: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        self._work_cache: dict[float, int] = {}
        self._stamp = dialect.driver_time(self._dialect)  # share times as the driver takes them
        self._moved_at = time.monotonic()  # when the writer last took records off the queue
        self._logged_errors: set[str] = set()
        # Workers this writer inserted in transactions not committed yet, by connection: a
        # rollback takes their rows and ids away, so the caches must forget them too.
        self._uncommitted: list[tuple[Any, tuple[int, str]]] = []
        event.listen(engine, "commit", self._committed)
        event.listen(engine, "rollback", self._rolled_back)

    # --- lifecycle (blocking; call before the reactor runs or from a thread) ----------------

    def open(self) -> None:
        """Register this node, load the name -> id caches, find where its share ids stand,
        load any spool left from before."""
        with self.engine.begin() as conn:
            conn.execute(
                dialect.insert_ignore(self._dialect, Node.__table__, ["name"]),
                [{"name": self.node_name, "created_at": datetime.now(UTC)}],
            )
            self.node_id = conn.execute(
                select(Node.id).where(Node.name == self.node_name)
            ).scalar_one()
            conn.execute(
                update(Node).where(Node.id == self.node_id).values(last_seen_at=datetime.now(UTC))
            )
        self._load_names()
        with self.engine.connect() as conn:
            low, high = self.node_id << ID_SHIFT, (self.node_id + 1) << ID_SHIFT
            stored = conn.execute(select(Node.share_seq).where(Node.id == self.node_id)).scalar()
            top = conn.execute(
                select(func.max(Share.id)).where(Share.id >= low, Share.id < high)
            ).scalar()
        self._seq = max(stored or 0, (top or low) - low)
        while self.spool.size() and self._replay_step():  # at startup: all of it, now
            pass
        if self.spool.size():
            raise SQLAlchemyError(f"the spool {self.spool.path} could not be loaded")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._flush_rejects()

    # --- from the reactor ------------------------------------------------------------------

    def record(self, record: Record) -> defer.Deferred[None]:
        """Queue a record; the Deferred fires once it is committed (or spooled)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._queue.append((record, d))
        if self._idle:  # the writer is blocked waiting: wake it (rare under load)
            self._idle = False
            self._wake.set()
        return d

    def count_reject(self, tenant: str, worker: str, site: str, reason: str, when: float) -> None:
        hour = _hour(when)
        with self._rejects_lock:
            self._rejects[(tenant, worker, site, reason, hour)] += 1

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def problem(self) -> str | None:
        """Why the writer is not doing its job (its thread is dead, or records have waited
        STUCK_AFTER_S without it taking any), or None: for /health."""
        if self._thread is not None and not self._thread.is_alive() and not self._stopping:
            return "the ledger writer thread is dead"
        waited = time.monotonic() - self._moved_at
        if self._queue and waited > STUCK_AFTER_S:
            return f"the ledger queue ({len(self._queue)} records) has not moved for {waited:.0f} s"
        return None

    def _internal_error(self, where: str, exc: BaseException) -> None:
        """A failure that is not the database's: counted, logged once per kind with its
        traceback (never a log line per batch), and survived."""
        self.stats["internal_errors"] += 1
        key = f"{where}: {type(exc).__name__}: {str(exc)[:200]}"
        if key in self._logged_errors:
            return
        if len(self._logged_errors) < LOGGED_ERRORS_MAX:
            self._logged_errors.add(key)
        log.error("ledger writer, %s (counted from now on, not logged again)", key, exc_info=exc)

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        now = time.monotonic()
        self._last_rejects = self._last_retry = self._last_names = now
        while True:
            try:
                if self._pass():
                    return
            except Exception as exc:  # the thread must outlive any one failure
                self._internal_error("the writer loop", exc)
                if self._stopping and not self._queue:
                    return
                time.sleep(0.05)

    def _pass(self) -> bool:
        """One pass of the writer loop; True once it is stopping and everything is written."""
        if self._queue or self._stopping:
            pass
        elif time.monotonic() - self._last_work < IDLE_AFTER_S:
            # Busy: look again in a moment. Polling costs a wake-up per ms; waking the
            # thread per share cost a futex per share and a fight for the GIL.
            time.sleep(POLL_S)
        else:
            self._idle = True
            if not self._queue:
                self._wake.wait(0.5)
            self._wake.clear()
            self._idle = False
        now = time.monotonic()
        if not self.db_ok and now - self._last_retry >= self.retry_s:
            self._last_retry = now
            self._try_recover()
        if 0 < len(self._queue) < LINGER_BELOW and not self._stopping:
            # A few shares only: give the next ones a moment to join this commit. A commit
            # per handful of shares costs far more CPU than the 2 ms cost the replies.
            time.sleep(LINGER_S)
        if self._queue:
            self._last_work = time.monotonic()
        while self._queue:
            batch: list[tuple[Record, defer.Deferred[None]]] = []
            while self._queue and len(batch) < self.batch_max:
                batch.append(self._queue.popleft())
            self._moved_at = time.monotonic()
            self._write(batch)
        self._moved_at = time.monotonic()
        if self.db_ok and self.spool.size() and self._replay_step():
            self._wake.set()  # more to load: come straight back after the fresh shares
        if now - self._last_rejects >= self.rejects_every_s:
            self._last_rejects = now
            self._flush_rejects()
        if self.db_ok and now - self._last_names >= 10.0:
            self._last_names = now
            self._refresh_tenants()
        return self._stopping and not self._queue

    def _write(self, batch: list[tuple[Record, defer.Deferred[None]]]) -> None:
        """Commit a batch, or spool it; its Deferreds fire either way (a record that can never
        be stored is quarantined and its Deferred fails). Never raises."""
        records = [r for r, _ in batch]
        base = self.node_id << ID_SHIFT
        for r in records:  # the id is the share's idempotency key from here on
            if type(r) is ShareRecord:
                if not r.id:
                    self._seq += 1
                    r.id = base | self._seq
            elif isinstance(r, BlockRecord) and not r.share_id and r.share is not None:
                r.share_id = r.share.id  # queued after its share, so that id is given
        done = False
        if self.db_ok:
            try:
                try:
                    self._commit(records, replay=False)
                except IntegrityError:
                    # A share already in the ledger (a commit whose answer was lost, then
                    # spooled): write the batch again, skipping what is there.
                    self._commit(records, replay=True)
                self.stats["committed"] += len(records)
                self.stats["batches"] += 1
                done = True
            except SQLAlchemyError as exc:
                self.db_ok = False
                log.error(
                    "ledger database failed (%s); spooling to %s",
                    str(exc).splitlines()[0][:300],
                    self.spool.path,
                )
            except Exception as exc:
                # Not the database: a record it cannot take (a bug upstream). Those are set
                # aside; the others go to the spool, which loads them record by record.
                self._internal_error("a batch failed", exc)
                batch = self._set_aside(batch)
        if not done and not self._spool_batch(batch):
            return
        self.reactor.callFromThread(_fire_all, [d for _, d in batch])

    def _spool_batch(self, batch: list[tuple[Record, defer.Deferred[None]]]) -> bool:
        """Append a batch to the spool; False (its Deferreds failed) if the disk refuses."""
        try:
            try:
                self.spool.append(r.to_json() for r, _ in batch)
            except (TypeError, ValueError, AttributeError) as exc:  # a record, not the disk
                self._internal_error("spooling a batch", exc)
                batch[:] = self._set_aside(batch)
                self.spool.append(r.to_json() for r, _ in batch)
        except Exception as exc:
            log.critical("cannot spool %d records: %s", len(batch), exc)
            error = NotRecorded(f"database and spool both failed: {exc}")
            self.reactor.callFromThread(_fail_all, [d for _, d in batch], error)
            return False
        self.stats["spooled"] += len(batch)
        return True

    def _set_aside(
        self, batch: list[tuple[Record, defer.Deferred[None]]]
    ) -> list[tuple[Record, defer.Deferred[None]]]:
        """Quarantine the records of a batch that fail their own checks (their Deferreds
        fail: the miner is not told they were recorded); the rest, to be spooled."""
        keep = []
        for record, d in batch:
            try:
                record.check()
                keep.append((record, d))
            except RecordError as exc:
                self._quarantine([_as_json(record)], f"not stored: {exc}")
                self.reactor.callFromThread(_fail_all, [d], NotRecorded(str(exc)))
        return keep

    def _commit(self, records: list[Record], replay: bool) -> None:
        """One transaction on the writer's own connection, kept open between batches (a
        checkout and a return per commit cost more than the commit at a few shares a batch);
        dropped after any failure."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
        try:
            with conn.begin():
                self._insert(conn, records, replay)
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def _try_recover(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return
        log.warning("ledger database answers again; loading the spool in chunks")
        self.db_ok = True

    def _replay_step(self) -> bool:
        """Load one chunk of the spool (idempotent); True while more is left.

        One chunk per pass of the writer loop, after the fresh shares: a long outage's spool
        never holds up the replies to new shares. The file is emptied once all of it is in.
        A line that is not a record, or a record that fails its checks, is quarantined with
        its reason; it never stops the loading (nor the start of the pool).
        """
        items, end = self.spool.read_from(self._spool_offset, max_bytes=self.batch_max * 400)
        records: list[Record] = []
        loaded: list[dict[str, Any]] = []
        for item in items:
            try:
                record = _from_json(item)
            except RecordError as exc:
                self._quarantine([item], f"cannot be loaded: {exc}")
                continue
            if type(record) is ShareRecord and record.id >> ID_SHIFT == self.node_id:
                # never hand this id out again
                self._seq = max(self._seq, record.id & ((1 << ID_SHIFT) - 1))
            records.append(record)
            loaded.append(item)
        try:
            if records:
                with self.engine.begin() as conn:
                    self._insert(conn, records, replay=True)
        except IntegrityError as exc:
            # Not an outage: these rows can never go in. Keep them for a person, move on.
            self._quarantine(loaded, f"the database refuses them: {str(exc).splitlines()[0]}")
        except SQLAlchemyError as exc:
            self.db_ok = False
            log.error("loading the spool failed (%s); will try again", str(exc).splitlines()[0])
            return False
        except Exception as exc:
            self._internal_error("loading the spool", exc)
            self._quarantine(loaded, f"loading failed: {type(exc).__name__}: {exc}")
        self._spool_offset = end
        self.stats["replayed"] += len(records)
        if end < self.spool.size():
            return True
        if self.spool.clear(end):
            if self.stats["replayed"]:
                log.warning("spool loaded: %d records in all", self.stats["replayed"])
            self._spool_offset = 0
            return False
        return True

    def _quarantine(self, items: list[Any], reason: str) -> None:
        """Keep records that cannot be stored, with the reason, for a person (the file is
        JSON lines: {"reason": ..., "record": ...}); a critical log line says where."""
        if not items:
            return
        path = self.spool.path.with_name("ledger-quarantine.jsonl")
        try:
            Spool(path).append({"reason": reason[:500], "record": item} for item in items)
        except (OSError, ValueError) as exc:
            log.critical("cannot write the quarantine %s: %s", path, exc)
        self.stats["quarantined"] += len(items)
        log.critical("%d ledger records moved to %s: %s", len(items), path, reason[:300])

    # --- SQL -------------------------------------------------------------------------------

    def _load_names(self) -> None:
        with self.engine.connect() as conn:
            self.tenants = dict(conn.execute(select(Tenant.name, Tenant.id)).all())
            self.sites = dict(conn.execute(select(Site.name, Site.id)).all())
            self.workers = {
                (tenant_id, name): worker_id
                for worker_id, tenant_id, name in conn.execute(
                    select(Worker.id, Worker.tenant_id, Worker.name)
                ).all()
            }
        if self.on_tenants is not None:
            names = set(self.tenants)
            self.reactor.callFromThread(self.on_tenants, names)

    def _refresh_tenants(self) -> None:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(Tenant.name, Tenant.id, Tenant.active)).all()
        except SQLAlchemyError:
            return
        self.tenants.update({name: tid for name, tid, _ in rows})
        if self.on_tenants is not None:
            active = {name for name, _, is_active in rows if is_active}
            self.reactor.callFromThread(self.on_tenants, active)

    def _ids(self, conn: Any, tenant: str, site: str, worker: str) -> tuple[int, int, int]:
        tenant_id = self.tenants.get(tenant)
        if tenant_id is None:
            tenant_id = conn.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar_one()
            self.tenants[tenant] = tenant_id
        site_id = self.sites.get(site)
        if site_id is None:
            site_id = conn.execute(select(Site.id).where(Site.name == site)).scalar_one()
            self.sites[site] = site_id
        key = (tenant_id, worker)
        worker_id = self.workers.get(key)
        if worker_id is None:
            conn.execute(
                dialect.insert_ignore(self._dialect, Worker.__table__, ["tenant_id", "name"]),
                [{"tenant_id": tenant_id, "name": worker, "created_at": datetime.now(UTC)}],
            )
            worker_id = conn.execute(
                select(Worker.id).where(Worker.tenant_id == tenant_id, Worker.name == worker)
            ).scalar_one()
            self.workers[key] = worker_id
            self._uncommitted.append((conn, key))
        return tenant_id, site_id, worker_id

    def _committed(self, conn: Any) -> None:
        if any(c is conn for c, _ in self._uncommitted):
            self._uncommitted = [(c, key) for c, key in self._uncommitted if c is not conn]

    def _rolled_back(self, conn: Any) -> None:
        """The transaction on `conn` was rolled back: the workers it inserted are gone, and so
        are their ids (PostgreSQL never hands them out again; SQLite gives them to the next new
        worker). Cached, they would fail every later batch on the foreign key, or credit
        another worker."""
        if not any(c is conn for c, _ in self._uncommitted):
            return  # not one of this writer's transactions that inserted workers
        for c, key in self._uncommitted:
            if c is conn:
                self.workers.pop(key, None)
        self._uncommitted = [(c, key) for c, key in self._uncommitted if c is not conn]
        self._id_cache.clear()

    def _insert(self, conn: Any, records: list[Record], replay: bool) -> None:
        shares: list[tuple[Any, ...]] = []
        blocks = []
        node_id = self.node_id
        ids = self._id_cache
        works = self._work_cache
        stamp = self._stamp
        for r in records:
            key = (r.tenant, r.site, r.worker)
            found = ids.get(key)
            if found is None:
                found = ids[key] = self._ids(conn, r.tenant, r.site, r.worker)
            tenant_id, site_id, worker_id = found
            if type(r) is ShareRecord:
                work = works.get(r.difficulty)
                if work is None:
                    work = works[r.difficulty] = work_of(r.difficulty)
                shares.append(
                    (
                        r.id,
                        r.hash,
                        node_id,
                        worker_id,
                        tenant_id,
                        site_id,
                        r.job_id,
                        r.height,
                        r.difficulty,
                        r.share_difficulty,
                        work,
                        r.is_block,
                        stamp(r.time),
                        r.bits,
                    )
                )
            else:
                assert isinstance(r, BlockRecord)
                blocks.append(
                    {
                        "hash": r.hash,
                        "height": r.height,
                        "reward_sat": r.reward_sat,
                        "node_id": node_id,
                        "worker_id": worker_id,
                        "tenant_id": tenant_id,
                        "site_id": site_id,
                        "accepted": r.accepted,
                        "node_answer": r.node_answer,
                        "status": "accepted" if r.accepted else "rejected",
                        "share_id": r.share_id or None,
                        "created_at": datetime.fromtimestamp(r.time, UTC),
                    }
                )
        if shares:
            self._insert_shares(conn, shares, replay)
        if blocks:
            conn.execute(dialect.insert_ignore(self._dialect, Block.__table__, ["hash"]), blocks)

    def _insert_shares(self, conn: Any, rows: list[tuple[Any, ...]], replay: bool) -> None:
        """The hot insert, straight through the driver (tuples, no per-row ORM work):
        SQLite executemany; PostgreSQL COPY, or INSERT ... ON CONFLICT DO NOTHING for a
        replay. Times are naive UTC, as the model's UTCDateTime stores them. A replay's
        shares may reach the ledger after fresher shares of this node (higher ids): they are
        marked `late`, and PPS pays them by that mark rather than by id."""
        cursor = conn.connection.cursor()
        seq = self._seq
        columns = _SHARE_COLUMNS
        if replay:
            columns, rows = f"{columns}, late", [(*r, True) for r in rows]
        try:
            dialect.driver_insert(
                self._dialect, cursor, "shares", columns, rows, "id" if replay else None
            )
            mark = dialect.driver_placeholder(self._dialect)
            cursor.execute(
                f"UPDATE nodes SET share_seq = {mark} WHERE id = {mark} AND share_seq < {mark}",
                (seq, self.node_id, seq),
            )
        except conn.dialect.loaded_dbapi.Error as exc:
            # The driver's own exception (this cursor is not SQLAlchemy's): raise it as
            # SQLAlchemy does (IntegrityError, OperationalError, ...) so that the callers'
            # handling applies (write again as a replay, spool, quarantine) instead of the
            # exception ending the writer thread.
            raise DBAPIError.instance(
                "INSERT INTO shares",
                None,
                exc,
                conn.dialect.loaded_dbapi.Error,
                dialect=conn.dialect,
            ) from exc
        finally:
            cursor.close()

    def _flush_rejects(self) -> None:
        with self._rejects_lock:
            pending, self._rejects = self._rejects, Counter()
        if not pending:
            return
        try:
            with self.engine.begin() as conn:
                for (tenant, worker, site, reason, hour), count in pending.items():
                    _, site_id, worker_id = self._ids(conn, tenant, site, worker)
                    where = (
                        ShareReject.worker_id == worker_id,
                        ShareReject.site_id == site_id,
                        ShareReject.reason == reason,
                        ShareReject.hour == hour,
                    )
                    changed = conn.execute(
                        update(ShareReject).where(*where).values(count=ShareReject.count + count)
                    ).rowcount
                    if not changed:
                        conn.execute(
                            insert(ShareReject),
                            [
                                {
                                    "worker_id": worker_id,
                                    "site_id": site_id,
                                    "reason": reason,
                                    "hour": hour,
                                    "count": count,
                                }
                            ],
                        )
        except SQLAlchemyError as exc:
            log.warning(
                "reject counts not written (%s); kept for the next try",
                str(exc).splitlines()[0][:200],
            )
            with self._rejects_lock:
                self._rejects.update(pending)


def _from_json(item: Any) -> Record:
    """A spool line's record, checked; RecordError for anything else."""
    kind = item.get("t") if isinstance(item, dict) else None
    if kind == "share":
        return ShareRecord.from_json(item)
    if kind == "block":
        return BlockRecord.from_json(item)
    raise RecordError(f"not a share or block record: {str(item)[:200]}")


def _as_json(record: Record) -> Any:
    """A record as the spool and the quarantine keep it, as far as it can be written."""
    try:
        data = record.to_json()
        json.dumps(data, allow_nan=False)
        return data
    except (TypeError, ValueError, AttributeError):
        return {"t": "unwritable", "repr": repr(record)[:2000]}


def _fire_all(deferreds: list[defer.Deferred[None]]) -> None:
    for d in deferreds:
        d.callback(None)


def _fail_all(deferreds: list[defer.Deferred[None]], error: Exception) -> None:
    for d in deferreds:
        d.errback(error)
