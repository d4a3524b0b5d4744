"""Limits and time, in memory on a Clock: connections per address, the subscribe and idle
timeouts, invalid-share floods that close sessions and then ban the address (and the ban's
end), the PROXY header's timeout, and vardiff's retargets (a fast share stream raises the
difficulty, an idle session's halves, never below the miner's minimum).

The pools here listen on the harness's in-memory reactor, so the server's own sweep runs
once a second as `Pool.advance` moves the clock.
"""

from __future__ import annotations

import json

from pool.stratum.protocol import PROXY_HEADER_TIMEOUT_S
from tests.helpers import TEST_DIFFICULTY, assert_accepted, assert_rejected, error_code
from tests.unit.stratum_harness import Miner, Pool, settings

PER_IP = 3
SUBSCRIBE_TIMEOUT_S = 1.0
IDLE_S = 2.0
BAN_AFTER = 5
BAN_S = 2.0
SESSIONS_PER_ADDRESS = 2
STALE_WEIGHT = 0.1


def limited() -> Pool:
    """The limits of tests/e2e/test_stratum_limits.py's server."""
    return Pool(
        settings(
            listener={"difficulty": dict(TEST_DIFFICULTY)},
            stratum={
                "max_connections_per_ip": PER_IP,
                "subscribe_timeout_s": SUBSCRIBE_TIMEOUT_S,
                "idle_timeout_s": IDLE_S,
                "ban": {
                    "invalid_shares": BAN_AFTER,
                    "window_s": 60,
                    "ban_s": BAN_S,
                    "stale_weight": STALE_WEIGHT,
                    "sessions_per_address": SESSIONS_PER_ADDRESS,
                },
            },
            tenants=("acme", "globex"),
        ),
        listen=True,
    )


def refused(pool: Pool, peer: str) -> bool:
    """A new connection from `peer` is closed at once, answering nothing."""
    miner = pool.connect(peer)
    return miner.closed and miner.send_raw(b'{"id": 1, "method": "mining.subscribe"}\n') == []


def test_connections_per_address_are_capped() -> None:
    pool = limited()
    held = [pool.connect("10.0.0.21") for _ in range(PER_IP)]
    for miner in held:
        miner.subscribe("t/1")
    assert refused(pool, "10.0.0.21"), "a connection above max_connections_per_ip was served"
    assert pool.server.stats["refused_per_ip"] == 1
    # Another address is not affected; the held ones still work.
    pool.connect("10.0.0.22").subscribe("t/1")
    for miner in held:
        assert miner.request("mining.extranonce.subscribe", [])["result"] is True
    # A freed slot can be used again.
    held[0].hang_up()
    assert pool.connect("10.0.0.21").subscribe("t/1")[1]
    assert refused(pool, "10.0.0.21")


def test_connection_that_does_not_subscribe_is_closed() -> None:
    pool = limited()
    idle, configured, subscribed = (pool.connect("10.0.0.23") for _ in range(3))
    configured.request("mining.configure", [["version-rolling"], {}])
    assert configured.request("mining.authorize", ["acme.rig1", "x"])["result"] is True
    subscribed.subscribe("t/1")
    pool.advance(SUBSCRIBE_TIMEOUT_S)
    assert not idle.closed, "closed before the subscribe timeout"
    pool.advance(1)
    assert idle.closed, "an idle connection was not closed"
    assert configured.closed, "configure/authorize without subscribe kept it open"
    assert not subscribed.closed
    assert pool.server.stats["closed_unsubscribed"] == 2
    assert subscribed.request("mining.extranonce.subscribe", [])["result"] is True


def test_a_silent_session_is_closed_and_a_talking_one_stays() -> None:
    pool = limited()
    silent, talker = pool.connect("10.0.0.1"), pool.connect("10.0.0.2")
    for miner in (silent, talker):
        miner.start("acme.idle")
    for _ in range(5):
        assert talker.request("mining.extranonce.subscribe", [])["result"] is True
        pool.advance(1)
    assert silent.closed and not talker.closed
    assert pool.server.stats["closed_idle"] == 1 and silent.proto.session is None  # it is gone
    assert_accepted(talker.submit(talker.find_share(talker.accepted)))


def flood_until_closed(miner: Miner) -> None:
    """Invalid shares (error 20) until the pool closes the session."""
    worker = next(iter(miner.session.workers))
    for _ in range(BAN_AFTER):
        assert not miner.closed
        miner.send_raw(
            b'{"id": 99, "method": "mining.submit", "params": ["%s"]}\n' % worker.encode()
        )
    assert miner.closed, "the flooding session was not closed"
    miner.pool.settle()


def test_invalid_share_flood_closes_the_session_then_bans_the_address() -> None:
    pool = limited()
    site = "203.0.113.24"  # a farm site behind one NAT address
    flooder, neighbour = pool.connect(site), pool.connect(site)
    flooder.start("acme.rig1")
    neighbour.start("acme.neighbour")
    bystander = pool.connect("198.51.100.25")
    bystander.start("globex.bystander")
    # Stale shares (unknown job) weigh little: 9 of them are less than one invalid share.
    for _ in range(9):
        share = flooder.find_share(flooder.accepted)
        assert_rejected(flooder.submit([share[0], "deadbeef0", *share[2:]]), 21)
    for _ in range(BAN_AFTER - 1):
        assert_rejected(flooder.submit(flooder.find_share(flooder.low)), 23)
    assert_accepted(flooder.submit(flooder.find_share(flooder.accepted)))
    assert not flooder.closed
    flooder.send_raw(b'{"id": 99, "method": "mining.submit", "params": ["acme.rig1"]}\n')
    assert flooder.closed, "the flooding session was not closed"
    pool.settle()
    # One faulty machine: its session is closed, the site is not banned.
    assert pool.banned() == {}
    assert_accepted(neighbour.submit(neighbour.find_share(neighbour.accepted)))
    newcomer = pool.connect(site)
    newcomer.start("acme.newcomer")
    assert_accepted(newcomer.submit(newcomer.find_share(newcomer.accepted)))
    # Sessions of a second worker from the address misbehave too: now the address is banned.
    second = pool.connect(site)
    second.start("acme.rig2")
    flood_until_closed(second)
    assert neighbour.closed and newcomer.closed, "the banned address's sessions stayed open"
    assert refused(pool, site), "a banned address could connect again"
    assert pool.server.stats["bans_address"] == 1 and site in pool.banned()
    assert_accepted(bystander.submit(bystander.find_share(bystander.accepted)))
    # The ban expires.
    pool.advance(BAN_S - 1)
    assert refused(pool, site)
    pool.advance(1.5)
    assert pool.banned() == {}
    back = pool.connect(site)
    back.start()
    assert_accepted(back.submit(back.find_share(back.accepted)))


def test_malformed_message_flood_closes_sessions_then_bans_the_address() -> None:
    pool = limited()
    other = pool.connect("198.51.100.27")
    other.start()
    for attempt in range(SESSIONS_PER_ADDRESS):
        noisy = pool.connect("203.0.113.26")
        noisy.subscribe("t/1")
        replies = noisy.send_raw(b"\xff\xfe not json\n" * (BAN_AFTER + 3))
        assert len(replies) == BAN_AFTER and all(error_code(r) == 20 for r in replies)
        assert noisy.closed, "the session sending garbage was not closed"
        pool.settle()
        if attempt == 0:  # one session only: closed, the address not banned
            assert not refused(pool, "203.0.113.26")
            pool.settle()
    assert refused(pool, "203.0.113.26")
    assert_accepted(other.submit(other.find_share(other.accepted)))


# --- vardiff ---------------------------------------------------------------------------------

FAST_START = 1.5e-10  # below 2^-32: every hash is a share
IDLE_START = 4.0


def vardiff_pool() -> Pool:
    """The listeners of tests/e2e/test_stratum_vardiff.py's server: `fast` aims at a share
    every 0.5 s, `idle` closes a window after 1 s; no grace window."""
    fast = {
        "name": "fast",
        "difficulty": {"start": FAST_START, "min": 1e-12, "max": 16},
        "vardiff": {"enabled": True, "target_share_interval_s": 0.5, "min_shares": 12,
                    "max_window_s": 60, "tolerance": 2},
    }  # fmt: skip
    idle = {
        "name": "idle",
        "difficulty": {"start": IDLE_START, "min": 1e-12, "max": 16},
        "vardiff": {"enabled": True, "target_share_interval_s": 5, "max_window_s": 1},
    }
    config = settings(listeners=[fast, idle], stratum={"difficulty_grace_s": 0})
    return Pool(config, listen=True)


def test_fast_shares_raise_the_difficulty_and_later_shares_must_meet_it() -> None:
    pool = vardiff_pool()
    miner = pool.connect(listener="fast")
    miner.start()
    assert miner.difficulties == [FAST_START]
    for _ in range(11):
        assert_accepted(miner.submit(miner.find_share(miner.accepted)))
        pool.clock.advance(0.1)
    assert miner.difficulties == [FAST_START]
    # The twelfth share closes the window (12 shares in 1.1 s, not 6 s): it follows the reply.
    twelfth = {"id": 12, "method": "mining.submit", "params": miner.find_share(miner.accepted)}
    replies = miner.send_raw(json.dumps(twelfth).encode() + b"\n")
    assert [r.get("method") for r in replies] == [None, "mining.set_difficulty"]
    raised = miner.difficulties[-1]
    assert raised > 2 * FAST_START, miner.difficulties
    assert raised == float(f"{raised:.3g}"), "below 1: three significant digits"
    # A share that met the old difficulty but not the new one is refused (no grace here).
    pool.clock.advance(0.1)
    assert_rejected(miner.submit(miner.find_share(miner.low)), 23)
    # One that meets the new difficulty is accepted (a block, if it is one).
    assert_accepted(miner.submit(miner.find_share(lambda v, n: v <= miner.session.share_target)))


def test_idle_session_difficulty_halves() -> None:
    pool = vardiff_pool()
    miner = pool.connect(listener="idle")
    miner.start()
    assert miner.difficulties == [IDLE_START]
    pool.clock.advance(0.9)  # the sweep runs each second; the window is 1 s
    miner.read()
    assert miner.difficulties == [IDLE_START]
    pool.advance(1)
    miner.read()
    assert miner.difficulties == [IDLE_START, IDLE_START / 2]
    pool.advance(1)  # one halving per empty window, no deeper
    miner.read()
    assert miner.difficulties == [IDLE_START, IDLE_START / 2, IDLE_START / 4]


def test_vardiff_never_goes_below_minimum_difficulty() -> None:
    pool = vardiff_pool()
    miner = pool.connect(listener="idle")
    reply = miner.request(
        "mining.configure", [["minimum-difficulty"], {"minimum-difficulty.value": 3}]
    )
    assert reply["result"] == {"minimum-difficulty": True}
    miner.start()
    pool.advance(10)
    miner.read()
    assert miner.difficulties == [IDLE_START, 3], "vardiff went below minimum-difficulty"


def test_a_proxy_listener_closes_a_connection_that_never_names_its_miner() -> None:
    config = settings(
        listener={"proxy_protocol": True, "trusted_proxies": ["10.1.1.1"]},
        stratum={"max_connections_per_ip": 1},
    )
    pool = Pool(config, listen=True)
    waiting = pool.connect("10.1.1.1")  # the balancer's connection, no header yet
    assert not waiting.closed
    assert pool.connect("10.1.1.1").closed  # it counts against the balancer's address
    pool.advance(PROXY_HEADER_TIMEOUT_S - 1)
    assert not waiting.closed
    pool.advance(1)
    assert waiting.closed and waiting.read() == []
    named = pool.connect("10.1.1.1")  # its count is released
    named.proto.dataReceived(b"PROXY TCP4 192.0.2.99 10.1.1.1 50000 3333\r\n")
    named.start()
    assert named.proto.peer == "192.0.2.99" and not named.closed
