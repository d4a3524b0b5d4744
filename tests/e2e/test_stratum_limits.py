"""Bans end to end: a flood of invalid shares closes real sessions and then bans their
address, whose sockets are closed and whose new connections are refused.

Every limit is tested in memory on a Clock (tests/unit/test_session_limits.py: connections
per address, the subscribe timeout, stale-share weights, floods of invalid shares and of
malformed messages, the ban's end); this is the smoke test that the wiring closes real
sockets. One `farmpool serve` process: a session is closed after 5 invalid shares or
messages, its address banned for a minute once sessions of 2 different workers from it were
closed. Bans are per address, so the test talks from its own loopback addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.stratum_client import StratumClient
from tests.helpers import assert_accepted

BAN_AFTER = 5


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    config["listeners"] = [fixed_listener("limits", site="south")]
    config["stratum"] = {
        "ban": {"invalid_shares": BAN_AFTER, "window_s": 60, "ban_s": 60,
                "sessions_per_address": 2},
    }  # fmt: skip
    return serve_factory(config)


def refused(connect: Callable[..., StratumClient], source: str) -> bool:
    """The server closes a new connection from `source` at once, answering nothing."""
    try:
        client = connect(source=source)
        client.send_raw(b'{"id": 1, "method": "mining.subscribe", "params": []}\n')
    except OSError:  # reset during the handshake or on the first write
        return True
    return client.wait_closed(2.0) and not client.lines


def flood_until_closed(client: StratumClient) -> None:
    """Invalid shares (error 20) until the pool closes the session."""
    for _ in range(BAN_AFTER):
        client.send({"id": 99, "method": "mining.submit", "params": [client.worker]})
    assert client.wait_closed(3.0), "the flooding session was not closed"


def test_invalid_share_floods_close_the_sessions_then_ban_the_address(
    connect: Callable[..., StratumClient],
) -> None:
    site = "127.0.0.24"  # a farm site behind one NAT address
    neighbour = connect(source=site)
    neighbour.start("acme.neighbour")
    bystander = connect(source="127.0.0.25")
    bystander.start("globex.bystander")
    first = connect(source=site)
    first.start("acme.rig1")
    flood_until_closed(first)
    # One faulty machine: its session is closed, the site is not banned.
    assert_accepted(neighbour.submit(neighbour.find_accepted()))
    # Sessions of a second worker from the address misbehave too: now the address is banned.
    second = connect(source=site)
    second.start("acme.rig2")
    flood_until_closed(second)
    assert neighbour.wait_closed(3.0), "the banned address's other sessions stayed open"
    assert refused(connect, site), "a banned address could connect again"
    assert_accepted(bystander.submit(bystander.find_accepted()))
