"""What the HTTP API reads from the database (blocking: the API runs these in threads).

Where it sits: beside the share path, read-only. Workers' hashrates come from the shares they
were credited for: work (difficulty x 2^16) x 2^16 / seconds = hashes per second, over the
last 5 minutes, hour and day (raw shares, plus compacted hours for the day).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, func, select, true

from pool.accounting.payout import balances
from pool.config import PayoutSettings
from pool.ledger.models import (
    Block,
    Payout,
    PayoutItem,
    Share,
    ShareHour,
    ShareReject,
    Site,
    Tenant,
    Worker,
)
from pool.units import HASHES_PER_WORK

WINDOWS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "24h": timedelta(hours=24)}


def iso_time(moment: datetime | None) -> str | None:
    """A stored time in ISO 8601 for JSON (None stays None)."""
    return None if moment is None else moment.isoformat()


def sites(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Site.name, Site.timezone, Site.currency).order_by(Site.name)
        ).all()
    return [{"name": n, "timezone": tz, "currency": c} for n, tz, c in rows]


def tenants(engine: Engine, settings: PayoutSettings) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        active = dict(conn.execute(select(Tenant.name, Tenant.active)).all())
        rows = balances(conn, settings)
    return [{**b.to_json(), "active": bool(active.get(b.tenant, False))} for b in rows]


def workers(
    engine: Engine, now: datetime | None = None, tenant_id: int | None = None
) -> list[dict[str, Any]]:
    """Every worker with shares in the last day (of one tenant, given its id): hashrates,
    last share, reject rate."""
    now = now or datetime.now(UTC)
    day = now - WINDOWS["24h"]

    def mine(column: Any) -> ColumnElement[bool]:
        if tenant_id is None:
            return true()
        return column.in_(select(Worker.id).where(Worker.tenant_id == tenant_id))  # type: ignore[no-any-return]

    sums = [
        func.sum(case((Share.created_at >= now - span, Share.work), else_=0)).label(name)
        for name, span in WINDOWS.items()
    ]
    with engine.connect() as conn:
        raw = {
            row.worker_id: row
            for row in conn.execute(
                select(
                    Share.worker_id,
                    func.count().label("shares"),
                    func.max(Share.created_at).label("last"),
                    *sums,
                )
                .where(Share.created_at >= day, mine(Share.worker_id))
                .group_by(Share.worker_id)
            )
        }
        compacted = dict(
            conn.execute(
                select(ShareHour.worker_id, func.sum(ShareHour.work))
                .where(ShareHour.hour >= day, mine(ShareHour.worker_id))
                .group_by(ShareHour.worker_id)
            ).all()
        )
        rejects = dict(
            conn.execute(
                select(ShareReject.worker_id, func.sum(ShareReject.count))
                .where(ShareReject.hour >= day - timedelta(hours=1), mine(ShareReject.worker_id))
                .group_by(ShareReject.worker_id)
            ).all()
        )
        names = {
            wid: (tenant, worker)
            for wid, tenant, worker in conn.execute(
                select(Worker.id, Tenant.name, Worker.name).join(
                    Tenant, Tenant.id == Worker.tenant_id
                )
            )
        }
    out = []
    for wid in sorted(set(raw) | set(compacted), key=lambda w: names.get(w, ("", ""))):
        row = raw.get(wid)
        cells = row._mapping if row is not None else {}
        tenant, worker = names.get(wid, ("?", "?"))
        works = {name: int(cells.get(name) or 0) for name in WINDOWS}
        works["24h"] += int(compacted.get(wid) or 0)
        shares = int(cells.get("shares") or 0)
        rejected = int(rejects.get(wid) or 0)
        out.append(
            {
                "tenant": tenant,
                "worker": worker,
                "hashrate_hs": {
                    name: works[name] * HASHES_PER_WORK // int(span.total_seconds())
                    for name, span in WINDOWS.items()
                },
                "last_share": iso_time(cells.get("last")),
                "shares_24h": shares,
                "rejects_24h": rejected,
                "reject_percent": round(100 * rejected / (shares + rejected), 4)
                if shares + rejected
                else 0.0,
            }
        )
    return out


def blocks(
    engine: Engine, limit: int | None = 100, tenant_id: int | None = None
) -> list[dict[str, Any]]:
    """The blocks the pool found (those one tenant's workers found, given its id), newest
    first (`farmpool blocks list` and the API)."""
    query = (
        select(
            Block.height,
            Block.hash,
            Block.status,
            Block.confirmations,
            Block.reward_sat,
            Block.scheme,
            Block.created_at,
            Tenant.name,
            Site.name,
        )
        .join(Tenant, Tenant.id == Block.tenant_id)
        .join(Site, Site.id == Block.site_id)
        .order_by(Block.height.desc(), Block.id.desc())
    )
    if tenant_id is not None:
        query = query.where(Block.tenant_id == tenant_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "height": h,
            "hash": hash_,
            "status": status,
            "confirmations": conf,
            "reward_sat": reward,
            "scheme": scheme,
            "found_at": iso_time(found),
            "tenant": tenant,
            "site": site,
        }
        for h, hash_, status, conf, reward, scheme, found, tenant, site in rows
    ]


def payouts(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Payout.id,
                Payout.txid,
                Payout.status,
                Payout.total_sat,
                Payout.fee_sat,
                Payout.outputs,
                Payout.created_at,
            )
            .order_by(Payout.id.desc())
            .limit(limit)
        ).all()
        items: dict[int, list[dict[str, Any]]] = {}
        for payout_id, tenant, amount in conn.execute(
            select(PayoutItem.payout_id, Tenant.name, func.sum(PayoutItem.amount_sat))
            .join(Tenant, Tenant.id == PayoutItem.tenant_id)
            .where(PayoutItem.payout_id.in_([r[0] for r in rows]))
            .group_by(PayoutItem.payout_id, Tenant.name)
        ):
            items.setdefault(payout_id, []).append({"tenant": tenant, "amount_sat": int(amount)})
    return [
        {
            "id": pid,
            "txid": txid,
            "status": status,
            "total_sat": total,
            "fee_sat": fee,
            "outputs": outputs,
            "created_at": iso_time(created),
            "payments": items.get(pid, []),
        }
        for pid, txid, status, total, fee, outputs, created in rows
    ]
