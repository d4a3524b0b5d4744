"""Alembic owns the schema: `upgrade head` gives exactly the models, and downgrade/upgrade
round-trips, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pool.ledger import db
from pool.ledger.models import Base


def schema_diff(url: str) -> list[object]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_gives_exactly_the_models(db_url: str) -> None:
    db.upgrade(db_url)
    assert schema_diff(db_url) == []
    engine = db.make_engine(db_url)
    try:
        assert db.current_revision(engine) == db.head_revision(db_url)
        db.require_current(engine, db_url)
    finally:
        engine.dispose()


def test_downgrade_then_upgrade_round_trips(db_url: str) -> None:
    db.upgrade(db_url)
    before = tables(db_url)
    assert {"shares", "share_hours", "share_rejects", "blocks", "workers"} <= before
    db.downgrade(db_url, "base")
    assert tables(db_url) <= {"alembic_version"}
    engine = db.make_engine(db_url)
    try:
        assert db.current_revision(engine) is None
        try:
            db.require_current(engine, db_url)
        except db.DatabaseError as exc:
            assert "farmpool db upgrade" in str(exc)
        else:
            raise AssertionError("a database without the schema was accepted")
    finally:
        engine.dispose()
    db.upgrade(db_url)
    assert tables(db_url) == before
    assert schema_diff(db_url) == []
