"""What a tenant's token may read (blocking: the API runs these in threads).

Every function takes the tenant's id from the token (never from the request) and reads only
rows of that tenant: its balance, its workers, its shares and rejects by hour, the blocks its
workers found, its credits, its part of each payout, its statements. Payout transactions
pay several tenants at once: a tenant sees the txid and its own amount, never the others'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from pool.accounting import report
from pool.accounting.payout import balances
from pool.api.queries import iso_time
from pool.config import PayoutSettings
from pool.ledger.models import (
    Block,
    Credit,
    Payout,
    PayoutItem,
    Share,
    ShareHour,
    ShareReject,
    Site,
    Tenant,
    Worker,
)


def summary(engine: Engine, settings: PayoutSettings, tenant_id: int) -> dict[str, Any]:
    """Name, whether it may mine, its balances (immature, mature, paid, owed)."""
    with engine.connect() as conn:
        name, active = conn.execute(
            select(Tenant.name, Tenant.active).where(Tenant.id == tenant_id)
        ).one()
        mine = [b for b in balances(conn, settings) if b.tenant == name]
    balance = mine[0].to_json() if mine else {}
    balance.pop("tenant", None)
    return {"tenant": name, "active": bool(active), "balance": balance}


def hours(
    engine: Engine, tenant_id: int, span: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Accepted shares (count, work) and rejects (by reason) per UTC hour, for the last
    `span` hours, oldest first; compacted hours count like raw ones."""
    now = now or datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=span - 1)
    workers = select(Worker.id).where(Worker.tenant_id == tenant_id)
    rows: dict[datetime, dict[str, Any]] = {}

    def hour(moment: datetime) -> dict[str, Any]:
        key = moment.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
        return rows.setdefault(key, {"shares": 0, "work": 0, "rejects": {}})

    with engine.connect() as conn:
        for created, work in conn.execute(
            select(Share.created_at, Share.work).where(
                Share.tenant_id == tenant_id, Share.created_at >= start
            )
        ):
            cell = hour(created)
            cell["shares"] += 1
            cell["work"] += int(work)
        for moment, count, work in conn.execute(
            select(ShareHour.hour, ShareHour.shares, ShareHour.work).where(
                ShareHour.tenant_id == tenant_id, ShareHour.hour >= start
            )
        ):
            cell = hour(moment)
            cell["shares"] += int(count)
            cell["work"] += int(work)
        for moment, reason, count in conn.execute(
            select(ShareReject.hour, ShareReject.reason, func.sum(ShareReject.count))
            .where(ShareReject.worker_id.in_(workers), ShareReject.hour >= start)
            .group_by(ShareReject.hour, ShareReject.reason)
        ):
            rejects = hour(moment)["rejects"]
            rejects[reason] = rejects.get(reason, 0) + int(count)
    return [{"hour": key.isoformat(), **rows[key]} for key in sorted(rows)]


def credits(engine: Engine, tenant_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Its credits, newest first: for which block (or PPS run), where, how much, status."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Credit.id,
                Credit.kind,
                Credit.amount_sat,
                Credit.fee_sat,
                Credit.status,
                Credit.created_at,
                Block.height,
                Block.hash,
                Site.name,
            )
            .outerjoin(Block, Block.id == Credit.block_id)
            .outerjoin(Site, Site.id == Credit.site_id)
            .where(Credit.tenant_id == tenant_id)
            .order_by(Credit.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": cid,
            "kind": kind,
            "amount_sat": int(amount),
            "fee_sat": int(fee),
            "status": status,
            "created_at": iso_time(created),
            "block_height": height,
            "block_hash": block_hash,
            "site": site,
        }
        for cid, kind, amount, fee, status, created, height, block_hash, site in rows
    ]


def payouts(engine: Engine, tenant_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The payout transactions that paid it, newest first, with its own amount only."""
    payout = (
        Payout.id,
        Payout.txid,
        Payout.status,
        Payout.created_at,
        Payout.sent_at,
        Payout.confirmed_at,
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(*payout, func.sum(PayoutItem.amount_sat), func.min(PayoutItem.address))
            .join(PayoutItem, PayoutItem.payout_id == Payout.id)
            .where(PayoutItem.tenant_id == tenant_id)
            .group_by(*payout)
            .order_by(Payout.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": pid,
            "txid": txid,
            "status": status,
            "amount_sat": int(amount),
            "address": address,
            "created_at": iso_time(created),
            "sent_at": iso_time(sent),
            "confirmed_at": iso_time(confirmed),
        }
        for pid, txid, status, created, sent, confirmed, amount, address in rows
    ]


def statement(engine: Engine, tenant: str, period: str, site: str | None) -> list[dict[str, Any]]:
    """Its statement rows for a period, the same numbers as `farmpool report tenant`."""
    return report.statement(engine, report.check("tenant", period, site, tenant))


def statement_csv(rows: list[dict[str, Any]]) -> str:
    return report.render(rows, "csv", "tenant")
