"""Connection limits, the subscribe timeout, invalid-share bans and job refreshes, end to end.

One `farmpool serve` process with small limits (3 connections per address, a 1 s subscribe
timeout, a session closed after 5 invalid shares or messages, its address banned for 2 s once
sessions of 2 different workers from it were closed, a new job every second). Limits and bans
are per address, so each test talks from its own loopback address (127.0.0.N) and the tests
do not disturb each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.farmpool_serve import ServeProcess
from tests.e2e.stratum_client import StratumClient

PER_IP = 3
SUBSCRIBE_TIMEOUT_S = 1.0
BAN_AFTER = 5
BAN_S = 2.0
SESSIONS_PER_ADDRESS = 2
STALE_WEIGHT = 0.1


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    config["node"]["refresh_interval_s"] = 1
    config["listeners"] = [
        {
            "name": "limits",
            "site": "south",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": {"start": 3e-10, "min": 1e-11, "max": 16},
            "vardiff": {"enabled": False},
        }
    ]
    config["stratum"] = {
        "max_connections_per_ip": PER_IP,
        "subscribe_timeout_s": SUBSCRIBE_TIMEOUT_S,
        "ban": {
            "invalid_shares": BAN_AFTER,
            "window_s": 60,
            "ban_s": BAN_S,
            "stale_weight": STALE_WEIGHT,
            "sessions_per_address": SESSIONS_PER_ADDRESS,
        },
    }
    return serve_factory(config)


@pytest.fixture
def connect(server: ServeProcess) -> Iterator[Callable[[str], StratumClient]]:
    clients: list[StratumClient] = []

    def open_client(source: str) -> StratumClient:
        client = StratumClient(server.port("limits"), source=source, log=server.log_tail)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
    assert server.running(), f"farmpool serve died:\n{server.log_tail()}"


def accepted(reply: dict[str, Any]) -> bool:
    return reply["result"] is True and reply["error"] is None


def code(reply: dict[str, Any]) -> int | None:
    return None if reply["error"] is None else int(reply["error"][0])


def refused(connect: Callable[[str], StratumClient], source: str) -> bool:
    """The server closes a new connection from `source` at once, answering nothing."""
    try:
        client = connect(source)
        client.send_raw(b'{"id": 1, "method": "mining.subscribe", "params": []}\n')
    except OSError:  # reset during the handshake or on the first write
        return True
    return client.wait_closed(2.0) and not client.lines


def test_connections_per_address_are_capped(connect: Callable[[str], StratumClient]) -> None:
    held = [connect("127.0.0.21") for _ in range(PER_IP)]
    for client in held:
        client.subscribe("e2e/1")
    assert refused(connect, "127.0.0.21"), "a connection above max_connections_per_ip was served"
    # Another address is not affected; the held ones still work.
    other = connect("127.0.0.22")
    other.subscribe("e2e/1")
    for client in held:
        assert client.call("mining.extranonce.subscribe", []) is True
    # A freed slot can be used again.
    held[0].close()
    time.sleep(0.3)
    again = connect("127.0.0.21")
    again.subscribe("e2e/1")
    assert again.extranonce1


def test_connection_that_does_not_subscribe_is_closed(
    connect: Callable[[str], StratumClient],
) -> None:
    started = time.monotonic()
    idle = connect("127.0.0.23")
    configured = connect("127.0.0.23")
    subscribed = connect("127.0.0.23")
    configured.configure(["version-rolling"], {})
    assert configured.authorize()["result"] is True
    subscribed.subscribe("e2e/1")
    assert idle.wait_closed(3.5), "an idle connection was not closed"
    closed_after = time.monotonic() - started
    assert SUBSCRIBE_TIMEOUT_S - 0.1 <= closed_after <= SUBSCRIBE_TIMEOUT_S + 2.1, closed_after
    assert configured.wait_closed(1.0), "configure/authorize without subscribe kept it open"
    # The subscribed one is still open well past the timeout.
    subscribed.poll(max(0.0, started + 2.5 - time.monotonic()))
    assert subscribed.call("mining.extranonce.subscribe", []) is True


def flood_until_closed(client: StratumClient) -> None:
    """Invalid shares (error 20) until the pool closes the session."""
    for _ in range(BAN_AFTER):
        client.send({"id": 99, "method": "mining.submit", "params": [client.worker]})
    assert client.wait_closed(3.0), "the flooding session was not closed"


def test_invalid_share_flood_closes_the_session_then_bans_the_address(
    connect: Callable[[str], StratumClient],
) -> None:
    site = "127.0.0.24"  # a farm site behind one NAT address
    flooder = connect(site)
    flooder.start("acme.rig1")
    neighbour = connect(site)
    neighbour.start("acme.neighbour")
    bystander = connect("127.0.0.25")
    bystander.start("globex.bystander")
    # Stale shares (unknown job) weigh little: 9 of them are less than one invalid share.
    for _ in range(9):
        share = flooder.find_accepted().params(flooder.worker)
        share[1] = "deadbeef0"
        assert code(flooder.request("mining.submit", share)) == 21
    for _ in range(BAN_AFTER - 1):
        assert code(flooder.submit(flooder.find_low())) == 23
    assert accepted(flooder.submit(flooder.find_accepted()))
    flooder.send({"id": 99, "method": "mining.submit", "params": [flooder.worker]})
    assert flooder.wait_closed(3.0), "the flooding session was not closed"
    # One faulty machine: its session is closed, the site is not banned.
    assert accepted(neighbour.submit(neighbour.find_accepted()))
    newcomer = connect(site)
    newcomer.start("acme.newcomer")
    assert accepted(newcomer.submit(newcomer.find_accepted()))
    # Sessions of a second worker from the address misbehave too: now the address is banned.
    second = connect(site)
    second.start("acme.rig2")
    banned_at = time.monotonic()
    flood_until_closed(second)
    assert neighbour.wait_closed(3.0), "the banned address's other sessions stayed open"
    assert refused(connect, site), "a banned address could connect again"
    assert accepted(bystander.submit(bystander.find_accepted()))
    # The ban expires.
    time.sleep(max(0.0, banned_at + BAN_S + 0.3 - time.monotonic()))
    back = connect(site)
    back.start()
    assert accepted(back.submit(back.find_accepted()))


def test_malformed_message_flood_closes_sessions_then_bans_the_address(
    connect: Callable[[str], StratumClient],
) -> None:
    other = connect("127.0.0.27")
    other.start()
    for attempt in range(SESSIONS_PER_ADDRESS):
        noisy = connect("127.0.0.26")
        noisy.subscribe("e2e/1")
        for _ in range(BAN_AFTER):
            noisy.send_raw(b"\xff\xfe not json\n")
        assert noisy.wait_closed(3.0), "the session sending garbage was not closed"
        if attempt == 0:  # one session only: closed, the address not banned
            assert not refused(connect, "127.0.0.26")
    assert refused(connect, "127.0.0.26")
    assert accepted(other.submit(other.find_accepted()))


def test_refresh_jobs_are_not_clean_and_older_jobs_stay_valid(
    connect: Callable[[str], StratumClient],
) -> None:
    client = connect("127.0.0.28")
    first = client.start()
    refreshed = client.push("mining.notify", timeout=3.0)
    assert refreshed["params"][8] is False
    assert refreshed["params"][1] == first.prevhash
    assert refreshed["params"][0] != first.job_id
    assert client.job is not None and client.job.job_id == refreshed["params"][0]
    assert accepted(client.submit(client.find_accepted(job=first)))
    assert accepted(client.submit(client.find_accepted()))


def test_same_header_under_a_refreshed_job_id_is_a_duplicate(
    connect: Callable[[str], StratumClient],
) -> None:
    client = connect("127.0.0.29")
    first = client.start()
    client.push("mining.notify", timeout=3.0)
    second = client.job
    assert second is not None and second.job_id != first.job_id
    if first.params[1:7] != second.params[1:7]:
        raise RuntimeError("precondition: the refresh changed the work itself")
    share = client.find_accepted(job=first)
    assert accepted(client.submit(share))
    again = share.params(client.worker)
    again[1] = second.job_id
    reply = client.request("mining.submit", again)
    assert code(reply) == 22, f"the same header was credited twice: {reply}"
