"""Nothing a miner sends can stop the pool (issue 12), in memory: each test is a regression
test for one input an audit found that stopped the pool, lost a block or banned a farm."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from pool.api.http import Api
from pool.api.metrics import HashrateHistory
from pool.hashing import difficulty_to_target
from pool.ledger.records import ShareRecord
from pool.sharecheck import Notify, check_share
from pool.stratum.judge import parse_submit
from pool.stratum.protocol import StratumProtocol
from tests.helpers import error_code, is_block, no_block
from tests.unit.stratum_harness import Miner, Pool, settings

# --- 1. NaN and Infinity -------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_malformed_and_never_reach_the_session(number: str) -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start()
    before = miner.session.difficulty
    line = b'{"id": 7, "method": "mining.suggest_difficulty", "params": [%s]}\n' % number.encode()
    (reply,) = miner.send_raw(line)
    assert error_code(reply) == 20 and reply["error"][1].startswith("Parse error")
    assert miner.session.difficulty == before and math.isfinite(miner.session.difficulty)
    assert miner.session.invalid_score == 1  # counts toward closing the session
    # The session goes on, and mines.
    assert miner.submit(miner.find_share(no_block))["result"] is True


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("mining.suggest_difficulty", [10**400]),  # an integer too large for a float
        ("mining.suggest_difficulty", [0]),
        ("mining.suggest_difficulty", [-5]),
        ("mining.suggest_difficulty", ["64"]),
        ("mining.authorize", ["acme.w2", "x,d=1e999"]),
    ],
)
def test_every_difficulty_is_finite_and_bounded_before_it_is_stored(
    method: str, params: list[Any]
) -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start()
    reply = miner.request(method, params)
    assert error_code(reply) == 20, reply
    assert math.isfinite(miner.session.difficulty) and miner.session.difficulty == 1e-10
    assert "acme.w2" not in miner.session.workers  # the authorize was refused whole


def test_suggested_and_minimum_difficulties_are_clamped_to_the_listener() -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start()
    assert miner.request("mining.suggest_difficulty", [1e300])["result"] is True
    assert miner.session.difficulty == 1e6  # the listener's max
    reply = miner.request(
        "mining.configure", [["minimum-difficulty"], {"minimum-difficulty.value": 1e-300}]
    )
    assert reply["result"] == {"minimum-difficulty": True}
    assert miner.session.floor == 1e-12  # the listener's min


def test_the_sweep_survives_a_session_that_fails_and_keeps_running() -> None:
    pool = Pool(settings(stratum={"idle_timeout_s": 30}))
    broken, quiet = pool.connect("10.0.0.1"), pool.connect("10.0.0.2")
    broken.start()
    quiet.start()

    class Exploding:
        """A session state that raises in the sweep (as a NaN difficulty once did)."""

        def on_idle(self, difficulty: float, now: float) -> float:
            raise ValueError("cannot convert float NaN to integer")

    broken.session.vardiff = Exploding()  # type: ignore[assignment]
    pool.server._sweeper.clock = pool.clock
    pool.server._sweeper.start(1.0, now=False)
    pool.clock.advance(1.0)
    assert pool.server._sweeper.running, "one session's exception stopped the sweep"
    assert pool.server.stats["sweep_session_errors"] == 1 and broken.closed
    # The sweep goes on for everyone else: the quiet session's idle timeout still fires.
    for _ in range(31):
        pool.clock.advance(1.0)
    assert pool.server._sweeper.running and quiet.closed
    pool.server._sweeper.stop()


# --- 2. Strict hex, parsed once ------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (2, "-0000001"),
        (2, "+0000001"),
        (2, "0x000001"),
        (2, "00_00001"),
        (2, "0000 001"),
        (2, " 0000001"),
        (2, "0000001"),
        (2, "000000001"),
        (2, "０００００００１"),  # full-width digits  # noqa: RUF001
        (2, 1),
        (3, "-0bb53aa"),
        (3, "+0bb53aa"),
        (3, "0x0bb53a"),
        (3, "0bb_53aa"),
        (3, "0bb53aa "),
        (3, "bb53aa"),
        (3, None),
        (4, "-0bb53aa"),
        (4, "0xbb53aa"),
        (4, "0bb53aa\n"),
        (4, "٠١٢٣٤٥٦٧"),  # Arabic-Indic digits
        (4, 12345678),
        (5, "-0002000"),
        (5, "0x002000"),
        (5, "2000"),
    ],
)
def test_every_hex_field_is_exactly_its_digits(index: int, value: Any) -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start()
    miner.request("mining.configure", [["version-rolling"], {"version-rolling.mask": "1fffe000"}])
    params = [*miner.find_share(no_block), "00002000"]
    params[index] = value
    reply = miner.submit(params)
    assert error_code(reply) == 20 and "hex digits" in reply["error"][1], reply
    assert miner.session.invalid_score == 1  # counts toward closing the session
    assert pool.sink.shares.total() == 0


def test_a_signed_nonce_on_a_block_share_is_refused_and_the_block_still_goes_out() -> None:
    """The audit's case: `-0bb53aa` hashed like nonce 0xff44ac56 in the C path, then block
    assembly failed; the miner got "Internal error" and the canonical resubmission
    "duplicate", so the block was lost."""
    pool = Pool()
    miner = pool.connect()
    miner.start()
    work, en2, ntime = pool.job.work, bytes(4), pool.job.template.curtime
    nonce = next(
        n
        for n in range(0xFFFFFFFF, 0xF0000000, -1)
        if work.hash_share(miner.extranonce1, en2, ntime, n, work.version)[1] <= work.network_target
    )
    signed = f"-{(1 << 32) - nonce:07x}"
    assert len(signed) == 8 and int(signed, 16) % (1 << 32) == nonce
    params = [next(iter(miner.session.workers)), pool.job.job_id, en2.hex(), f"{ntime:08x}"]
    reply = miner.submit([*params, signed])
    assert error_code(reply) == 20 and "nonce must be 8 hex digits" in reply["error"][1]
    assert pool.node.blocks == []
    reply = miner.submit([*params, f"{nonce:08x}"])
    assert reply["result"] is True and reply["error"] is None
    assert len(pool.node.blocks) == 1
    header = bytes.fromhex(pool.node.blocks[0])[:80]
    assert int.from_bytes(header[76:80], "little") == nonce


def test_parse_submit_names_the_field() -> None:
    submit = parse_submit(["acme.w", "1f", "0000000a", "6553f100", "ffffffff", "00002000"], 4)
    assert submit == ("acme.w", "1f", bytes.fromhex("0000000a"), 0x6553F100, 0xFFFFFFFF, 0x2000)
    for params, field in [
        (["acme.w", "1f", "0000000a", "6553f100"], "params"),
        ([1, "1f", "0000000a", "6553f100", "ffffffff"], "worker"),
        (["acme.w", "", "0000000a", "6553f100", "ffffffff"], "job_id"),
        (["acme.w", "x" * 65, "0000000a", "6553f100", "ffffffff"], "job_id"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_submit(params, 4)
        assert info.value.field == field  # type: ignore[attr-defined]


# --- 3. Authorize flood --------------------------------------------------------------------


def test_workers_per_session_are_capped_and_refusals_count_toward_closing() -> None:
    pool = Pool(settings(stratum={"max_workers_per_session": 4, "ban": {"invalid_shares": 10}}))
    miner = pool.connect()
    miner.start("acme.w0")
    for i in range(1, 4):
        assert miner.request("mining.authorize", [f"acme.w{i}", "x"])["result"] is True
    assert miner.request("mining.authorize", ["acme.w1", "x"])["result"] is True  # again: fine
    reply = miner.request("mining.authorize", ["acme.w4", "x"])
    assert reply["result"] is False and error_code(reply) == 24
    assert "4 workers on one connection at most" in reply["error"][1]
    assert len(miner.session.workers) == 4
    # Unknown tenants and further names: each refusal weighs toward closing the session.
    for i in range(9):
        assert not miner.closed
        miner.request("mining.authorize", [f"nobody.w{i}", "x"])
    assert miner.closed and pool.server.stats["authorize_refused"] == 10


def test_an_authorize_flood_is_stopped_with_the_default_limits() -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start("acme.w0")
    lines = b"".join(
        b'{"id": %d, "method": "mining.authorize", "params": ["acme.flood%d", "x"]}\n' % (i, i)
        for i in range(200_000)
    )
    miner.send_raw(lines)
    assert miner.closed  # 64 workers, then 100 refusals closed it
    assert len(miner.session.workers) == 64


# --- 4. Worker rows from rejects -----------------------------------------------------------


def test_rejects_count_only_against_workers_the_session_authorized() -> None:
    pool = Pool()
    miner = pool.connect()
    miner.start("acme.w1")
    stale = ["acme.w1", "dead", "00000000", "6553f100", "00000000"]
    assert error_code(miner.submit(stale)) == 21
    assert pool.sink.rejects == {"stale": 1}
    # A submit without a worker name, after one that had it: not counted against acme.w1.
    assert error_code(miner.submit([7, "dead", "00000000", "6553f100", "00000000"])) == 20
    # A name the session never authorized: refused (24), counted against no worker.
    assert error_code(miner.submit(["acme.fresh", *stale[1:]])) == 24
    assert pool.sink.rejects == {"stale": 1}


def test_a_flood_of_stale_shares_closes_the_session() -> None:
    pool = Pool(settings(stratum={"ban": {"invalid_shares": 10, "stale_weight": 0.1}}))
    miner = pool.connect()
    miner.start("acme.w1")
    stale = b'{"id": 1, "method": "mining.submit", "params": ["acme.w1", "dead", "00000000", "6553f100", "00000000"]}\n'  # noqa: E501
    replies = miner.send_raw(stale * 99)
    assert len(replies) == 99 and all(error_code(r) == 21 for r in replies)
    assert not miner.closed  # a few stale shares after a block are normal
    miner.send_raw(stale * 2)
    assert miner.closed and pool.server.stats["closed_invalid"] == 1


# --- 5. NAT-friendly bans ------------------------------------------------------------------

FLOOD = b'{"id": 1, "method": "mining.submit", "params": ["%s", "dead", "zz", "6553f100", "0"]}\n'


def flood(miner: Miner, worker: str, count: int = 5) -> None:
    miner.send_raw(FLOOD.replace(b"%s", worker.encode()) * count)


def small_bans(**extra: Any) -> Pool:
    return Pool(
        settings(
            stratum={
                "ban": {"invalid_shares": 5, "sessions_per_address": 3, "ban_s": 600},
                **extra,
            }
        )
    )


def test_one_faulty_asic_closes_its_own_session_not_the_site() -> None:
    pool = small_bans()
    site = "203.0.113.10"
    neighbour = pool.connect(site)
    neighbour.start("acme.good")
    faulty = pool.connect(site)
    faulty.start("acme.bad")
    flood(faulty, "acme.bad")
    assert faulty.closed and not neighbour.closed
    assert pool.server.gate.banned() == {}
    again = pool.connect(site)  # the site can still connect ...
    assert not again.closed
    again.start("acme.other")
    assert neighbour.submit(neighbour.find_share(no_block))["result"] is True  # ... and mine


def test_the_same_worker_closed_again_and_again_is_banned_at_that_address_only() -> None:
    pool = small_bans()
    site = "203.0.113.10"
    neighbour = pool.connect(site)
    neighbour.start("acme.good")
    for _ in range(3):
        faulty = pool.connect(site)
        faulty.start("acme.bad")
        flood(faulty, "acme.bad")
        assert faulty.closed
    assert pool.server.stats["bans_worker"] == 1 and pool.server.gate.banned() == {}
    retry = pool.connect(site)
    retry.request("mining.subscribe", [])
    reply = retry.request("mining.authorize", ["acme.bad", "x"])
    assert reply["result"] is False and "banned" in reply["error"][1]
    elsewhere = pool.connect("198.51.100.7")  # the same name from another address: fine
    elsewhere.start("acme.bad")
    assert not neighbour.closed
    pool.clock.advance(601)
    retry.request("mining.authorize", ["acme.bad", "x"])
    assert "acme.bad" in retry.session.workers  # the ban is over


def test_several_misbehaving_workers_ban_the_address() -> None:
    pool = small_bans()
    site = "203.0.113.10"
    neighbour = pool.connect(site)
    neighbour.start("acme.good")
    for name in ("acme.a", "acme.b", "acme.c"):
        miner = pool.connect(site)
        miner.start(name)
        flood(miner, name)
    assert site in pool.server.gate.banned() and neighbour.closed
    assert pool.connect(site).closed  # refused while banned
    assert pool.server.stats["refused_banned"] == 1


def test_unauthorized_garbage_from_several_sessions_bans_the_address() -> None:
    pool = small_bans()
    for _ in range(3):
        miner = pool.connect("192.0.2.66")
        miner.send_raw(b"\x16\x03\x01 not stratum\n" * 5)
        assert miner.closed
    assert "192.0.2.66" in pool.server.gate.banned()


def test_trusted_networks_are_never_banned() -> None:
    pool = small_bans(trusted_networks=["203.0.113.0/28"])
    site = "203.0.113.10"
    for name in ("acme.a", "acme.b", "acme.c", "acme.d"):
        miner = pool.connect(site)
        miner.start(name)
        flood(miner, name)
        assert miner.closed  # the session still is
    assert pool.server.gate.banned() == {}
    assert pool.server.gate.ban(site, 60, "by hand") is False
    assert not pool.connect(site).closed


# --- 6. PROXY protocol trust ---------------------------------------------------------------


def proxied_pool(**stratum: Any) -> Pool:
    return Pool(
        settings(
            listener={"proxy_protocol": True, "trusted_proxies": ["10.1.1.1", "10.2.0.0/16"]},
            stratum=stratum,
        )
    )


def proxy_connection(pool: Pool, peer: str) -> tuple[StratumProtocol, StringTransport]:
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 5000))
    proto = StratumProtocol(pool.server, pool.server.settings.listeners[0])
    proto.makeConnection(transport)
    return proto, transport


def test_a_proxy_header_is_believed_only_from_a_trusted_proxy() -> None:
    pool = proxied_pool()
    header = b"PROXY TCP4 192.0.2.99 10.1.1.1 50000 3333\r\n"
    subscribe = b'{"id": 1, "method": "mining.subscribe", "params": []}\n'
    proto, transport = proxy_connection(pool, "198.51.100.1")  # not a trusted proxy
    assert transport.disconnecting
    proto.dataReceived(header + subscribe)
    assert transport.value() == b"" and proto.session is None
    assert pool.server.stats["refused_untrusted_proxy"] == 1
    for balancer in ("10.1.1.1", "10.2.44.3"):
        proto, transport = proxy_connection(pool, balancer)
        proto.dataReceived(header + subscribe)
        assert proto.peer == "192.0.2.99" and proto.session is not None
        assert json.loads(transport.value())["id"] == 1


def test_connections_waiting_for_their_proxy_header_count_against_the_cap() -> None:
    pool = proxied_pool(max_connections_per_ip=2)
    waiting = [proxy_connection(pool, "10.1.1.1") for _ in range(2)]
    assert not any(t.disconnecting for _, t in waiting)
    _, third = proxy_connection(pool, "10.1.1.1")
    assert third.disconnecting and pool.server.stats["refused_per_ip"] == 1
    proto, _ = waiting[0]
    proto.dataReceived(b"PROXY TCP4 192.0.2.99 10.1.1.1 50000 3333\r\n")
    _, fourth = proxy_connection(pool, "10.1.1.1")  # one has named its miner: room again
    assert not fourth.disconnecting


def test_a_proxy_listener_needs_its_trusted_proxies() -> None:
    from pool.config import ConfigError

    with pytest.raises(ConfigError, match=r"listeners\[0\]\.trusted_proxies: missing"):
        settings(listener={"proxy_protocol": True})
    with pytest.raises(ConfigError, match=r"trusted_proxies\[1\]: not an address"):
        settings(listener={"proxy_protocol": True, "trusted_proxies": ["10.0.0.1", "lb.local"]})
    with pytest.raises(ConfigError, match=r"stratum\.trusted_networks\[0\]"):
        settings(stratum={"trusted_networks": ["300.1.2.3/8"]})


# --- 7. Lines after a ban or close ---------------------------------------------------------


def test_no_line_is_answered_after_the_session_is_closed_mid_packet() -> None:
    pool = small_bans()
    miner = pool.connect()
    miner.start("acme.w1")
    after = b'{"id": 99, "method": "mining.subscribe", "params": []}\n'
    replies = miner.send_raw(FLOOD.replace(b"%s", b"acme.w1") * 5 + after * 3)
    assert miner.closed
    assert len(replies) == 5 and all(r["id"] == 1 for r in replies)


# --- 8. Replies to closed connections ------------------------------------------------------


class SlowSink:
    """A ledger whose commits the test fires by hand."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred[None]] = []

    def record(self, share: ShareRecord) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.pending.append(d)
        return d

    def record_block(self, *args: Any) -> None:
        return None

    def count_reject(self, *args: Any) -> None:
        pass


def test_a_reply_ready_after_the_connection_is_gone_is_dropped_and_counted() -> None:
    pool = Pool()
    sink = SlowSink()
    pool.server.sink = sink
    miner = pool.connect()
    miner.start()
    miner.proto.dataReceived(
        json.dumps(
            {"id": 5, "method": "mining.submit", "params": miner.find_share(no_block)}
        ).encode()
        + b"\n"
    )
    miner.proto.connectionLost()
    miner.transport.clear()
    sink.pending[0].callback(None)  # the commit is done: the miner has gone
    sink.pending.clear()
    assert miner.transport.value() == b""
    assert pool.server.stats["replies_dropped"] == 1


# --- 9. Deactivated tenants ----------------------------------------------------------------


def test_a_deactivated_tenants_sessions_are_told_and_its_shares_refused() -> None:
    pool = Pool()
    acme = pool.connect("10.0.0.1")
    acme.start("acme.w1")
    mixed = pool.connect("10.0.0.2")  # a proxy with both tenants' workers
    mixed.start("borealis.w1")
    assert mixed.request("mining.authorize", ["acme.w2", "x"])["result"] is True
    share = mixed.find_share(no_block)
    pool.server.set_tenants({"borealis"})  # the writer's refresh: acme is inactive
    reconnect = acme.read()
    assert [m["method"] for m in reconnect] == ["client.reconnect"] and acme.closed
    assert not mixed.closed and list(mixed.session.workers) == ["borealis.w1"]
    reply = mixed.submit(["acme.w2", *share[1:]])
    assert error_code(reply) == 24
    assert mixed.submit(["borealis.w1", *share[1:]])["result"] is True
    assert error_code(pool.connect().request("mining.authorize", ["acme.w3", "x"])) == 24


# --- 10. Idle timer ------------------------------------------------------------------------


def test_only_a_whole_well_formed_request_resets_the_idle_timer() -> None:
    pool = Pool(settings(stratum={"idle_timeout_s": 10}))
    dribbler, talker, garbler = (pool.connect(f"10.0.0.{i}") for i in (1, 2, 3))
    for miner in (dribbler, talker, garbler):
        miner.start()
    for _ in range(12):
        dribbler.proto.dataReceived(b"{")  # a byte a second, never a line
        garbler.proto.dataReceived(b"[1, 2]\n")  # lines, but not requests
        talker.request("mining.extranonce.subscribe", [])
        pool.sweep()
    assert dribbler.closed and garbler.closed and not talker.closed
    assert pool.server.stats["closed_idle"] == 2


# --- 11. Admin kick ------------------------------------------------------------------------


def test_kick_matches_every_worker_a_session_authorized() -> None:
    pool = Pool()
    proxy = pool.connect()
    proxy.start("acme.w1")
    assert proxy.request("mining.authorize", ["acme.w2", "x"])["result"] is True
    other = pool.connect("10.0.0.9")
    other.start("acme.w3")
    api = Api(pool.server, None, None, pool.settings, HashrateHistory())
    assert api.kick({"worker": "acme.w2"}) == {"kicked": 1}  # authorized, never submitted
    assert proxy.closed and not other.closed


# --- 12. share-check agrees with the server ------------------------------------------------


@pytest.mark.parametrize("kind", ["block", "low"])
def test_share_check_gives_the_servers_verdict(kind: str) -> None:
    """A block below the session's difficulty is accepted by both; a share below it that is
    no block is refused by both, with the same reason."""
    pool = Pool(settings(listener={"difficulty": {"start": 64, "min": 1, "max": 1e6}}))
    miner = pool.connect()
    miner.start()
    params = miner.find_share(is_block if kind == "block" else no_block)
    reply = miner.submit(params)
    job = pool.job
    notify = Notify(
        job.job_id,
        job.work.prevhash,
        job.work.coinb1,
        job.work.coinb2,
        job.work.branch,
        job.work.version,
        job.work.nbits,
        job.template.curtime,
        True,
    )
    result = check_share(notify, miner.extranonce1, parse_submit(params, 4), 64.0, 0)
    if kind == "block":
        assert reply["result"] is True and result["verdict"] == "accepted"
        assert result["meets_network"] and not result["meets_difficulty"]
    else:
        assert error_code(reply) == 23 and result["verdict"] == "rejected"
        assert reply["error"][1] == result["reason"]
    assert result["share_target"] == f"{difficulty_to_target(64):064x}"
