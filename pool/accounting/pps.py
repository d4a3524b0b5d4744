"""PPS and FPPS crediting: each accepted share earns its expected value as it comes in.

Where it sits: with `payout.scheme` pps or fpps, the tracker's pass also runs `accrue_pps`,
which walks every node's shares in id order past the last run (pps_accruals remembers where
each node's runs ended) and credits each tenant, at once and mature, with

    share difficulty / network difficulty at the share's height x subsidy at that height
    (FPPS: x (subsidy + the average fees of the `fpps_fee_window` blocks below that height))

less the fee, summed exactly and floored once per (tenant, site) and run. A share is only
credited once its height has a block in the main chain (the network difficulty of that height
is then known exactly); later shares wait for the next run. Solo tenants' shares are not
credited (they take the blocks they find). One run's credits and its pps_accruals row commit
together, and that row is unique per (node, first share): two trackers racing over the same
shares cannot both credit them.

Shares must be credited before compaction folds them into hourly rows (which have no height):
`pps_hold` gives the oldest share not yet credited, and compaction keeps it and everything
after.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy import Connection, Engine, func, insert, select

from pool.accounting import rounds, schemes
from pool.accounting.chainview import ChainView
from pool.config import PayoutSettings
from pool.ledger.models import Block, Credit, Node, PpsAccrual, Share
from pool.ledger.writer import ID_SHIFT

#: Shares credited in one transaction at most.
BATCH_SHARES = 100_000


@dataclass
class AccrualReport:
    shares: int = 0
    credited_sat: int = 0
    fee_sat: int = 0
    runs: int = 0


def _last_credited(conn: Connection, node_id: int) -> int:
    """The id of the node's last share PPS has credited, or has to skip: before its first
    run, every share up to the last block that PPLNS or PROP paid (switching a pool with
    history to PPS must not pay those shares a second time)."""
    last = conn.execute(
        select(func.max(PpsAccrual.last_share_id)).where(PpsAccrual.node_id == node_id)
    ).scalar()
    if last is not None:
        return int(last)
    paid_until = conn.execute(
        select(func.max(Block.created_at)).where(Block.scheme.in_(("pplns", "prop")))
    ).scalar()
    start = node_id << ID_SHIFT
    if paid_until is None:
        return start
    covered = conn.execute(
        select(func.max(Share.id)).where(
            Share.id > start, Share.id < (node_id + 1) << ID_SHIFT, Share.created_at <= paid_until
        )
    ).scalar()
    return int(covered) if covered is not None else start


def pps_paid_until(conn: Connection) -> datetime | None:
    """The time of the newest share PPS has credited (PPLNS and PROP windows start after it,
    so that a pool switched away from PPS does not pay those shares again)."""
    newest: datetime | None = None
    for (last,) in conn.execute(
        select(func.max(PpsAccrual.last_share_id)).group_by(PpsAccrual.node_id)
    ):
        when = conn.execute(select(Share.created_at).where(Share.id == last)).scalar()
        if when is not None and (newest is None or when > newest):
            newest = when
    return newest


def _reward_base(chain: ChainView, settings: PayoutSettings, height: int) -> Fraction:
    base = Fraction(chain.subsidy(height))
    if settings.scheme == "fpps":
        total, count = chain.average_fees(height, settings.fpps_fee_window)
        if count:
            base += Fraction(total, count)
    return base


def accrue_pps(engine: Engine, chain: ChainView, settings: PayoutSettings) -> AccrualReport:
    """Credit every share not yet credited whose height the chain has reached."""
    report = AccrualReport()
    tip = chain.tip()
    with engine.connect() as conn:
        nodes = list(conn.execute(select(Node.id)).scalars())
    for node_id in nodes:
        while _accrue_node(engine, chain, settings, node_id, tip, report):
            pass
    return report


def _accrue_node(
    engine: Engine,
    chain: ChainView,
    settings: PayoutSettings,
    node_id: int,
    tip: int,
    report: AccrualReport,
) -> bool:
    """One batch of one node's shares; True if there may be more."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        last = _last_credited(conn, node_id)
        rows = conn.execute(
            select(Share.id, Share.tenant_id, Share.site_id, Share.height, Share.work)
            .where(Share.id > last, Share.id < (node_id + 1) << ID_SHIFT)
            .order_by(Share.id)
            .limit(BATCH_SHARES)
        ).all()
        taken = []
        for row in rows:
            if row.height > tip:
                break  # its network difficulty is not final yet: the next run takes it
            taken.append(row)
        if not taken:
            return False
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
    return len(taken) == len(rows) == BATCH_SHARES


def pps_hold(conn: Connection) -> datetime | None:
    """The time of the oldest share that PPS crediting has not taken yet (None: none waits)."""
    oldest: datetime | None = None
    for node_id in conn.execute(select(Node.id)).scalars():
        last = _last_credited(conn, node_id)
        first = conn.execute(
            select(func.min(Share.created_at)).where(
                Share.id > last, Share.id < (node_id + 1) << ID_SHIFT
            )
        ).scalar()
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return oldest
