"""Events in the database (pool/alerts/store.py) on SQLite and PostgreSQL: written by any
process, claimed for delivery by one stratum node only, listed per tenant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from pool.alerts import store
from pool.alerts.store import NewEvent
from pool.api.tokens import tenant_id
from pool.ledger import db
from pool.ledger.models import Event
from tests.helpers import seed_ledger


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    seed_ledger(db_url)
    made = db.make_engine(db_url)
    yield made
    made.dispose()


def test_every_event_is_claimed_by_one_node_only(engine: Engine) -> None:
    with engine.begin() as conn:  # e.g. the block tracker, in its own transaction
        for n in range(60):
            tenant = ("acme", "globex", None)[n % 3]
            store.record(conn, NewEvent("block_orphaned", f"{n:064x}", {"n": n}, tenant), "cli")
    claims: dict[str, list[int]] = {}

    def node(name: str) -> None:
        taken: list[int] = []
        while batch := store.claim(engine, name, limit=7):
            taken += [e["id"] for e in batch]
        claims[name] = taken

    threads = [threading.Thread(target=node, args=(f"node-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for taken in claims.values() for i in taken]
    assert len(every) == 60 and len(set(every)) == 60, claims
    assert store.claim(engine, "node-9") == []  # nothing left to claim


def test_delivery_marks_and_stale_claims(engine: Engine) -> None:
    own = store.record_all(engine, [NewEvent("worker_down", "acme.rig1", {}, "acme")], "node-a")
    assert store.claim(engine, "node-b") == []  # claimed by its writer
    store.delivered(engine, own[0], ["hook-a"], ok=False)  # a round that reached one hook
    (again,) = store.claim(engine, "node-b")
    assert again["id"] == own[0] and again["tenant"] == "acme"
    assert again["delivered_to"] == ["hook-a"]  # the next round skips it
    store.delivered(engine, own[0], ["hook-b"], ok=True)
    (done,) = [e for e in store.list_events(engine, None) if e["id"] == own[0]]
    assert done["delivered_to"] == ["hook-a", "hook-b"] and done["delivered_at"] is not None
    assert store.claim(engine, "node-c") == []
    # A node that claimed and died: its claim goes stale and another node takes the event.
    late = store.record_all(engine, [NewEvent("node_unreachable", "node", {})], "node-d")
    with engine.begin() as conn:
        conn.execute(
            update(Event)
            .where(Event.id == late[0])
            .values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    assert [e["id"] for e in store.claim(engine, "node-e")] == late
    # Events sent while the database was down are written as delivered.
    sent = NewEvent("ledger_spooling", "ledger", {}, delivered=True)
    store.record_all(engine, [sent], "node-a")
    assert store.claim(engine, "node-f") == []


def test_events_are_listed_newest_first_per_tenant(engine: Engine) -> None:
    events = [
        NewEvent("worker_down", "acme.rig1", {"silent_s": 700}, "acme"),
        NewEvent("worker_down", "globex.rig9", {"silent_s": 800}, "globex"),
        NewEvent("ledger_spooling", "ledger", {}),
        NewEvent("worker_up", "acme.rig1", {}, "acme"),
    ]
    ids = store.record_all(engine, events, "node-a")
    acme = tenant_id(engine, "acme")
    everything = store.list_events(engine, None)
    assert [e["id"] for e in everything] == ids[::-1]
    mine = store.list_events(engine, acme)
    assert [(e["kind"], e["tenant"]) for e in mine] == [
        ("worker_up", "acme"),
        ("worker_down", "acme"),
    ]
    assert mine[1]["data"] == {"silent_s": 700}
    assert [e["id"] for e in store.list_events(engine, None, since_id=ids[1], limit=1)] == [ids[3]]
    with pytest.raises(ValueError, match="unknown event kind"):
        store.record_all(engine, [NewEvent("nonsense", "x", {})], "node-a")
