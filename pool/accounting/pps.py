"""PPS and FPPS crediting: each accepted share earns its expected value as it comes in.

Where it sits: with `payout.scheme` pps or fpps, the tracker's pass also runs `accrue_pps`,
which credits each tenant, at once and mature, with

    share difficulty / network difficulty at the share's height x subsidy at that height
    (FPPS: x (subsidy + the average fees of the `fpps_fee_window` blocks below that height))

less the fee, summed exactly and floored once per (tenant, site) and batch. A share is only
credited once its height has a block in the main chain (the network difficulty of that height
is then known exactly); later shares wait for the next run. Solo tenants' shares are not
credited (they take the blocks they find).

Which shares are paid, each exactly once, whatever order they reach the ledger in:
- Fresh shares (`shares.late` NULL) reach the ledger in id order: each node's are walked in id
  order past the node's watermark (the last share id of its runs, pps_accruals), one batch
  per transaction with its credits and its pps_accruals row, unique per (node, first share):
  two trackers racing over the same shares cannot both credit them.
- Shares loaded late (the writer's spool after an outage: lower ids than fresh shares already
  committed, `shares.late` true) are walked by that flag, which is set false in the same
  transaction as their credits (a late run, `pps_accruals.late`, does not move the watermark);
  a batch whose flags another transaction changed meanwhile is rolled back and taken again.

Shares must be credited before compaction folds them into hourly rows (which have no height):
`pps_hold` gives the oldest share not yet credited, and compaction keeps it and everything
after, and never folds a share still flagged late (pool/ledger/compaction.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Engine, false, func, insert, select, true, update

from pool.accounting import rounds, schemes
from pool.accounting.chainview import ChainView
from pool.accounting.scheme_registry import PER_ROUND, scheme
from pool.config import PayoutSettings
from pool.ledger.models import Block, Credit, Node, PpsAccrual, Share
from pool.ledger.writer import ID_SHIFT

#: Shares credited in one transaction at most.
BATCH_SHARES = 100_000
#: Times a late batch is taken again after another transaction changed its flags.
LATE_RETRIES = 5


@dataclass
class AccrualReport:
    shares: int = 0
    credited_sat: int = 0
    fee_sat: int = 0
    runs: int = 0


class _Raced(RuntimeError):
    """A late batch's flags changed under it (rolled back; take it again)."""


def _node_range(node_id: int) -> tuple[Any, Any]:
    return Share.id > node_id << ID_SHIFT, Share.id < (node_id + 1) << ID_SHIFT


def _paid_by_blocks(conn: Connection) -> datetime | None:
    """When the newest block that PPLNS or PROP paid was found: shares up to it were paid
    by that scheme, not per share (a pool switched to PPS must not pay them again)."""
    found: datetime | None = conn.execute(
        select(func.max(Block.created_at)).where(Block.scheme.in_(PER_ROUND))
    ).scalar()
    return found


def _last_credited(conn: Connection, node_id: int) -> int:
    """The node's id watermark: the last fresh share PPS has credited, or has to skip: before
    its first run, every share up to the last block that PPLNS or PROP paid (switching a
    pool with history to PPS must not pay those shares a second time)."""
    last = conn.execute(
        select(func.max(PpsAccrual.last_share_id)).where(
            PpsAccrual.node_id == node_id, PpsAccrual.late == false()
        )
    ).scalar()
    if last is not None:
        return int(last)
    paid_until = _paid_by_blocks(conn)
    start = node_id << ID_SHIFT
    if paid_until is None:
        return start
    covered = conn.execute(
        select(func.max(Share.id)).where(*_node_range(node_id), Share.created_at <= paid_until)
    ).scalar()
    return int(covered) if covered is not None else start


def pps_paid_until(conn: Connection) -> datetime | None:
    """The time of the newest share PPS has credited (PPLNS and PROP windows start after it,
    so that a pool switched away from PPS does not pay those shares again)."""
    newest: datetime | None = None
    for (last,) in conn.execute(
        select(func.max(PpsAccrual.last_share_id))
        .where(PpsAccrual.late == false())
        .group_by(PpsAccrual.node_id)
    ):
        when = conn.execute(select(Share.created_at).where(Share.id == last)).scalar()
        if when is not None and (newest is None or when > newest):
            newest = when
    return newest


def _reward_base(chain: ChainView, settings: PayoutSettings, height: int) -> Fraction:
    base = Fraction(chain.subsidy(height))
    paid = scheme(settings.scheme)
    if paid.per_share and paid.includes_tx_fees:  # FPPS
        total, count = chain.average_fees(height, settings.fpps_fee_window)
        if count:
            base += Fraction(total, count)
    return base


@dataclass(frozen=True)
class _Run:
    """One accrual run: where it reads and writes, the chain tip it credits up to, and the
    report it fills."""

    engine: Engine
    chain: ChainView
    settings: PayoutSettings
    tip: int
    report: AccrualReport


def accrue_pps(engine: Engine, chain: ChainView, settings: PayoutSettings) -> AccrualReport:
    """Credit every share not yet credited whose height the chain has reached."""
    run = _Run(engine, chain, settings, chain.tip(), AccrualReport())
    with engine.connect() as conn:
        nodes = list(conn.execute(select(Node.id)).scalars())
    for node_id in nodes:
        while _accrue_node(run, node_id):
            pass
        raced = 0
        while True:
            try:
                if not _accrue_late(run, node_id):
                    break
            except _Raced:
                raced += 1
                if raced > LATE_RETRIES:
                    raise
    return run.report


def _accrue_node(run: _Run, node_id: int) -> bool:
    """One batch of one node's fresh shares, in id order; True if there may be more."""
    with run.engine.begin() as conn:
        last = _last_credited(conn, node_id)
        rows = conn.execute(
            select(Share.id, Share.tenant_id, Share.site_id, Share.height, Share.work)
            .where(Share.id > last, _node_range(node_id)[1], Share.late.is_(None))
            .order_by(Share.id)
            .limit(BATCH_SHARES)
        ).all()
        taken = []
        for row in rows:
            if row.height > run.tip:
                break  # its network difficulty is not final yet: the next run takes it
            taken.append(row)
        if not taken:
            return False
        _credit(run, conn, node_id, taken, False)
    return len(taken) == len(rows) == BATCH_SHARES


def _accrue_late(run: _Run, node_id: int) -> bool:
    """One batch of one node's shares loaded late whose height the chain has reached; their
    flags are cleared in the transaction that credits them. True if there may be more."""
    with run.engine.begin() as conn:
        late = (Share.node_id == node_id, Share.late == true(), Share.height <= run.tip)
        paid_until = _paid_by_blocks(conn)
        if paid_until is not None:  # paid by the PPLNS or PROP block: not per share too
            conn.execute(
                update(Share).where(*late, Share.created_at <= paid_until).values(late=False)
            )
        rows = conn.execute(
            select(Share.id, Share.tenant_id, Share.site_id, Share.height, Share.work)
            .where(*late)
            .order_by(Share.id)
            .limit(BATCH_SHARES)
        ).all()
        if not rows:
            return False
        marked = conn.execute(
            update(Share)
            .where(*late, Share.id >= rows[0].id, Share.id <= rows[-1].id)
            .values(late=False)
        ).rowcount
        if marked != len(rows):
            raise _Raced(f"late shares {rows[0].id}..{rows[-1].id} changed under the run")
        _credit(run, conn, node_id, rows, True)
    return len(rows) == BATCH_SHARES


def _credit(run: _Run, conn: Connection, node_id: int, taken: Sequence[Any], late: bool) -> None:
    """Write the credits of a batch of shares (id, tenant_id, site_id, height, work rows, in
    id order) and its pps_accruals row."""
    chain, settings, report = run.chain, run.settings, run.report
    now = datetime.now(UTC)
    terms = rounds.tenant_terms(conn, settings.fee_ppm)
    work: dict[tuple[int, int], int] = defaultdict(int)
    for row in taken:
        if row.tenant_id not in terms.solo:
            work[(rounds.account(row.tenant_id, row.site_id), row.height)] += row.work
    values: dict[int, Fraction] = defaultdict(Fraction)
    account_work: dict[int, int] = defaultdict(int)
    bases: dict[int, tuple[int, Fraction]] = {}
    for (key, height), w in work.items():
        if height not in bases:
            bases[height] = (chain.bits_at(height), _reward_base(chain, settings, height))
        bits, base = bases[height]
        values[key] += schemes.share_value(w, bits, 1) * base
        account_work[key] += w
    credits = schemes.pps_credits(values, terms.fees_by_account(values))
    accrual_id = conn.execute(
        insert(PpsAccrual).returning(PpsAccrual.id),
        {
            "node_id": node_id,
            "first_share_id": taken[0].id,
            "last_share_id": taken[-1].id,
            "shares": len(taken),
            "work": sum(r.work for r in taken),
            "created_at": now,
            "late": late,
        },
    ).scalar_one()
    if credits:
        conn.execute(
            insert(Credit),
            [
                {
                    "accrual_id": accrual_id,
                    "tenant_id": rounds.account_parts(key)[0],
                    "site_id": rounds.account_parts(key)[1],
                    "kind": settings.scheme,
                    "work": account_work[key],
                    "amount_sat": net,
                    "fee_sat": fee,
                    "status": "mature",
                    "created_at": now,
                    "updated_at": now,
                }
                for key, (net, fee) in credits.items()
            ],
        )
    report.shares += len(taken)
    report.credited_sat += sum(net for net, _ in credits.values())
    report.fee_sat += sum(fee for _, fee in credits.values())
    report.runs += 1


def pps_hold(conn: Connection) -> datetime | None:
    """The time of the oldest share that PPS crediting has not taken yet (None: none waits):
    past a node's watermark, or loaded late and not credited."""
    oldest: datetime | None = None
    for node_id in conn.execute(select(Node.id)).scalars():
        last = _last_credited(conn, node_id)
        for waiting in (
            (Share.id > last, _node_range(node_id)[1], Share.late.is_(None)),
            (Share.node_id == node_id, Share.late == true()),
        ):
            first = conn.execute(select(func.min(Share.created_at)).where(*waiting)).scalar()
            if first is not None and (oldest is None or first < oldest):
                oldest = first
    return oldest
