"""The block tracker: follows every block the pool found until it is final, and credits it.

Where it sits: after the share path has recorded a block (status accepted or rejected, as the
node answered), the tracker asks the node where that block stands and moves it on:

    accepted/rejected --in the main chain--> immature (credits written, status immature)
    immature --confirmations >= maturity--> mature (credits mature: payable)
    accepted/immature --another block at its height--> orphaned (credits void)
    orphaned --back in the main chain (a reorg)--> immature (the same credits, immature again)

A rejected block is looked at too: a node that answered "duplicate", or a submit whose answer
was lost, may have the block after all. Blocks stop being looked at once mature, or once
orphaned/rejected and `maturity` blocks deep. A mature block is final: a deeper reorg is
logged as an error for the operator, and no credit is taken back (no balance goes negative).

Each block moves in its own transaction, and only from the status it was read in (UPDATE ...
WHERE status = old): two trackers (two stratum nodes on one database) never credit a block
twice; the one that loses rolls back. The split is computed once, when the block first
enters the main chain, from the shares then in the ledger, and stays with the block.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.orm import Session

from pool.accounting import rounds, schemes
from pool.accounting.chainview import ChainView
from pool.accounting.pps import pps_paid_until
from pool.accounting.scheme_registry import scheme
from pool.alerts import store as alert_events
from pool.alerts.store import NewEvent
from pool.config import PayoutSettings
from pool.ledger.models import Block, Credit

log = logging.getLogger(__name__)

#: Statuses the tracker still looks at (mature is final).
OPEN_STATUSES = ("accepted", "rejected", "immature", "orphaned")


@dataclass
class TrackerReport:
    """What one pass did: block hash -> its new status, and the tip it saw."""

    tip: int = 0
    moved: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = Counter(self.moved.values())
        moved = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no change"
        return f"tip {self.tip}: {moved}" + (f"; {len(self.errors)} errors" if self.errors else "")


def _split(
    conn: Connection, block: Block, settings: PayoutSettings, bits: int
) -> list[dict[str, object]]:
    """The credit rows of a block entering the main chain (amounts add up to its reward)."""
    terms = rounds.tenant_terms(conn, settings.fee_ppm)
    reward = block.reward_sat
    finder = block.tenant_id
    paid = scheme(settings.scheme)
    if paid.solo or finder in terms.solo:
        kind = "solo"
        key = rounds.account(finder, block.site_id)
        splits = schemes.solo_split(reward, key, terms.fee_ppm(finder, block.site_id))
    elif paid.per_share:
        # The pool paid for these shares as they came in: the block is the pool's.
        return [
            {
                "tenant_id": None,
                "site_id": block.site_id,
                "kind": "pool",
                "work": 0,
                "amount_sat": 0,
                "fee_sat": reward,
            }
        ]
    else:
        kind = settings.scheme
        paid_per_share = pps_paid_until(conn)  # a pool that was PPS before: not again
        if paid.round_window_is_shares:  # PPLNS
            window = schemes.pplns_window_work(Fraction(settings.pplns_n), bits)
            weights = rounds.pplns_weights(
                conn, block.created_at, window, terms.solo, paid_per_share, bits
            ).weights
        else:
            since = rounds.previous_block_time(conn, block)
            if paid_per_share is not None and (since is None or paid_per_share > since):
                since = paid_per_share
            weights = rounds.prop_weights(conn, block.created_at, since, terms.solo)
        if not weights:
            raise schemes.SchemeError(f"block {block.hash}: no shares to split it over")
        splits = schemes.split_reward(reward, weights, terms.fees_by_account(weights))
    return [
        {
            "tenant_id": rounds.account_parts(s.tenant_id)[0],
            "site_id": rounds.account_parts(s.tenant_id)[1],
            "kind": kind,
            "work": int(s.work),
            "amount_sat": s.amount_sat,
            "fee_sat": s.fee_sat,
        }
        for s in splits
    ]


def _move(conn: Connection, block: Block, status: str, now: datetime, **values: object) -> bool:
    """Move the block from the status it was read in; False if someone else moved it."""
    changed = conn.execute(
        update(Block)
        .where(Block.id == block.id, Block.status == block.status)
        .values(status=status, checked_at=now, **values)
    )
    return changed.rowcount == 1


def _set_credits(
    conn: Connection, block_id: int, old: tuple[str, ...], new: str, now: datetime
) -> None:
    conn.execute(
        update(Credit)
        .where(Credit.block_id == block_id, Credit.status.in_(old))
        .values(status=new, updated_at=now)
    )


def _step(
    engine: Engine, chain: ChainView, block: Block, tip: int, settings: PayoutSettings
) -> str | None:
    """Look at one block; returns its new status if it moved."""
    now = datetime.now(UTC)
    main = chain.hash_at(block.height) if block.height <= tip else None
    in_main = main == block.hash
    with engine.begin() as conn:
        if in_main:
            confirmations = tip - block.height + 1
            target = "mature" if confirmations >= settings.maturity else "immature"
            if block.status == "immature" and target == "immature":
                conn.execute(
                    update(Block)
                    .where(Block.id == block.id)
                    .values(confirmations=confirmations, checked_at=now)
                )
                return None
            credited = conn.execute(
                select(Credit.id).where(Credit.block_id == block.id).limit(1)
            ).first()
            values: dict[str, object] = {"confirmations": confirmations}
            if credited is None:
                bits = chain.bits_of(block.hash)
                rows = _split(conn, block, settings, bits)
                status = "mature" if target == "mature" else "immature"
                conn.execute(
                    insert(Credit),
                    [
                        {
                            **r,
                            "block_id": block.id,
                            "status": status,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in rows
                    ],
                )
                values.update(bits=bits, credited_at=now, scheme=str(rows[0]["kind"]))
            else:
                _set_credits(conn, block.id, ("immature", "void"), target, now)
            if target == "mature":
                values["matured_at"] = now
            if not _move(conn, block, target, now, **values):
                conn.rollback()
                return None
            return target
        # Not in the main chain (yet, or any more).
        if block.height > tip or block.status == "rejected":
            if block.status == "rejected":
                conn.execute(update(Block).where(Block.id == block.id).values(checked_at=now))
            return None
        if block.status == "orphaned":
            return None
        _set_credits(conn, block.id, ("immature",), "void", now)
        if not _move(conn, block, "orphaned", now, confirmations=0):
            conn.rollback()
            return None
        _tell_orphaned(conn, block)
        return "orphaned"


def _tell_orphaned(conn: Connection, block: Block) -> None:
    """An event per tenant whose credits the orphan voided (the operator's own if none), in
    the transaction that voids them: told once, whichever process moved the block."""
    rows = conn.execute(
        select(Credit.tenant_id, func.sum(Credit.amount_sat))
        .where(Credit.block_id == block.id, Credit.status == "void", Credit.tenant_id.is_not(None))
        .group_by(Credit.tenant_id)
    ).all()
    voided: list[tuple[int | None, int]] = [(tid, int(amount or 0)) for tid, amount in rows]
    base = {"height": block.height, "reward_sat": block.reward_sat}
    for tenant_id, amount in voided or [(None, 0)]:
        event = NewEvent("block_orphaned", block.hash, {**base, "voided_sat": amount})
        alert_events.record(conn, event, "block tracker", tenant_id=tenant_id)


def track_blocks(engine: Engine, chain: ChainView, settings: PayoutSettings) -> TrackerReport:
    """One pass over the blocks that are not final yet (blocking: run it off the reactor)."""
    report = TrackerReport(tip=chain.tip())
    horizon = report.tip - settings.maturity
    with Session(engine) as session:
        blocks = session.scalars(
            select(Block).where(Block.status.in_(OPEN_STATUSES)).order_by(Block.height, Block.id)
        ).all()
        session.expunge_all()
    for block in blocks:
        if block.status in ("orphaned", "rejected") and block.height < horizon:
            continue  # final: buried deeper than any reorg the pool waits for
        try:
            moved = _step(engine, chain, block, report.tip, settings)
        except schemes.SchemeError as exc:
            report.errors.append(str(exc))
            log.error("block tracker: %s", exc)
            continue
        if moved is not None:
            report.moved[block.hash] = moved
            log.info(
                "block %s at height %d: %s -> %s", block.hash, block.height, block.status, moved
            )
    _check_mature(engine, chain, report)
    return report


def _check_mature(engine: Engine, chain: ChainView, report: TrackerReport) -> None:
    """A mature block that left the main chain: nothing is taken back, but the operator must
    know (its coinbase is gone from the wallet)."""
    with engine.connect() as conn:
        recent = conn.execute(
            select(Block.hash, Block.height)
            .where(Block.status == "mature")
            .order_by(Block.height.desc())
            .limit(10)
        ).all()
    for block_hash, height in recent:
        if height <= report.tip and chain.hash_at(height) != block_hash:
            message = (
                f"mature block {block_hash} at height {height} is no longer in the main chain; "
                "its credits stay (balances never go negative): check the wallet"
            )
            report.errors.append(message)
            log.error("block tracker: %s", message)
