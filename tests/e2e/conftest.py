"""Fixtures for the end-to-end tests: `farmpool serve` processes and test miners connected to
them (the regtest nodes come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from regtest_peers import RegtestNode

from tests.e2e.farmpool_serve import ServeProcess, base_config
from tests.e2e.stratum_client import StratumClient


@pytest.fixture(scope="module")
def serve_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[dict[str, Any]], ServeProcess]]:
    """Start `farmpool serve` processes for a module; at the end each one still running gets
    SIGTERM and must exit 0."""
    started: list[ServeProcess] = []

    def start(config: dict[str, Any]) -> ServeProcess:
        server = ServeProcess(config, tmp_path_factory.mktemp("serve"))
        started.append(server)
        return server

    yield start
    failures = []
    for server in started:
        if server.returncode is None:
            code = server.terminate()
            if code != 0:
                failures.append(f"exit {code}; log:\n{server.log_tail()}")
    assert not failures, "farmpool serve did not exit 0 on SIGTERM: " + "\n".join(failures)


@pytest.fixture(scope="module")
def bcoin_config(
    bcoin_node: RegtestNode, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The base config for a server on the session's bcoin node, in a fresh directory; the
    module adds its listeners and limits."""
    return base_config(
        bcoin_node.rpc_url, bcoin_node.new_address(), tmp_path_factory.mktemp("pool")
    )


@pytest.fixture
def connect(server: ServeProcess) -> Iterator[Callable[..., StratumClient]]:
    """Test-miner connections to the module's `server` fixture: `connect(listener=None,
    **StratumClient options)` opens one to that listener's port (the first listener's by
    default). All are closed after the test, and the server must still be running."""
    clients: list[StratumClient] = []

    def open_client(listener: str | None = None, **options: Any) -> StratumClient:
        port = server.port(listener) if listener else next(iter(server.ports.values()))
        client = StratumClient(port, log=server.log_tail, **options)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
    assert server.running(), f"farmpool serve died:\n{server.log_tail()}"
