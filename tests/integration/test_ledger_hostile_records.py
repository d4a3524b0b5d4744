"""The ledger writer outlives any record (issue 12): a share it cannot store is set aside, a
spool line it cannot load is quarantined, and /health says when the writer is dead or stuck;
on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine
from twisted.web.test.requesthelper import DummyRequest

from pool.api.http import Api
from pool.api.metrics import HashrateHistory
from pool.ledger.spool import Spool
from pool.ledger.writer import STUCK_AFTER_S, LedgerWriter, ShareRecord
from tests.integration import test_ledger_writer as lw
from tests.integration.test_ledger_writer import Acks, ThreadReactor, check_ledger, share, shares


@pytest.fixture
def ledger(db_url: str) -> Iterator[Engine]:
    yield from lw.ledger.__wrapped__(db_url)  # type: ignore[attr-defined]


@pytest.fixture
def writers() -> Iterator[Callable[..., LedgerWriter]]:
    yield from lw.writers.__wrapped__()  # type: ignore[attr-defined]


def quarantined(spool_path: Path) -> list[dict[str, Any]]:
    path = spool_path.with_name("ledger-quarantine.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_share_with_nan_work_is_set_aside_and_the_writer_goes_on(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """The audit's case: one share credited NaN work killed the writer thread, and every later
    share of every miner got no reply."""
    reactor = ThreadReactor()
    acks = Acks(reactor)
    spool = tmp_path / "spool.jsonl"
    writer = writers(ledger, "node-a", spool, reactor)
    good = shares("good", 200)
    bad = [share("nan", 1, difficulty=math.nan), share("inf", 2, difficulty=math.inf)]
    with reactor.lock:  # one batch: the bad shares among the good
        for record in [*good[:100], *bad, *good[100:]]:
            acks.record(writer, record)
    writer.start()
    acks.wait({r.hash for r in good + bad}, writer, timeout=20)
    later = shares("later", 300)
    for thread in acks.record_all(writer, later, 2):
        thread.join()
    acks.wait({r.hash for r in later}, writer, timeout=20)
    assert writer._thread is not None and writer._thread.is_alive()
    for record in bad:
        (outcome,) = acks.fired[record.hash]
        assert outcome.startswith("error: ") and "difficulty" in outcome
    for record in good + later:
        assert acks.fired[record.hash] == ["ok"]
    writer.stop()
    check_ledger(ledger, good + later)
    kept = quarantined(spool)
    assert len(kept) == 2 and all("difficulty" in item["reason"] for item in kept)
    assert writer.stats["internal_errors"] >= 1 and writer.problem() is None
    assert Spool(spool).size() == 0  # the good shares of the failed batch were loaded back


def test_a_spool_with_records_that_cannot_be_loaded_starts_and_quarantines_them(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    """The audit's case: a NaN record in the spool made `serve` fail at every start."""
    spool = tmp_path / "spool.jsonl"
    good = shares("spooled", 50)
    for n, record in enumerate(good):
        record.id = 10_000 + n  # ids an earlier run gave them
    nan = share("nan", 1).to_json()
    nan["difficulty"] = math.nan
    no_tenant = share("gone", 2).to_json()
    del no_tenant["tenant"]
    bad_block = {
        "t": "block",
        "hash": "zz" * 32,
        "height": 1,
        "reward_sat": 1,
        "tenant": "acme",
        "worker": "w",
        "site": "north",
        "accepted": True,
        "node_answer": None,
        "time": 1_790_000_000,
    }
    lines = [json.dumps(r.to_json()) for r in good[:25]]
    lines += [json.dumps(nan), "{not json", json.dumps(no_tenant), json.dumps(bad_block), "[1]"]
    lines += [json.dumps(r.to_json()) for r in good[25:]]
    spool.write_text("\n".join(lines) + "\n")
    writer = writers(ledger, "node-a", spool, ThreadReactor())  # opens: loads the spool
    assert Spool(spool).size() == 0
    check_ledger(ledger, good)
    reasons = [item["reason"] for item in quarantined(spool)]
    assert len(reasons) == 5, reasons
    assert "difficulty" in reasons[0] and "tenant: missing" in reasons[2]
    assert "hash" in reasons[3] and "not a share or block" in reasons[4]
    assert quarantined(spool)[1]["record"]["line"] == "{not json"
    assert writer.stats["quarantined"] == 5


def health(writer: LedgerWriter) -> tuple[int, dict[str, Any]]:
    class Stratum:
        job_at = time.time()
        stopping = False
        sessions: ClassVar[set[Any]] = set()

    api = Api(Stratum(), writer, None, None, HashrateHistory())
    request = DummyRequest([b"health"])
    request.path = b"/health"
    body = api.render_GET(request)
    return request.responseCode or 200, json.loads(body)


def test_health_fails_while_the_writer_is_stuck_or_dead(
    ledger: Engine, tmp_path: Path, writers: Callable[..., LedgerWriter]
) -> None:
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = writers(ledger, "node-a", tmp_path / "spool.jsonl", reactor)
    assert health(writer)[0] == 200
    record: ShareRecord = share("waiting", 1)
    acks.record(writer, record)  # queued, and no thread takes it
    writer._moved_at -= STUCK_AFTER_S + 1
    status, body = health(writer)
    assert status == 503 and "has not moved for" in body["problems"][0], body
    writer.start()
    acks.wait({record.hash}, writer)
    assert health(writer)[0] == 200
    writer.stop()
    dead = threading.Thread(target=lambda: None)  # the writer's thread, as if it had died
    dead.start()
    dead.join()
    writer._thread, writer._stopping = dead, False
    status, body = health(writer)
    assert status == 503 and body["problems"] == ["the ledger writer thread is dead"]
