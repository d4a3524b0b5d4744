"""Events in the database (blocking; the stratum node calls these in threads).

Whichever process sees something writes the event: a stratum node (workers, hashrate, blocks
it found, its node and ledger), the block tracker (a block orphaned, in the transaction that
moves it), a payout run (sent, failed). Delivery to the webhooks is by a stratum node: its own
events it claims when it writes them; the others' it claims from here (`claim`), so that each
event is delivered by one node only. `/api/events` lists them (a tenant sees its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from pool.alerts.kinds import KINDS
from pool.ledger.dialect import begin_write
from pool.ledger.models import Event, Tenant

#: Deliveries tried at most this many times (then the event stays listed, undelivered).
MAX_ATTEMPTS = 8


@dataclass
class NewEvent:
    """An event before it is written (tenant by name: the writer looks its id up)."""

    kind: str
    subject: str
    data: dict[str, Any]
    tenant: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Already sent to the webhooks (while the database was down): written as delivered.
    delivered: bool = False

    def as_json(self, event_id: int | None, source: str) -> dict[str, Any]:
        return {
            "id": event_id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "tenant": self.tenant,
            "subject": self.subject,
            "data": self.data,
            "source": source,
        }


def record(
    conn: Connection,
    event: NewEvent,
    source: str,
    *,
    tenant_id: int | None = None,
    claimed_by: str | None = None,
) -> int:
    """Write one event in the caller's transaction; its id."""
    if event.kind not in KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}")
    if tenant_id is None and event.tenant is not None:
        tenant_id = conn.execute(select(Tenant.id).where(Tenant.name == event.tenant)).scalar()
    now = datetime.now(UTC)
    return int(
        conn.execute(
            insert(Event)
            .values(
                created_at=event.created_at,
                kind=event.kind,
                tenant_id=tenant_id,
                subject=event.subject[:256],
                data=json.dumps(event.data, allow_nan=False),
                source=source[:64],
                claimed_by=claimed_by,
                claimed_at=now if claimed_by else None,
                delivered_at=now if event.delivered else None,
                delivered_to="[]",
                attempts=0,
            )
            .returning(Event.id)
        ).scalar_one()
    )


def record_all(engine: Engine, events: list[NewEvent], source: str) -> list[int]:
    """Write a stratum node's own events (claimed by it: it delivers them itself)."""
    with engine.begin() as conn:
        return [record(conn, e, source, claimed_by=source) for e in events]


def _columns() -> tuple[Any, ...]:
    return (
        Event.id,
        Event.kind,
        Event.created_at,
        Tenant.name,
        Event.subject,
        Event.data,
        Event.source,
        Event.delivered_at,
        Event.delivered_to,
    )


def _as_json(row: Any) -> dict[str, Any]:
    event_id, kind, created, tenant, subject, data, source, delivered, delivered_to = row
    return {
        "id": int(event_id),
        "kind": kind,
        "created_at": created.isoformat(),
        "tenant": tenant,
        "subject": subject,
        "data": json.loads(data),
        "source": source,
        "delivered_at": None if delivered is None else delivered.isoformat(),
        "delivered_to": json.loads(delivered_to),
    }


def list_events(
    engine: Engine, tenant_id: int | None, since_id: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Events after `since_id`, newest first (of one tenant, given its id; else all)."""
    query = (
        select(*_columns())
        .outerjoin(Tenant, Tenant.id == Event.tenant_id)
        .where(Event.id > since_id)
        .order_by(Event.id.desc())
        .limit(limit)
    )
    if tenant_id is not None:
        query = query.where(Event.tenant_id == tenant_id)
    with engine.connect() as conn:
        return [_as_json(row) for row in conn.execute(query)]


def claim(
    engine: Engine, node: str, limit: int = 100, stale_s: float = 300
) -> list[dict[str, Any]]:
    """Take undelivered events no live node is delivering (never claimed, or claimed more
    than `stale_s` ago by a node that may be gone) for delivery by `node`."""
    now = datetime.now(UTC)
    free = or_(Event.claimed_by.is_(None), Event.claimed_at < now - timedelta(seconds=stale_s))
    wanted = and_(Event.delivered_at.is_(None), Event.attempts < MAX_ATTEMPTS, free)
    taken: list[dict[str, Any]] = []
    with engine.connect() as conn:  # most of the time there is nothing: no write lock then
        if conn.execute(select(Event.id).where(wanted).limit(1)).first() is None:
            return taken
    with engine.begin() as conn:
        # The write lock before the read, or two nodes that read the same rows deadlock on
        # the update (SQLite: "database is locked").
        begin_write(conn)
        for row in conn.execute(
            select(*_columns())
            .outerjoin(Tenant, Tenant.id == Event.tenant_id)
            .where(wanted)
            .order_by(Event.id)
            .limit(limit)
        ):
            changed = conn.execute(
                update(Event)
                .where(Event.id == row[0], wanted)
                .values(claimed_by=node, claimed_at=now)
            ).rowcount
            if changed:  # another node did not take it first
                taken.append(_as_json(row))
    return taken


def delivered(engine: Engine, event_id: int, reached: list[str], ok: bool) -> None:
    """Note a delivery round: the webhooks it `reached` (keys), and whether that was all of
    them (`ok`: delivered); otherwise one more failed attempt, free for a later claim."""
    with engine.begin() as conn:
        before = conn.execute(select(Event.delivered_to).where(Event.id == event_id)).scalar()
        done = sorted(set(json.loads(before or "[]")) | set(reached))
        values: dict[str, Any] = {"attempts": Event.attempts + 1, "delivered_to": json.dumps(done)}
        if ok:
            values["delivered_at"] = datetime.now(UTC)
        else:
            values["claimed_by"] = None
        conn.execute(update(Event).where(Event.id == event_id).values(**values))
