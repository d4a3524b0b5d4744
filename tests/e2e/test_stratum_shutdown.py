"""SIGTERM: every connected session gets `client.reconnect`, the process exits 0.

The module starts one server with three listeners (a fixed port with a public host, a port 0
with a public host, a port without one), connects sessions to each, sends SIGTERM once and
keeps what every session received; the tests read that record.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from regtest_peers import RegtestNode

from tests.e2e.farmpool_serve import ServeProcess, base_config
from tests.e2e.stratum_client import ConnectionClosed, StratumClient

PUBLIC_HOST = "pool.north.example"
WAIT_S = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Shutdown:
    server: ServeProcess
    fixed_port: int
    exit_code: int
    stopped_in_s: float
    received: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    closed: dict[str, list[bool]] = field(default_factory=dict)


def _reconnects(client: StratumClient) -> tuple[list[dict[str, Any]], bool]:
    closed = client.wait_closed(10.0)
    return [m for m in client.all_pushes if m["method"] == "client.reconnect"], closed


@pytest.fixture(scope="module")
def shutdown(
    bcoin_node: RegtestNode,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Shutdown:
    fixed = free_port()
    config = base_config(
        bcoin_node.rpc_url, bcoin_node.new_address(), tmp_path_factory.mktemp("pool")
    )
    difficulty = {"start": 3e-10, "min": 1e-11, "max": 16}
    config["listeners"] = [
        {
            "name": "public-fixed",
            "bind": "127.0.0.1",
            "port": fixed,
            "public_host": PUBLIC_HOST,
            "difficulty": difficulty,
        },
        {
            "name": "public-any",
            "bind": "127.0.0.1",
            "port": 0,
            "public_host": PUBLIC_HOST,
            "difficulty": difficulty,
        },
        {"name": "private", "bind": "127.0.0.1", "port": 0, "difficulty": difficulty},
    ]
    config["stratum"] = {"reconnect_wait_s": WAIT_S}
    server = serve_factory(config)
    assert server.port("public-fixed") == fixed
    clients: dict[str, list[StratumClient]] = {}
    for name, count in (("public-fixed", 3), ("public-any", 1), ("private", 2)):
        clients[name] = []
        for _ in range(count):
            client = StratumClient(server.port(name), log=server.log_tail)
            client.start()
            clients[name].append(client)
    # Subscribed but without a worker (no work yet): still a session.
    lone = StratumClient(server.port("private"), log=server.log_tail)
    lone.subscribe("e2e/1")
    clients["private"].append(lone)
    started = time.monotonic()
    code = server.terminate()
    record = Shutdown(server, fixed, code, time.monotonic() - started)
    for name, group in clients.items():
        record.received[name] = []
        record.closed[name] = []
        for client in group:
            try:
                messages, closed = _reconnects(client)
            except ConnectionClosed:
                messages, closed = [], True
            record.received[name].append(messages)
            record.closed[name].append(closed)
            client.close()
    return record


def test_sigterm_sends_client_reconnect_to_every_session_and_exits_0(
    shutdown: Shutdown,
) -> None:
    log = shutdown.server.log_tail()
    assert shutdown.exit_code == 0, f"exit code {shutdown.exit_code}; log:\n{log}"
    assert shutdown.stopped_in_s < 10, shutdown.stopped_in_s
    expected = [PUBLIC_HOST, shutdown.fixed_port, WAIT_S]
    for messages in shutdown.received["public-fixed"]:
        assert len(messages) == 1, f"{messages}\n{log}"
        assert messages[0]["params"] == expected
        assert messages[0]["id"] is None
    for messages in shutdown.received["private"]:
        assert len(messages) == 1, f"{messages}\n{log}"
        assert messages[0]["params"] == []
    for messages in shutdown.received["public-any"]:
        assert len(messages) == 1 and messages[0]["params"][0] == PUBLIC_HOST
    for name, closed in shutdown.closed.items():
        assert all(closed), f"{name}: a session was left open"
    assert "sent client.reconnect to 7 sessions" in shutdown.server.log_text()


def test_reconnect_names_the_bound_port(shutdown: Shutdown) -> None:
    bound = shutdown.server.port("public-any")
    [messages] = shutdown.received["public-any"]
    assert messages and messages[0]["params"] == [PUBLIC_HOST, bound, WAIT_S], messages
