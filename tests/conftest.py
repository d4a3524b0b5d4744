"""Fixtures shared by every test folder: the real regtest peers.

The nodes are installed on first use (``scripts/regtest_peers.py``; cached in
``$FARMPOOL_PEERS_DIR`` or ``<repo>/.peers``) and started once per test session in a temporary
directory. An install or start failure makes the fixture *fail*, never skip: CI must run these
tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SCRIPTS = REPO / "scripts"
if str(_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS))

import pytest  # noqa: E402
import regtest_peers  # noqa: E402
from regtest_peers import RegtestNode  # noqa: E402


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
    """Two connected Bitcoin SV regtest nodes: ``(pool_node, elsewhere_node)``.

    The first publishes ZMQ hashblock and is the one the pool talks to; the second can mine
    competing blocks.
    """
    regtest_peers.install_svnode()
    pool_node, elsewhere = regtest_peers.start_svnode_pair(tmp_path_factory.mktemp("svnode"))
    try:
        yield pool_node, elsewhere
    finally:
        elsewhere.stop()
        pool_node.stop()
