"""Share compaction: old accepted shares become per-worker, per-hour aggregates.

Where it sits in the pipeline: the stratum server accepts a share, the ledger writer
(pool/ledger/writer.py) commits it as one row of `shares`, and payouts read the recent shares.
Once a share is older than anything payouts still need, one row per share is only weight:
`compact` rolls those rows up into `share_hours` (one row per worker, site, UTC hour and
network target -- the shares' `bits`, which PPLNS scores by; a difficulty change inside an hour
gives it two rows -- with the number of shares, their summed work and the best share
difficulty) and deletes them.
Accounting reads the combined view, `shares` plus `share_hours` (`work_totals`), so totals are
the same before and after compaction; work is an integer (difficulty x 2^16), so the
sums are exact.

What payouts still need: every share newer than a `keep` duration (the CLI's `--keep-hours`,
default `DEFAULT_KEEP`, 48 hours) stays as it is; `cutoff` turns `keep` into the instant before
which shares are compacted, floored to a whole UTC hour so that an hour is compacted whole (a
spool replayed late can still add old shares, and a later run adds them to their hour). PPLNS
windows and PROP rounds read compacted hours too (pool/accounting/rounds.py), so `keep` need
not cover them; under PPS/FPPS the CLI moves the cutoff back to the hour of the oldest share
not yet credited (pool/accounting/pps.py: `pps_hold`), since compacted hours keep no height,
and asks for `keep_late`: a share loaded late from a spool and not yet paid per share is never
compacted, however old (such a share can arrive after the hold was computed).
Shares at or after the cutoff are never compacted.

Batches: each batch takes the next at most `batch_rows` shares created before the cutoff,
lowest ids first (the id range [lo, hi] of those shares, restricted to created_at < cutoff),
and in ONE transaction aggregates them in SQL (GROUP BY worker, tenant, site, the hour floor
of created_at and bits), adds the aggregates to `share_hours` (insert, or on conflict shares += n,
work += w, best = max(best, b)), deletes exactly those shares and commits. A share written
meanwhile (a spool replayed, another node) is never counted without being deleted nor deleted
without being counted: SQLite takes the write lock before reading (BEGIN IMMEDIATE), and
checks aggregated == selected == deleted before the commit; PostgreSQL aggregates the rows its
DELETE ... RETURNING removed, in the same statement. An interruption (an exception, a kill,
the database going away) rolls back the batch in progress entirely, so a rerun resumes from
where the last commit left and the sums stay exact. Two compactions at the same time do not
double-count either: on SQLite the second waits for the write lock, on PostgreSQL the second
one's DELETE waits for the first to commit and then finds those shares gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from pool.errors import OperationFailed
from pool.ledger import dialect
from pool.ledger.models import Share, ShareHour
from pool.units import floor_hour

#: How long shares stay as they are by default (see the module docstring).
DEFAULT_KEEP = timedelta(hours=48)

#: Shares per batch (one transaction) by default.
DEFAULT_BATCH_ROWS = 50_000

#: Times a batch is tried again after a deadlock or serialization failure (PostgreSQL).
SERIALIZATION_RETRIES = 5

#: (worker_id, site_id, hour) -> (shares, work, best share difficulty)
Totals = dict[tuple[int, int, datetime], tuple[int, int, float]]


class CompactionError(RuntimeError, OperationFailed):
    """A batch whose counts did not agree; it was rolled back."""


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What a compaction run did (so far, when given to a progress callback).

    rows: shares compacted (and deleted); batches: batches committed; hours_touched: distinct
    `share_hours` rows (worker, site, hour, bits) created or added to; seconds: wall time.
    """

    rows: int
    batches: int
    hours_touched: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[CompactionResult], None]


def cutoff(keep: timedelta = DEFAULT_KEEP, now: datetime | None = None) -> datetime:
    """The instant before which shares are compacted: `now - keep`, floored to the UTC hour."""
    if keep <= timedelta(0):
        raise ValueError("keep must be positive")
    return floor_hour((now or datetime.now(UTC)) - keep)


def hour_of(conn_or_engine: Connection | Engine, column: Any) -> ColumnElement[datetime]:
    """SQL for the UTC hour floor of a timestamp column (stored as naive UTC), typed so that it
    reads back as an aware UTC datetime (pool/ledger/dialect.py: hour_floor)."""
    return dialect.hour_floor(conn_or_engine, column)


def _upsert(db: str) -> Any:
    """INSERT into share_hours adding to an existing (worker, site, hour, bits) row."""
    table: Any = ShareHour.__table__
    return dialect.upsert(
        db,
        table,
        ["worker_id", "site_id", "hour", "bits"],
        lambda new: {
            "shares": table.c.shares + new.shares,
            "work": table.c.work + new.work,
            "best_share_difficulty": dialect.greatest(
                db, table.c.best_share_difficulty, new.best_share_difficulty
            ),
        },
    )


def _check_args(older_than: datetime, batch_rows: int, max_batches: int | None) -> None:
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware")
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    if max_batches is not None and max_batches < 1:
        raise ValueError("max_batches must be at least 1 (or None: until done)")


#: (worker_id, site_id, hour, bits) -> [tenant_id, shares, work, best]
Groups = dict[tuple[int, int, datetime, int], list[Any]]


def _eligible(older_than: datetime, keep_late: bool) -> tuple[Any, ...]:
    """The shares a batch may take: created before `older_than`, and (keep_late) not loaded
    late and still unpaid per share (PPS pays them by their height, which hours lose)."""
    table: Any = Share.__table__
    cutoff = (table.c.created_at < older_than,)
    return (*cutoff, table.c.late.is_not(True)) if keep_late else cutoff


def _pick(conn: Connection, eligible: tuple[Any, ...], batch_rows: int) -> tuple[int, int, int]:
    """(lo, hi, n): the id range and number of the next at most `batch_rows` eligible shares,
    lowest ids first; n == 0 when there are none."""
    picked = select(Share.id).where(*eligible).order_by(Share.id).limit(batch_rows).subquery()
    lo, hi, n = conn.execute(
        select(func.min(picked.c.id), func.max(picked.c.id), func.count())
    ).one()
    return lo or 0, hi or 0, int(n)


def _aggregate(conn: Connection, source: Any, where: tuple[Any, ...] = ()) -> Groups:
    """Shares, work and best share per (worker, site, hour, network target) of the rows of
    `source` (the shares table or a CTE with its columns)."""
    c = source.c
    hour = hour_of(conn, c.created_at)
    rows = conn.execute(
        select(
            c.worker_id,
            c.tenant_id,
            c.site_id,
            hour,
            c.bits,
            func.count(),
            func.sum(c.work),
            func.max(c.share_difficulty),
        )
        .where(*where)
        .group_by(c.worker_id, c.tenant_id, c.site_id, hour, c.bits)
    ).all()
    groups: Groups = {}
    for worker_id, tenant_id, site_id, at, bits, count, work, best in rows:
        key = (worker_id, site_id, at, int(bits))
        group = groups.get(key)
        if group is None:
            groups[key] = [tenant_id, int(count), int(work), float(best)]
        else:  # the same worker under two tenant ids: still one row per key
            group[1] += int(count)
            group[2] += int(work)
            group[3] = max(group[3], float(best))
    return groups


def _add_to_hours(conn: Connection, groups: Groups) -> None:
    """Add the aggregates to share_hours (in key order: concurrent writers lock rows in the
    same order)."""
    if not groups:
        return
    conn.execute(
        _upsert(conn.dialect.name),
        [
            {
                "worker_id": worker_id,
                "tenant_id": tenant_id,
                "site_id": site_id,
                "hour": at,
                "bits": bits,
                "shares": count,
                "work": work,
                "best_share_difficulty": best,
            }
            for (worker_id, site_id, at, bits), (tenant_id, count, work, best) in sorted(
                groups.items(), key=lambda item: item[0]
            )
        ],
    )


def _batch_sqlite(
    conn: Connection, eligible: tuple[Any, ...], batch_rows: int
) -> tuple[int, Groups]:
    # Take the write lock first, so that no share is written between the reads below and
    # the delete.
    dialect.begin_write(conn)
    lo, hi, selected = _pick(conn, eligible, batch_rows)
    if not selected:
        return 0, {}
    table: Any = Share.__table__
    in_batch = (table.c.id >= lo, table.c.id <= hi, *eligible)
    groups = _aggregate(conn, table, in_batch)
    aggregated = sum(g[1] for g in groups.values())
    if aggregated != selected:
        raise CompactionError(f"batch {lo}..{hi}: selected {selected} shares, grouped {aggregated}")
    _add_to_hours(conn, groups)
    deleted = conn.execute(delete(table).where(*in_batch)).rowcount
    if deleted != selected:
        raise CompactionError(f"batch {lo}..{hi}: selected {selected} shares, deleted {deleted}")
    return selected, groups


def _batch_postgresql(
    conn: Connection, eligible: tuple[Any, ...], batch_rows: int
) -> tuple[int, Groups]:
    lo, hi, selected = _pick(conn, eligible, batch_rows)
    if not selected:
        return 0, {}
    # One statement deletes the batch and aggregates exactly the rows it deleted: a share
    # written meanwhile, or taken by another compaction first, is in both or in neither.
    gone = (
        delete(Share)
        .where(Share.id >= lo, Share.id <= hi, *eligible)
        .returning(
            Share.worker_id,
            Share.tenant_id,
            Share.site_id,
            Share.created_at,
            Share.work,
            Share.share_difficulty,
            Share.bits,
        )
        .cte("gone")
    )
    groups = _aggregate(conn, gone)
    _add_to_hours(conn, groups)
    return selected, groups


def _serialization_failure(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")


def compact(
    engine: Engine,
    older_than: datetime,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    max_batches: int | None = None,
    progress: Progress | None = None,
    keep_late: bool = False,
) -> CompactionResult:
    """Roll the shares created before `older_than` into `share_hours`, a batch of at most
    `batch_rows` shares per transaction, until none is left (or `max_batches` batches).
    `keep_late` (under PPS/FPPS): shares loaded late and not yet paid per share stay, however
    old (a spool loaded after the caller computed the PPS hold brings such shares).

    `progress` is called with the totals so far after each committed batch; an exception from
    it (or from anywhere) stops the run, and what was committed stays committed and exact.
    """
    _check_args(older_than, batch_rows, max_batches)
    batch = dialect.choose(engine, sqlite=_batch_sqlite, postgresql=_batch_postgresql)
    eligible = _eligible(older_than, keep_late)
    started = time.monotonic()
    rows = batches = 0
    touched: set[tuple[int, int, datetime, int]] = set()
    while max_batches is None or batches < max_batches:
        for attempt in range(SERIALIZATION_RETRIES + 1):
            try:
                with engine.begin() as conn:
                    selected, groups = batch(conn, eligible, batch_rows)
                break
            except OperationalError as exc:
                # PostgreSQL: a deadlock with another compaction; the batch was rolled back
                if attempt == SERIALIZATION_RETRIES or not _serialization_failure(exc):
                    raise
        if not selected:
            break
        if not groups:  # another compaction took these shares first
            continue
        rows += sum(g[1] for g in groups.values())
        batches += 1
        touched.update(groups)
        if progress is not None:
            progress(CompactionResult(rows, batches, len(touched), time.monotonic() - started))
    return CompactionResult(rows, batches, len(touched), time.monotonic() - started)


def _merge(totals: Totals, rows: Iterable[Any]) -> None:
    for worker_id, site_id, at, count, work, best in rows:
        key = (worker_id, site_id, at)
        old = totals.get(key)
        count, work, best = int(count), int(work), float(best)
        if old is not None:
            count, work, best = old[0] + count, old[1] + work, max(old[2], best)
        totals[key] = (count, work, best)


def work_totals(engine: Engine) -> Totals:
    """Shares, work and best share difficulty per (worker_id, site_id, UTC hour), over the
    combined view: the shares not compacted yet plus the compacted `share_hours`."""
    with engine.connect() as conn:
        hour = hour_of(conn, Share.created_at)
        totals: Totals = {}
        _merge(
            totals,
            conn.execute(
                select(
                    Share.worker_id,
                    Share.site_id,
                    hour,
                    func.count(),
                    func.sum(Share.work),
                    func.max(Share.share_difficulty),
                ).group_by(Share.worker_id, Share.site_id, hour)
            ),
        )
        _merge(
            totals,
            conn.execute(
                select(
                    ShareHour.worker_id,
                    ShareHour.site_id,
                    ShareHour.hour,
                    ShareHour.shares,
                    ShareHour.work,
                    ShareHour.best_share_difficulty,
                )
            ),
        )
    return totals


def hold_uncredited(
    engine: Engine,
    older_than: datetime,
    oldest_uncredited: Callable[[Connection], datetime | None],
) -> datetime:
    """The cutoff for `compact` that keeps shares a per-share scheme has not credited yet.

    PPS credits shares by their height, which compacted hours do not keep: the shares from the
    hour of the oldest one not credited yet (`oldest_uncredited`, e.g.
    pool.accounting.pps.pps_hold) stay as they are. Returns `older_than` or that hour, the
    earlier."""
    with engine.connect() as conn:
        hold = oldest_uncredited(conn)
    if hold is None:
        return older_than
    hour = hold.replace(minute=0, second=0, microsecond=0)
    return hour if hour < older_than else older_than
