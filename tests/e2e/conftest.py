"""Fixtures for the end-to-end tests: `farmpool serve` processes (the regtest nodes come
from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from regtest_peers import RegtestNode

from tests.e2e.farmpool_serve import ServeProcess, base_config


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
