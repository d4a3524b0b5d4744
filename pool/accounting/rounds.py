"""The shares a found block's reward is split over, read from the share ledger.

Where it sits: the block tracker calls `block_split` once, when a block first shows up in the
main chain; the arithmetic is pool/accounting/schemes.py's. Shares are read newest first
(created_at, then id, descending) from `shares`, then from the compacted `share_hours` (one
step per hour, newest first; an hour counts if it starts before the block) where the window
reaches further back than the raw shares. In a PPLNS window each share's (and hourly row's)
work is scored by the network difficulty it was mined at (its `bits`; 0, not known: the
block's), in units of the block's difficulty (schemes.score_scale).
Shares of solo tenants never count in anyone else's split. Weights are keyed by account
(`account(tenant, site)`): a tenant's credit is split by the site its shares came from, and
each part pays the fee of the tenant's contract at that site.

PROP's round is the shares after the previous block the pool found (any block the node
accepted, orphaned or not: an orphan ends its round too) up to and including this block's
share; a compacted hour belongs to the round in which the hour starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import Connection, func, select

from pool.accounting import schemes
from pool.ledger.models import Block, Contract, Share, ShareHour, Tenant

#: Rows fetched from the database at a time while walking a window.
FETCH_ROWS = 10_000


def account(tenant_id: int, site_id: int) -> int:
    """The key a (tenant, site) pair is split by: credits are per tenant and per site, and
    keys order as the pairs do (tenant, then site: the tie-break of a largest remainder)."""
    return tenant_id << 32 | site_id


def account_parts(key: int) -> tuple[int, int]:
    """(tenant_id, site_id) of an account key."""
    return key >> 32, key & 0xFFFFFFFF


@dataclass(frozen=True)
class TenantTerms:
    """What a split needs to know of the tenants: the fee of each (tenant, site) (its contract
    there, else the tenant's override, else the pool's) and who mines solo."""

    default_fee_ppm: int
    tenant_fee_ppm: dict[int, int | None]
    contract_fee_ppm: dict[tuple[int, int], int]
    solo: frozenset[int]

    def fee_ppm(self, tenant_id: int, site_id: int) -> int:
        contract = self.contract_fee_ppm.get((tenant_id, site_id))
        if contract is not None:
            return contract
        tenant = self.tenant_fee_ppm.get(tenant_id)
        return self.default_fee_ppm if tenant is None else tenant

    def fees_by_account(self, keys: Iterable[int]) -> dict[int, int]:
        return {key: self.fee_ppm(*account_parts(key)) for key in keys}


def tenant_terms(conn: Connection, default_fee_ppm: int) -> TenantTerms:
    fees: dict[int, int | None] = {}
    solo: set[int] = set()
    for tenant_id, fee_ppm, is_solo in conn.execute(select(Tenant.id, Tenant.fee_ppm, Tenant.solo)):
        fees[tenant_id] = fee_ppm
        if is_solo:
            solo.add(tenant_id)
    contracts: dict[tuple[int, int], int] = {}
    for tenant_id, site_id, contract_fee in conn.execute(
        select(Contract.tenant_id, Contract.site_id, Contract.fee_ppm)
    ):
        if contract_fee is not None:
            contracts[(tenant_id, site_id)] = contract_fee
    return TenantTerms(default_fee_ppm, fees, contracts, frozenset(solo))


Step = list[tuple[int, int | Fraction]]


class _Scores:
    """score_scale per share bits, for one block (a window holds a handful of targets)."""

    def __init__(self, block_bits: int | None) -> None:
        self.block_bits = block_bits
        self.scales: dict[int, Fraction | int] = {}

    def __call__(self, work: int, bits: int) -> int | Fraction:
        if self.block_bits is None:  # PROP: work as it is
            return work
        scale = self.scales.get(bits)
        if scale is None:
            scale = self.scales[bits] = schemes.score_scale(bits, self.block_bits)
        return work if scale == 1 else work * scale


def _raw_steps(
    conn: Connection, until: datetime, since: datetime | None, solo: frozenset[int], score: _Scores
) -> Iterator[Step]:
    query = (
        select(Share.tenant_id, Share.site_id, Share.work, Share.bits)
        .where(Share.created_at <= until)
        .order_by(Share.created_at.desc(), Share.id.desc())
    )
    if since is not None:
        query = query.where(Share.created_at > since)
    if solo:
        query = query.where(Share.tenant_id.not_in(solo))
    # Streamed (a server-side cursor on PostgreSQL), for this statement only.
    result = conn.execute(query, execution_options={"stream_results": True})
    try:
        while rows := result.fetchmany(FETCH_ROWS):
            for tenant, site, work, bits in rows:
                yield [(account(tenant, site), score(work, bits))]
    finally:
        result.close()


def _hour_steps(
    conn: Connection, until: datetime, since: datetime | None, solo: frozenset[int], score: _Scores
) -> Iterator[Step]:
    query = (
        select(
            ShareHour.hour,
            ShareHour.tenant_id,
            ShareHour.site_id,
            ShareHour.bits,
            func.sum(ShareHour.work),
        )
        .where(ShareHour.hour < until)
        .group_by(ShareHour.hour, ShareHour.tenant_id, ShareHour.site_id, ShareHour.bits)
        .order_by(ShareHour.hour.desc(), ShareHour.tenant_id, ShareHour.site_id, ShareHour.bits)
    )
    if since is not None:
        query = query.where(ShareHour.hour >= since)
    if solo:
        query = query.where(ShareHour.tenant_id.not_in(solo))
    step: Step = []
    current = None
    for hour, tenant, site, bits, work in conn.execute(query):
        if hour != current and step:
            yield step
            step = []
        current = hour
        step.append((account(tenant, site), score(int(work), bits)))
    if step:
        yield step


def pplns_weights(
    conn: Connection,
    until: datetime,
    window: int,
    solo: frozenset[int],
    since: datetime | None = None,
    block_bits: int | None = None,
) -> schemes.WindowWeights:
    """The scored work of each (tenant, site) account in the PPLNS window that ends with the
    share at `until` (and goes back no further than `since`: shares before it were paid some
    other way), in work units of the block's difficulty (`block_bits`; None: unscored)."""
    score = _Scores(block_bits)

    def steps() -> Iterator[Step]:
        yield from _raw_steps(conn, until, since, solo, score)
        yield from _hour_steps(conn, until, since, solo, score)

    return schemes.pplns_weights(steps(), window)


def previous_block_time(conn: Connection, block: Block) -> datetime | None:
    """When the pool last found a block (that the node took) before this one."""
    return conn.execute(
        select(func.max(Block.created_at)).where(
            Block.created_at < block.created_at, Block.status != "rejected", Block.id != block.id
        )
    ).scalar()


def prop_weights(
    conn: Connection, until: datetime, since: datetime | None, solo: frozenset[int]
) -> dict[int, Fraction]:
    """The work of each (tenant, site) account in the round (since, until]."""
    weights: dict[int, Fraction] = {}
    query = (
        select(Share.tenant_id, Share.site_id, func.sum(Share.work))
        .where(Share.created_at <= until)
        .group_by(Share.tenant_id, Share.site_id)
    )
    if since is not None:
        query = query.where(Share.created_at > since)
    if solo:
        query = query.where(Share.tenant_id.not_in(solo))
    for tenant, site, work in conn.execute(query):
        key = account(tenant, site)
        weights[key] = weights.get(key, Fraction(0)) + int(work)
    for step in _hour_steps(conn, until, since, solo, _Scores(None)):
        for key, hour_work in step:
            weights[key] = weights.get(key, Fraction(0)) + hour_work
    return weights
