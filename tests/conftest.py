"""Fixtures shared by every test folder: the real regtest peers.

The nodes are installed on first use (``scripts/regtest_peers.py``; cached in
``$FARMPOOL_PEERS_DIR`` or ``<repo>/.peers``) and started once per test session in a temporary
directory. An install or start failure makes the fixture *fail*, never skip: CI must run these
tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- databases -----------------------------------------------------------------------------

#: The PostgreSQL server the tests use (trust auth on this machine); override with
#: FARMPOOL_TEST_PG, e.g. postgresql://user:pass@host:5432/postgres.
PG_ADMIN_URL = os.environ.get("FARMPOOL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True, connect_timeout=5
    )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL. Unreachable: skipped on a developer's machine,
    a failure under CI (CI=true), where these tests must run."""
    try:
        _pg_admin().close()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable under CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    return PG_ADMIN_URL


@contextlib.contextmanager
def new_postgres_database(postgres_server: str) -> Iterator[str]:
    """A new empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"farmpool_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres(postgres_server: str) -> Iterator[str]:
    """A new empty PostgreSQL database for one test; dropped afterwards."""
    with new_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the pool supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return str(request.getfixturevalue("fresh_postgres"))
