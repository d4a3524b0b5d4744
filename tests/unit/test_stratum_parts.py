"""Stratum building blocks without a network: extranonces, vardiff, jobs, reply encoding,
and line framing through Twisted's in-memory transport."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from pool.chain.job import JobFactory
from pool.chain.rpc import AsyncNode, NodeRPC
from pool.config import VardiffSettings, settings_from_mapping
from pool.stratum.errors import StratumError
from pool.stratum.extranonce import ExtranonceAllocator, ExtranonceExhausted
from pool.stratum.jobs import JobRegistry
from pool.stratum.protocol import StratumProtocol, encode_error, encode_reply
from pool.stratum.server import StratumServer
from pool.stratum.vardiff import Vardiff, nice_difficulty
from tests.unit.stratum_harness import ADDRESS
from tests.unit.stratum_harness import regtest_template as template

# --- extranonce -----------------------------------------------------------------------------


def test_extranonces_are_unique_and_released() -> None:
    alloc = ExtranonceAllocator(4)
    values = {alloc.allocate() for _ in range(5000)}
    assert len(values) == 5000 and all(len(v) == 4 for v in values)
    value = next(iter(values))
    alloc.release(value)
    assert value not in alloc.in_use


def test_extranonce_resume_gets_the_same_value_when_free() -> None:
    alloc = ExtranonceAllocator(4)
    first = alloc.allocate()
    assert alloc.allocate(first) != first  # held by the first connection
    alloc.release(first)
    assert alloc.allocate(first) == first
    assert len(alloc.allocate(b"\x01\x02")) == 4  # a foreign session id: a new value


def test_extranonce_prefix_and_exhaustion() -> None:
    alloc = ExtranonceAllocator(2, prefix=b"\xab")
    values = [alloc.allocate() for _ in range(256)]
    assert all(v[:1] == b"\xab" for v in values) and len(set(values)) == 256
    with pytest.raises(ExtranonceExhausted):
        alloc.allocate()
    alloc.release(values[7])
    assert alloc.allocate(b"\xcd\x00") == values[7]  # another prefix is never handed out


# --- vardiff --------------------------------------------------------------------------------


SETTINGS = VardiffSettings(target_share_interval_s=5, min_shares=12, max_window_s=60, tolerance=2)


def run_shares(vd: Vardiff, difficulty: float, interval: float, count: int) -> float | None:
    now = 0.0
    proposal = None
    for _ in range(count):
        now += interval
        proposal = vd.on_share(difficulty, now) or proposal
    return proposal


def test_vardiff_keeps_a_session_on_target() -> None:
    assert run_shares(Vardiff(SETTINGS, 0.0), 1000, 5.0, 12) is None
    assert run_shares(Vardiff(SETTINGS, 0.0), 1000, 3.0, 12) is None  # within x2


def test_vardiff_raises_a_fast_session_in_proportion() -> None:
    proposal = run_shares(Vardiff(SETTINGS, 0.0), 1000, 0.5, 12)
    assert proposal == pytest.approx(10_000)


def test_vardiff_lowers_a_slow_session_and_halves_an_idle_one() -> None:
    vd = Vardiff(SETTINGS, 0.0)
    assert vd.on_share(1000, 30.0) is None
    assert vd.on_share(1000, 60.0) == pytest.approx(1000 * 2 * 5 / 60)
    idle = Vardiff(SETTINGS, 0.0)
    assert idle.on_idle(1000, 59.0) is None
    assert idle.on_idle(1000, 61.0) == 500


def test_nice_difficulty() -> None:
    assert nice_difficulty(10_000) == 8192
    assert nice_difficulty(1.0) == 1
    assert nice_difficulty(0.012345) == 0.0123


# --- jobs -----------------------------------------------------------------------------------


def test_job_registry_drops_the_old_tip_and_keeps_the_newest() -> None:
    settings = settings_from_mapping({"pool": {"payout_address": ADDRESS}})
    factory = JobFactory(settings.coinbase)
    registry = JobRegistry(keep=3)
    first = registry.add(factory.build(template(), clean=True))
    refreshes = [registry.add(factory.build(template(), clean=False)) for _ in range(3)]
    assert registry.get(first.job.job_id) is None  # pushed out by the newest 3
    assert all(registry.get(e.job.job_id) is e for e in refreshes)
    new_tip = registry.add(factory.build(template(prev="22" * 32), clean=True))
    assert len(registry) == 1 and registry.current is new_tip
    assert all(registry.get(e.job.job_id) is None for e in refreshes)
    notify = json.loads(new_tip.notify(True))
    assert notify["method"] == "mining.notify" and notify["id"] is None
    assert notify["params"][0] == new_tip.job.job_id and notify["params"][8] is True
    assert json.loads(new_tip.notify(False))["params"][8] is False
    assert new_tip.notify(True) is new_tip.notify(True)  # encoded once


# --- replies --------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [1, "mining.submit", None, 4.5, [1, 2], {"a": 1}, 0])
def test_replies_echo_any_id_and_carry_result_and_error(request_id: Any) -> None:
    ok = json.loads(encode_reply(request_id, True))
    assert ok == {"id": request_id, "result": True, "error": None}
    listed = json.loads(encode_reply(request_id, [1, "x"]))
    assert listed == {"id": request_id, "result": [1, "x"], "error": None}
    error = json.loads(encode_error(request_id, StratumError(24, "Unauthorized", result=False)))
    assert error == {"id": request_id, "result": False, "error": [24, "Unauthorized", None]}


# --- framing (Twisted's in-memory transport, no socket) -------------------------------------


@pytest.fixture
def connection() -> tuple[StratumProtocol, StringTransport]:
    settings = settings_from_mapping(
        {
            "pool": {"payout_address": ADDRESS},
            "listeners": [{"name": "a", "port": 0, "difficulty": {"start": 1, "min": 0.01}}],
            "tenants": [{"name": "acme"}],
            "stratum": {"max_line_bytes": 1024},
        }
    )
    clock = Clock()
    server = StratumServer(
        settings, AsyncNode(NodeRPC("http://u:p@127.0.0.1:1"), clock), clock, clock=clock.seconds
    )
    server.on_job(JobFactory(settings.coinbase).build(template(), clean=True))
    proto = StratumProtocol(server, settings.listeners[0])
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def replies(transport: StringTransport) -> list[dict[str, Any]]:
    lines = transport.value().split(b"\n")
    transport.clear()
    assert lines[-1] == b""
    return [json.loads(line) for line in lines[:-1]]


def test_lines_split_across_packets_and_many_per_packet(
    connection: tuple[StratumProtocol, StringTransport],
) -> None:
    proto, transport = connection
    proto.dataReceived(b'{"id": 1, "method": "mining.subs')
    assert transport.value() == b""
    proto.dataReceived(
        b'cribe", "params": []}\r\n{"id": "two", "method": "mining.extranonce.subscribe"'
    )
    proto.dataReceived(
        b', "params": []}\n\n{"id": 3, "method": "mining.authorize", "params": ["acme.w", "x"]}\n'
    )
    got = replies(transport)
    assert [m.get("id") for m in got[:3]] == [1, "two", 3]
    assert got[2]["result"] is True
    assert [m.get("method") for m in got[3:]] == ["mining.set_difficulty", "mining.notify"]


def test_garbage_gets_error_20_and_the_session_goes_on(
    connection: tuple[StratumProtocol, StringTransport],
) -> None:
    proto, transport = connection
    proto.dataReceived(
        b'\xff\xfe\x00garbage\n[1, 2]\n{"id": 5, "method": "no.such", "params": []}\n'
    )
    got = replies(transport)
    assert [m["error"][0] for m in got] == [20, 20, 20]
    assert got[2]["id"] == 5
    assert not transport.disconnecting
    proto.dataReceived(b'{"id": 6, "method": "mining.subscribe", "params": []}\n')
    assert replies(transport)[0]["id"] == 6


def test_an_oversized_line_closes_the_connection(
    connection: tuple[StratumProtocol, StringTransport],
) -> None:
    proto, transport = connection
    proto.dataReceived(b'{"id": 1, "method": "mining.subscribe", "params": []}\n' + b"x" * 2000)
    got = replies(transport)
    assert got[0]["id"] == 1 and got[-1]["error"][0] == 20
    assert "longer than 1024" in got[-1]["error"][1]
    assert transport.disconnecting
