"""Fixtures for the end-to-end tests: the real regtest nodes and `farmpool serve` processes.

The node fixtures start the same real peers as ``tests/integration/conftest.py`` (through
``scripts/regtest_peers.py``; an install or start failure fails the test, never skips it).
They are defined here again because a conftest's fixtures are only visible below its folder;
in a run of the whole suite each folder starts its own nodes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_SCRIPTS = REPO / "scripts"
if str(_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS))

import pytest  # noqa: E402
import regtest_peers  # noqa: E402
from regtest_peers import RegtestNode  # noqa: E402

from tests.e2e.farmpool_serve import ServeProcess  # noqa: E402


@pytest.fixture(scope="session")
def bcoin_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegtestNode]:
    """A running in-memory bcoin regtest node (segwit), shared by the session."""
    regtest_peers.install_bcoin()
    node = regtest_peers.start_bcoin(tmp_path_factory.mktemp("bcoin"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def svnode_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegtestNode, RegtestNode]]:
    """Two connected Bitcoin SV regtest nodes: ``(pool_node, elsewhere_node)``; the first
    publishes ZMQ hashblock and is the one the pool talks to."""
    regtest_peers.install_svnode()
    pool_node, elsewhere = regtest_peers.start_svnode_pair(tmp_path_factory.mktemp("svnode"))
    try:
        yield pool_node, elsewhere
    finally:
        elsewhere.stop()
        pool_node.stop()


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
