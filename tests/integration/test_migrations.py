"""Alembic owns the schema: `upgrade head` gives exactly the models, and downgrade/upgrade
round-trips, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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


def test_0006_keeps_the_ledger_through_upgrade_and_downgrade(db_url: str) -> None:
    """Shares and hourly aggregates written before 0006 keep their rows (network target 0:
    not known; not loaded late); an hour compacted at two network targets is one row again
    after a downgrade, its sums exact."""
    db.upgrade(db_url, "0005")
    engine = db.make_engine(db_url)
    hour = "2026-09-01 10:00:00"
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO nodes (id, name, created_at, share_seq) VALUES (1, 'n', :t, 2)"),
                {"t": hour},
            )
            conn.execute(
                text(
                    "INSERT INTO sites (id, name, timezone, created_at, currency, heat_factor_ppm,"
                    " heat_price_micro) VALUES (1, 's', 'UTC', :t, 'EUR', 0, 0)"
                ),
                {"t": hour},
            )
            conn.execute(
                text(
                    "INSERT INTO tenants (id, name, active, created_at, solo)"
                    " VALUES (1, 't', true, :t, false)"
                ),
                {"t": hour},
            )
            conn.execute(
                text(
                    "INSERT INTO workers (id, tenant_id, name, created_at) VALUES (1, 1, 'w', :t)"
                ),
                {"t": hour},
            )
            conn.execute(
                text(
                    "INSERT INTO shares (id, hash, node_id, worker_id, tenant_id, site_id, job_id,"
                    " height, difficulty, share_difficulty, work, is_block, created_at)"
                    " VALUES (:id, :h, 1, 1, 1, 1, 'j', 7, 1.0, 1.0, 65536, false, :t)"
                ),
                [{"id": (1 << 48) | n, "h": bytes([n]) * 32, "t": hour} for n in (1, 2)],
            )
            conn.execute(
                text(
                    "INSERT INTO share_hours (worker_id, tenant_id, site_id, hour, shares, work,"
                    " best_share_difficulty) VALUES (1, 1, 1, :t, 3, 300, 2.5)"
                ),
                {"t": hour},
            )
        db.upgrade(db_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT bits, late FROM shares")).all() == [(0, None)] * 2
            assert conn.execute(text("SELECT bits, shares, work FROM share_hours")).all() == [
                (0, 3, 300)
            ]
            conn.execute(
                text(
                    "INSERT INTO share_hours (worker_id, tenant_id, site_id, hour, shares, work,"
                    " best_share_difficulty, bits) VALUES (1, 1, 1, :t, 4, 11, 9.5, 545392639)"
                ),
                {"t": hour},
            )
        db.downgrade(db_url, "0005")
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT shares, work, best_share_difficulty FROM share_hours")
            ).all() == [(7, 311, 9.5)]
            assert conn.execute(text("SELECT COUNT(*) FROM shares")).scalar() == 2
    finally:
        engine.dispose()
    db.upgrade(db_url)
    assert schema_diff(db_url) == []
