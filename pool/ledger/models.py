"""The share ledger's tables: what the pool owes tenants starts here.

Every accepted share is a row (until compaction rolls it into hourly aggregates). Its id is
given by the node that accepted it, `node_id << 48 | sequence`, before it is written anywhere,
so a share loaded twice (a spool replayed after an outage, a commit whose answer was lost)
cannot count twice, and the idempotency key costs no extra index: ids of one node only grow.
Work is stored as an integer: difficulty in fixed point, x 2^16 (at least 1), so
that every sum over shares and aggregates is exact. Times are UTC.

Alembic owns the schema (migrations/); a test checks that `upgrade head` gives exactly these
models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Constraint names that are the same on every database (Alembic needs names to drop them).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Row ids that may grow past 2^31: BIGINT, but SQLite's rowid alias must be INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps written to the ledger must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite without type detection
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Node(Base):
    """A stratum node process (several may share one database)."""

    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The highest share sequence number this node has handed out (ids never go back).
    share_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The first byte of every extranonce1 this node hands out, leased for good (unique: two
    #: nodes on one database never hand out the same extranonce1; pool/ledger/leases.py).
    extranonce_prefix: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)


class Site(Base):
    """A place where the farm runs machines."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The currency of the site's prices and reports (ISO 4217 code).
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    #: The electricity tariff as JSON: {"price": "0.0734", "bands": [{"from": "07:00", "to":
    #: "23:00", "price": "0.1100"}]} (decimal text per kWh; bands in local time); None: none.
    tariff: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Heat recovered per kWh of electricity (ppm: 0.85 = 850000) and its price per kWh thermal
    #: in millionths of the currency.
    heat_factor_ppm: Mapped[int] = mapped_column(Integer, default=0)
    heat_price_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    hosting_terms: Mapped[str | None] = mapped_column(Text, nullable=True)


class Tenant(Base):
    """A customer of the farm whose machines mine through the pool."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    payout_address: Mapped[str | None] = mapped_column(String(128), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Overrides of the pool's payout settings (None: the pool's). The fee is in parts per
    #: million of the reward (1.5 % = 15000), so that it is an exact integer.
    fee_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payout_threshold_sat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Mines solo inside the pool: takes the blocks it finds, and its shares count in no one
    #: else's window or round.
    solo: Mapped[bool] = mapped_column(Boolean, default=False)


class Worker(Base):
    """A tenant's machine, by the name after the dot in `tenant.worker`."""

    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Share(Base):
    """One accepted share."""

    __tablename__ = "shares"
    __table_args__ = (
        Index(None, "created_at"),
        # Only the shares loaded late and not yet paid per share are in it: none on the hot
        # insert path (a fresh share's `late` is NULL).
        Index(
            "ix_shares_late_unpaid",
            "node_id",
            "id",
            postgresql_where=text("late"),
            sqlite_where=text("late = 1"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))  # the header hash, for audits
    # No foreign keys on this one table: PostgreSQL checks each with a row trigger, which
    # cost 40 us of the 52 us a share insert took. The writer takes every id from the rows it
    # looked up or created itself, in the same transaction.
    node_id: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(16))
    height: Mapped[int] = mapped_column(Integer)
    difficulty: Mapped[float] = mapped_column(Float)  # assigned (credited)
    share_difficulty: Mapped[float] = mapped_column(Float)  # achieved by the hash
    work: Mapped[int] = mapped_column(BigInteger)  # difficulty x 2^16 (writer.work_of)
    is_block: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The network target (compact bits) of the job the share was mined on: its network
    #: difficulty when it was submitted (PPLNS scores by it). 0: not known (older shares).
    bits: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: NULL: written in id order (fresh); PPS credits it by its node's id watermark. True:
    #: loaded late (from the spool, after fresher shares of its node): PPS credits it by this
    #: flag, which it sets to False in the transaction that writes the credit.
    late: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class Contract(Base):
    """A tenant's terms at one site: a pool fee override, the hosting fee, the declared fleet.

    hosting_fee_kind: "kw_month" (hosting_fee_micro per kW of the declared fleet per month) or
    "kwh" (per kWh used), or None. fleet: JSON list of {"model", "count", "ths", "watts"}
    (nominal TH/s and W per machine), used to estimate energy where no meter reading exists.
    Money in millionths of the site's currency.
    """

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("tenant_id", "site_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    fee_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hosting_fee_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    hosting_fee_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    fleet: Mapped[str] = mapped_column(Text, default="[]")
    fleet_watts: Mapped[int] = mapped_column(BigInteger, default=0)  # the fleet's total W
    #: From when the terms hold (energy is estimated and hosting charged from this hour on).
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeterReading(Base):
    """One imported meter reading: energy a tenant used at a site over [period_start,
    period_end), in watt-hours (exact: the CSV's kWh has at most 3 decimals)."""

    __tablename__ = "meter_readings"
    __table_args__ = (Index(None, "site_id", "tenant_id", "period_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    wh: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(255))  # file name and line
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SiteHour(Base):
    """The site's calendar: which local day and month each UTC hour belongs to (reports group
    by these; an hour belongs to the local day in which it starts)."""

    __tablename__ = "site_hours"
    __table_args__ = (UniqueConstraint("site_id", "hour"), Index(None, "site_id", "local_month"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    local_day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    local_month: Mapped[str] = mapped_column(String(7))  # YYYY-MM


class EnergyHour(Base):
    """A tenant's energy at a site in one UTC hour, with what it cost and earned, in exact
    integers. wh_metered: from meter readings (spread evenly over the seconds they cover);
    wh_estimated: the declared fleet's watts over the seconds no reading covers (rounded half
    up per hour). cost_nano: electricity in 1e-9 of the currency (Wh x the hour's tariff in
    millionths per kWh); heat_uwh: heat delivered, micro-Wh thermal (Wh x heat factor ppm);
    heat_nano: its revenue (rounded half up per hour); hosting_nano: the hosting fee of the
    hour (per kWh; or the month's kW fee spread over the month's hours)."""

    __tablename__ = "energy_hours"
    __table_args__ = (
        UniqueConstraint("site_id", "tenant_id", "hour"),
        Index(None, "site_id", "local_month"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    local_day: Mapped[str] = mapped_column(String(10))
    local_month: Mapped[str] = mapped_column(String(7))
    wh_metered: Mapped[int] = mapped_column(BigInteger)
    wh_estimated: Mapped[int] = mapped_column(BigInteger)
    cost_nano: Mapped[int] = mapped_column(BigInteger)
    heat_uwh: Mapped[int] = mapped_column(BigInteger)
    heat_nano: Mapped[int] = mapped_column(BigInteger)
    hosting_nano: Mapped[int] = mapped_column(BigInteger)


class ShareHour(Base):
    """Compacted shares: one row per worker, site, hour and network target (bits; a
    difficulty change inside an hour gives the hour two rows)."""

    __tablename__ = "share_hours"
    __table_args__ = (
        UniqueConstraint("worker_id", "site_id", "hour", "bits"),
        Index(None, "hour"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    shares: Mapped[int] = mapped_column(BigInteger)
    work: Mapped[int] = mapped_column(BigInteger)
    best_share_difficulty: Mapped[float] = mapped_column(Float)
    #: The shares' network target (compact bits), as in `shares.bits`; 0: not known.
    bits: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ShareReject(Base):
    """Rejected shares counted per worker, reason and hour."""

    __tablename__ = "share_rejects"
    __table_args__ = (UniqueConstraint("worker_id", "site_id", "reason", "hour"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    reason: Mapped[str] = mapped_column(String(32))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(BigInteger)


class Block(Base):
    """A block the pool found, with the node's answer and where it stands on the chain.

    status: accepted (the node took it; not yet seen in the main chain), rejected (the node
    refused it, or it could not be submitted), immature (in the main chain, credited, fewer
    than `maturity` confirmations), mature (final: credits payable), orphaned (another block
    holds its height in the main chain; credits void). A block moves back from orphaned to
    immature if a reorg brings it back, and rejected to immature if the node has it after all.
    """

    __tablename__ = "blocks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # block-explorer hex
    height: Mapped[int] = mapped_column(Integer, index=True)
    reward_sat: Mapped[int] = mapped_column(BigInteger)  # the coinbase value, in satoshis
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    accepted: Mapped[bool] = mapped_column(Boolean)
    node_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The id of the share that found it (None for blocks recorded before it was kept).
    share_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: What the tracker last saw: confirmations (0 off the main chain), the header's bits.
    confirmations: Mapped[int] = mapped_column(Integer, default=0)
    bits: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    scheme: Mapped[str | None] = mapped_column(String(8), nullable=True)  # how it was split
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    matured_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PpsAccrual(Base):
    """One run of PPS/FPPS crediting over a node's shares (first_share_id..last_share_id).

    Unique per (node, first share): two trackers racing over the same shares cannot both
    commit their credits. `late`: a run over shares loaded late (`shares.late`), which does
    not move the node's id watermark (the largest last_share_id of its other runs).
    """

    __tablename__ = "pps_accruals"
    __table_args__ = (UniqueConstraint("node_id", "first_share_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    first_share_id: Mapped[int] = mapped_column(BigInteger)
    last_share_id: Mapped[int] = mapped_column(BigInteger)
    shares: Mapped[int] = mapped_column(BigInteger)
    work: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    late: Mapped[bool] = mapped_column(Boolean, server_default=false())


class Credit(Base):
    """Satoshis owed to a tenant (or kept by the pool: tenant_id None) for a block or for
    PPS shares. amount_sat is the tenant's, fee_sat the pool fee taken from the same gross; for
    a block, the sum of amount_sat + fee_sat over its credits is the block's reward exactly.

    status: immature (the block is not yet final), mature (payable), void (the block was
    orphaned). PPS/FPPS credits are mature when written: the pool pays them from its funds.
    """

    __tablename__ = "credits"
    __table_args__ = (
        UniqueConstraint("block_id", "tenant_id", "site_id", "kind"),
        UniqueConstraint("accrual_id", "tenant_id", "site_id"),
        Index(None, "tenant_id", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    block_id: Mapped[int | None] = mapped_column(ForeignKey("blocks.id"), nullable=True)
    accrual_id: Mapped[int | None] = mapped_column(ForeignKey("pps_accruals.id"), nullable=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    #: The site whose shares earned it (the pool's own credits: the block's site).
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(8))  # pplns | prop | solo | pps | fpps | pool
    work: Mapped[int] = mapped_column(BigInteger, default=0)  # the work it pays for, x 2^16
    amount_sat: Mapped[int] = mapped_column(BigInteger)
    fee_sat: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Payout(Base):
    """One wallet transaction paying tenants. Written with its signed transaction (txid and
    raw hex) BEFORE it is broadcast, so that money never moves unrecorded: a run interrupted
    after signing broadcasts the same transaction again, which cannot pay twice.

    status: signed (recorded, maybe broadcast), sent (the node has it), confirmed (in a
    block), void (it can never confirm: its inputs were spent by another transaction; the
    tenants' balances get the amounts back).
    """

    __tablename__ = "payouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    txid: Mapped[str] = mapped_column(String(64), unique=True)
    raw_hex: Mapped[str] = mapped_column(Text)
    total_sat: Mapped[int] = mapped_column(BigInteger)  # paid to tenants
    fee_sat: Mapped[int] = mapped_column(BigInteger)  # the network fee, paid by the pool
    outputs: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The transaction that pays it when that is not `txid`: a replacement paying the same
    #: outputs (a fee bump, a malleated copy), found by recovery. Its status follows it.
    paid_by_txid: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PayoutItem(Base):
    """What one payout transaction pays one tenant for one site: a debit of its balance
    (unless void). A tenant's output in the transaction is the sum of its items."""

    __tablename__ = "payout_items"
    __table_args__ = (
        UniqueConstraint("payout_id", "tenant_id", "site_id"),
        Index(None, "tenant_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    #: The part of the tenant's payment that settles what it earned at this site.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), nullable=True)
    address: Mapped[str] = mapped_column(String(128))
    amount_sat: Mapped[int] = mapped_column(BigInteger)


class TenantToken(Base):
    """A tenant's API token: it sees that tenant's numbers and nothing else. Only the token's
    SHA-256 is stored (tokens are 256 random bits: a hash is enough, and a copy of the
    database gives no one a token); the token itself is shown once, when it is made."""

    __tablename__ = "tenant_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, to tell tokens apart in lists (not enough to use one).
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Event(Base):
    """Something an operator or a tenant is told about (pool/alerts/): a worker down or back,
    a tenant's hashrate falling, a block found or orphaned, a payout sent or failed, the node
    unreachable, the ledger spooling. Written by whichever process saw it; delivered to the
    webhooks once, by the stratum node that claims it (`claimed_by`)."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "delivered_at", "claimed_by"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: The tenant it is about (None: the operator's business only).
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id"), nullable=True, index=True
    )
    subject: Mapped[str] = mapped_column(String(256))
    data: Mapped[str] = mapped_column(Text)  # a JSON object
    source: Mapped[str] = mapped_column(String(64))  # the stratum node or command that saw it
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The webhooks (keys of their URLs) it reached already: a later round skips them.
    delivered_to: Mapped[str] = mapped_column(Text, default="[]")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
