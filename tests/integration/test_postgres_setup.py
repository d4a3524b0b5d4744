"""The PostgreSQL setup in docs/operations.md, run as written (with this test's own role and
database names) on the test server: its owner role migrates the database and writes to it; its
accountant role reads the report views and can change nothing."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pool.ledger import admin, db

REPO = Path(__file__).resolve().parents[2]


def documented_sql() -> list[tuple[str | None, str]]:
    """The statements of the `sql` block under "### PostgreSQL", each with the database it
    runs in (None: where psql starts; `\\connect NAME` switches)."""
    section = (REPO / "docs" / "operations.md").read_text().split("### PostgreSQL", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    database: str | None = None
    statements: list[tuple[str | None, str]] = []
    pending = ""
    for line in block.splitlines():
        if line.startswith("\\connect "):
            database = line.split()[1]
            continue
        if line.startswith("--") or not line.strip():
            continue
        pending += line + "\n"
        if line.rstrip().endswith(";"):
            statements.append((database, pending))
            pending = ""
    assert not pending, f"a statement without its ';': {pending}"
    return statements


@pytest.fixture
def names(postgres_server: str) -> Iterator[dict[str, str]]:
    """This test's names for the documented role/database `farmpool` and role `accountant`;
    the database and the roles are dropped afterwards."""
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    chosen = {"farmpool": f"fp_owner_{suffix}", "accountant": f"fp_reader_{suffix}"}
    try:
        yield chosen
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as superuser:
            superuser.execute(f'DROP DATABASE IF EXISTS "{chosen["farmpool"]}" WITH (FORCE)')
            for role in (chosen["accountant"], chosen["farmpool"]):
                superuser.execute(f'DROP ROLE IF EXISTS "{role}"')


def url_as(postgres_server: str, role: str, database: str) -> str:
    """The admin URL with another user and database (the test server trusts local users)."""
    host = postgres_server.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{role}:unused@{host}/{database}"


def test_the_documented_postgres_setup_lets_the_pool_migrate_and_accountants_read(
    postgres_server: str, names: dict[str, str]
) -> None:
    def rename(text: str) -> str:
        return re.sub(r"\b(farmpool|accountant)\b", lambda m: names[m.group(1)], text)

    statements = documented_sql()
    assert any("CREATE ROLE accountant" in sql for _, sql in statements)
    base = postgres_server.rsplit("/", 1)[0]
    for database, sql in statements:
        url = postgres_server if database is None else f"{base}/{rename(database)}"
        with psycopg.connect(url, autocommit=True) as superuser:
            superuser.execute(rename(sql).encode())
    owner = url_as(postgres_server, names["farmpool"], names["farmpool"])
    db.upgrade(owner)
    engine = db.make_engine(owner)
    try:
        db.require_current(engine, owner)
        admin.add_site(engine, "north")
    finally:
        engine.dispose()
    reader = url_as(postgres_server, names["accountant"], names["farmpool"])
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM sites").fetchall() == [("north",)]
        conn.execute("SELECT * FROM report_pool_month").fetchall()
        for write in (
            "INSERT INTO sites (name, timezone, created_at) VALUES ('x', 'UTC', now())",
            "DELETE FROM sites",
            "CREATE TABLE mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(write)
