"""A server's lifecycle as its miners see it, in memory: shutdown (`client.reconnect` to every
session, the listeners closed), a reload (listeners and tenants added and removed, no miner
dropped) and the admin's ban, unban and kick.

The pools listen on the harness's in-memory reactor: miners connect through a listener's
factory, and a closed listener refuses them.
"""

from __future__ import annotations

from typing import Any

import pytest

from pool.api.http import ApiError
from pool.config import Settings
from tests.helpers import TEST_DIFFICULTY, assert_accepted, assert_rejected
from tests.unit.stratum_harness import Miner, Pool, settings

PUBLIC_HOST = "pool.north.example"
WAIT_S = 3
FIXED_PORT = 3334


def mines(miner: Miner) -> None:
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


def listener(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "difficulty": dict(TEST_DIFFICULTY), **extra}


# --- shutdown --------------------------------------------------------------------------------


def test_shutdown_sends_client_reconnect_to_every_session_and_closes_the_listeners() -> None:
    config = settings(
        listeners=[
            listener("public-fixed", port=FIXED_PORT, public_host=PUBLIC_HOST),
            listener("public-any", public_host=PUBLIC_HOST),
            listener("private"),
        ],
        stratum={"reconnect_wait_s": WAIT_S},
    )
    pool = Pool(config, listen=True)
    any_port = pool.port("public-any").number
    groups: dict[str, list[Miner]] = {}
    for name, count in (("public-fixed", 3), ("public-any", 1), ("private", 2)):
        groups[name] = [pool.connect(f"10.0.0.{i}", listener=name) for i in range(count)]
        for miner in groups[name]:
            miner.start()
    lone = pool.connect("10.0.0.9", listener="private")  # subscribed, no worker: no work yet
    lone.subscribe("t/1")
    groups["private"].append(lone)
    unsubscribed = pool.connect("10.0.0.10", listener="private")
    done = pool.server.shutdown()
    fired: list[Any] = []
    done.addCallback(fired.append)
    assert fired == [None]
    expected = {
        "public-fixed": [PUBLIC_HOST, FIXED_PORT, WAIT_S],
        "public-any": [PUBLIC_HOST, any_port, WAIT_S],
        "private": [],
    }
    for name, miners in groups.items():
        for miner in miners:
            miner.read()
            [reconnect] = [m for m in miner.pushes if m["method"] == "client.reconnect"]
            assert reconnect == {"id": None, "method": "client.reconnect",
                                 "params": expected[name]}  # fmt: skip
            assert miner.closed
    assert unsubscribed.read() == []  # no session, nothing to tell
    assert all(not port.listening for port in pool.reactor.ports)
    with pytest.raises(ConnectionRefusedError):
        pool.connect(listener="private")


# --- reload ----------------------------------------------------------------------------------


def reload(pool: Pool, config: Settings) -> dict[str, int]:
    ports: list[dict[str, int]] = []
    pool.server.reload(config).addCallback(ports.append)
    assert len(ports) == 1, "the reload did not finish"
    return ports[0]


def test_a_reload_adds_and_removes_listeners_and_tenants_without_dropping_miners() -> None:
    first = listener("first", site="north")
    pool = Pool(settings(listeners=[first], tenants=("acme",)), listen=True)
    port = pool.port("first").number
    miner = pool.connect("10.0.0.1", listener="first")
    miner.start("acme.rig1")
    mines(miner)
    refused = pool.connect("10.0.0.2", listener="first")
    refused.subscribe("t/1")
    assert_rejected(refused.request("mining.authorize", ["initech.rig1", "x"]), 24)

    # Add a listener on another site and a tenant.
    second = listener("second", site="south", difficulty={**TEST_DIFFICULTY, "start": 0.5})
    ports = reload(pool, settings(listeners=[first, second], tenants=("acme", "initech")))
    assert ports["first"] == port and set(ports) == {"first", "second"}  # the same socket
    newcomer = pool.connect("10.0.0.3", listener="second")
    newcomer.start("initech.rig1")
    assert newcomer.session.listener.site == "south" and newcomer.difficulties == [0.5]
    assert newcomer.request("mining.suggest_difficulty", [1e-10])["result"] is True
    mines(newcomer)
    mines(miner)  # the miner connected before the reload mines on
    assert refused.request("mining.authorize", ["initech.rig1", "x"])["result"] is True

    # Remove the first listener: it stops accepting, its connected miner stays.
    ports = reload(pool, settings(listeners=[second], tenants=("acme", "initech")))
    assert set(ports) == {"second"}
    mines(miner)
    assert not miner.closed
    with pytest.raises(ConnectionRefusedError):
        pool.connect(listener="first")
    assert pool.sink.shares == {("acme", "rig1"): 3, ("initech", "rig1"): 1}


def test_a_reload_gives_new_sessions_the_new_settings_and_keeps_the_old_ones() -> None:
    pool = Pool(settings(listeners=[listener("main")]), listen=True)
    before = pool.connect("10.0.0.1", listener="main")
    before.start()
    changed = listener("main", difficulty={**TEST_DIFFICULTY, "start": 2.0})
    reload(pool, settings(listeners=[changed], stratum={"max_connections_per_ip": 1}))
    after = pool.connect("10.0.0.2", listener="main")
    after.start()
    assert before.difficulties == [TEST_DIFFICULTY["start"]] and after.difficulties == [2.0]
    mines(before)
    # The stratum limits follow the new config: a second connection from 10.0.0.2 is refused.
    assert pool.connect("10.0.0.2", listener="main").closed


# --- admin ban, unban and kick ---------------------------------------------------------------


def test_an_admin_ban_closes_the_addresses_sessions_until_unbanned() -> None:
    pool = Pool(settings(stratum={"trusted_networks": ["10.9.0.0/16"]}), listen=True)
    banned = [pool.connect("192.0.2.1") for _ in range(2)]
    banned[0].start()
    banned[1].request("mining.configure", [["version-rolling"], {}])  # not subscribed yet
    other = pool.connect("192.0.2.2")
    other.start()
    api = pool.api
    assert api.ban({"ip": "192.0.2.1", "seconds": 60}) == {"banned": "192.0.2.1", "seconds": 60}
    assert all(m.closed for m in banned) and not other.closed
    pool.settle()
    assert pool.connect("192.0.2.1").closed
    assert pool.banned() == {"192.0.2.1": 60.0}
    refusals: list[tuple[dict[str, Any], int]] = [
        ({"ip": "nonsense"}, 400),
        ({"ip": "192.0.2.1", "seconds": -1}, 400),
        ({"ip": "10.9.1.1"}, 409),  # trusted: never banned
    ]
    for bad, status in refusals:
        with pytest.raises(ApiError) as info:
            api.ban(bad)
        assert info.value.status == status, info.value
    assert api.unban({"ip": "192.0.2.1"}) == {"unbanned": "192.0.2.1", "was_banned": True}
    back = pool.connect("192.0.2.1")
    back.start()
    mines(back)
    assert api.unban({"ip": "192.0.2.1"})["was_banned"] is False


def test_an_admin_ban_ends_by_itself() -> None:
    pool = Pool(listen=True)
    pool.api.ban({"ip": "192.0.2.1", "seconds": 5})
    pool.advance(4)
    assert pool.connect("192.0.2.1").closed
    pool.advance(2)
    assert pool.banned() == {} and not pool.connect("192.0.2.1").closed


def test_kick_by_worker_or_session_closes_only_that_session() -> None:
    pool = Pool(listen=True)
    victim, quiet, other = (pool.connect(f"10.0.0.{i}") for i in range(3))
    victim.start("acme.kickme")
    mines(victim)
    quiet.start("acme.quiet")
    other.start("acme.other")
    api = pool.api
    assert api.kick({"worker": "acme.kickme"}) == {"kicked": 1}
    assert victim.closed and not quiet.closed and not other.closed
    pool.settle()
    assert api.kick({"session": quiet.extranonce1.hex().upper()}) == {"kicked": 1}
    assert quiet.closed and not other.closed
    pool.settle()
    for data, status in [({"worker": "acme.kickme"}, 404), ({}, 400)]:
        with pytest.raises(ApiError) as info:
            api.kick(data)  # gone; neither a worker nor a session
        assert info.value.status == status, info.value
