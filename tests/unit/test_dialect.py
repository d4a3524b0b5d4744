"""pool/ledger/dialect.py: each SQLite/PostgreSQL rule compiles to the SQL the pool has always
sent (compiled with SQLAlchemy's own dialects; no database needed), and refuses any other
database with one clear error. The rules run against real databases in the integration tests
of their callers (ledger writer, compaction, admin, report views, money tracker, alerts)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from pool.accounting import views
from pool.ledger import dialect
from pool.ledger.models import Block, Node, Share, Site, Tenant, Worker

DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}

_table = Table(
    "things",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(16), unique=True),
    Column("n", Integer),
)


def _sql(name: str, statement: Any) -> str:
    return str(statement.compile(dialect=DIALECTS[name]))


def test_names() -> None:
    assert dialect.name_of("sqlite") == dialect.SQLITE
    assert dialect.name_of("postgresql") == dialect.POSTGRESQL
    assert dialect.is_sqlite("sqlite") and not dialect.is_sqlite("postgresql")
    assert dialect.choose("sqlite", sqlite=1, postgresql=2) == 1
    assert dialect.choose("postgresql", sqlite=1, postgresql=2) == 2


#: The statements each dialect's own insert() made where the pool called it directly.
_NATIVE_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize(
    ("table", "keys"),
    [
        (Worker.__table__, ["tenant_id", "name"]),
        (Block.__table__, ["hash"]),
        (Node.__table__, ["name"]),
        (Site.__table__, ["name"]),
        (Tenant.__table__, ["name"]),
    ],
)
def test_insert_ignore(name: str, table: Any, keys: list[str]) -> None:
    native = _NATIVE_INSERT[name](table).on_conflict_do_nothing(index_elements=keys)
    compiled = _sql(name, dialect.insert_ignore(name, table, keys))
    assert compiled == _sql(name, native)
    assert compiled.endswith(f"ON CONFLICT ({', '.join(keys)}) DO NOTHING")


def test_insert_ignore_sqlite_text() -> None:
    assert _sql("sqlite", dialect.insert_ignore("sqlite", _table, ["name"])) == (
        "INSERT INTO things (id, name, n) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "sqlite",
            "INSERT INTO things (id, name, n) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "id = max(things.id, excluded.id), n = (things.n + excluded.n)",
        ),
        (
            "postgresql",
            "INSERT INTO things (id, name, n) VALUES (%(id)s::INTEGER, %(name)s::VARCHAR, "
            "%(n)s::INTEGER) ON CONFLICT (name) DO UPDATE SET "
            "id = greatest(things.id, excluded.id), n = (things.n + excluded.n)",
        ),
    ],
)
def test_upsert_and_greatest(name: str, expected: str) -> None:
    statement = dialect.upsert(
        name,
        _table,
        ["name"],
        lambda new: {
            "n": _table.c.n + new.n,
            "id": dialect.greatest(name, _table.c.id, new.id),
        },
    )
    assert _sql(name, statement) == expected


def test_share_hours_upsert_is_unchanged() -> None:
    """Compaction's upsert into share_hours, as it compiled before the rules moved here."""
    from pool.ledger.compaction import _upsert

    assert _sql("sqlite", _upsert("sqlite")) == (
        "INSERT INTO share_hours (id, worker_id, tenant_id, site_id, hour, shares, work, "
        "best_share_difficulty, bits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (worker_id, site_id, hour, bits) DO UPDATE SET "
        "shares = (share_hours.shares + excluded.shares), "
        "work = (share_hours.work + excluded.work), "
        "best_share_difficulty = max(share_hours.best_share_difficulty, "
        "excluded.best_share_difficulty)"
    )
    assert _sql("postgresql", _upsert("postgresql")) == (
        "INSERT INTO share_hours (id, worker_id, tenant_id, site_id, hour, shares, work, "
        "best_share_difficulty, bits) VALUES (%(id)s::BIGINT, %(worker_id)s::INTEGER, "
        "%(tenant_id)s::INTEGER, %(site_id)s::INTEGER, "
        "%(hour)s::TIMESTAMP WITHOUT TIME ZONE, %(shares)s::BIGINT, %(work)s::BIGINT, "
        "%(best_share_difficulty)s, %(bits)s::BIGINT) "
        "ON CONFLICT (worker_id, site_id, hour, bits) DO UPDATE SET "
        "shares = (share_hours.shares + excluded.shares), "
        "work = (share_hours.work + excluded.work), "
        "best_share_difficulty = greatest(share_hours.best_share_difficulty, "
        "excluded.best_share_difficulty)"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sqlite", "strftime('%Y-%m-%d %H:00:00', shares.created_at)"),
        ("postgresql", "date_trunc('hour', shares.created_at)"),
    ],
)
def test_hour_floor(name: str, expected: str) -> None:
    expr = dialect.hour_floor(name, Share.created_at)
    assert _sql(name, expr) == expected
    # read back through UTCDateTime: aware UTC datetimes
    processor = expr.type.result_processor(DIALECTS[name], None)
    naive = datetime(2026, 12, 1, 13, 0)
    value: Any = "2026-12-01 13:00:00" if name == "sqlite" else naive
    assert processor is not None
    assert processor(value) == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sqlite", "strftime('%Y-%m-%d %H:00:00.000000', s.created_at)"),
        ("postgresql", "date_trunc('hour', s.created_at)"),
    ],
)
def test_hour_floor_sql(name: str, expected: str) -> None:
    assert dialect.hour_floor_sql(name, "s.created_at") == expected


#: sha256 of the report views' CREATE statements (joined by "\n;\n") as migrations 0004 and
#: 0006 create them. Changing the views' SQL needs a new migration, not only new text here.
VIEWS_SHA256 = {
    "sqlite": "b6eba224f088a2864e0652dadedd8080512af3eafb62fc86fa1238b30cf09adc",
    "postgresql": "1c3f9081db603c039cfc185afc9c6aae2714803f5eff33c4e1ce5b486a0a529a",
}


@pytest.mark.parametrize("name", sorted(VIEWS_SHA256))
def test_report_views_text_is_unchanged(name: str) -> None:
    text = "\n;\n".join(views.create_statements(name))
    assert hashlib.sha256(text.encode()).hexdigest() == VIEWS_SHA256[name]
    assert dialect.hour_floor_sql(name, "s.created_at") in text


_COLUMNS = "id, hash, late"


@pytest.mark.parametrize(
    ("name", "insert", "ignore", "mark"),
    [
        (
            "sqlite",
            "INSERT INTO shares (id, hash, late) VALUES (?, ?, ?)",
            "INSERT OR IGNORE INTO shares (id, hash, late) VALUES (?, ?, ?)",
            "?",
        ),
        (
            "postgresql",
            "INSERT INTO shares (id, hash, late) VALUES (%s, %s, %s)",
            "INSERT INTO shares (id, hash, late) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            "%s",
        ),
    ],
)
def test_driver_sql(name: str, insert: str, ignore: str, mark: str) -> None:
    assert dialect.driver_placeholder(name) == mark
    assert dialect.driver_insert_sql(name, "shares", _COLUMNS, 3) == insert
    assert dialect.driver_insert_ignore_sql(name, "shares", _COLUMNS, 3, "id") == ignore


class _Cursor:
    """Records what a DB-API cursor is asked to do (a stand-in for the driver's cursor only:
    what reaches a real database is tested in tests/integration/test_ledger_writer.py)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.calls.append((sql, rows))

    def copy(self, sql: str) -> _Cursor:
        self.calls.append((sql, None))
        return self

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write_row(self, row: tuple[Any, ...]) -> None:
        self.calls.append(("row", row))


def test_driver_insert_ways() -> None:
    rows = [(1, "a", True), (2, "b", True)]
    cursor = _Cursor()
    dialect.driver_insert("sqlite", cursor, "shares", _COLUMNS, rows)
    dialect.driver_insert("sqlite", cursor, "shares", _COLUMNS, rows, "id")
    assert cursor.calls == [
        ("INSERT INTO shares (id, hash, late) VALUES (?, ?, ?)", rows),
        ("INSERT OR IGNORE INTO shares (id, hash, late) VALUES (?, ?, ?)", rows),
    ]
    cursor = _Cursor()
    dialect.driver_insert("postgresql", cursor, "shares", _COLUMNS, rows)
    dialect.driver_insert("postgresql", cursor, "shares", _COLUMNS, rows, "id")
    assert cursor.calls == [
        ("COPY shares (id, hash, late) FROM STDIN", None),
        ("row", rows[0]),
        ("row", rows[1]),
        (
            "INSERT INTO shares (id, hash, late) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            rows,
        ),
    ]


@pytest.mark.parametrize(
    "epoch",
    [0.0, 1764594000.5, 1764594000.9999998, 1764594000.0000004, 1764597599.999999, 1.25e9],
)
def test_driver_time(epoch: float) -> None:
    """SQLite: the text SQLAlchemy's DateTime writes for the naive UTC datetime PostgreSQL is
    given, rounded alike."""
    naive = datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)
    assert dialect.driver_time("postgresql")(epoch) == naive == dialect.naive_utc(epoch)
    stamp = dialect.driver_time("sqlite")
    for _ in range(2):  # the second time from the cached second
        assert stamp(epoch) == naive.strftime("%Y-%m-%d %H:%M:%S.%f")


_RULES: list[Callable[[str], object]] = [
    dialect.name_of,
    dialect.is_sqlite,
    lambda db: dialect.choose(db, sqlite=1, postgresql=2),
    lambda db: dialect.insert_ignore(db, _table, ["name"]),
    lambda db: dialect.upsert(db, _table, ["name"], lambda new: {"n": new.n}),
    lambda db: dialect.greatest(db, _table.c.n, 1),
    lambda db: dialect.hour_floor(db, Share.created_at),
    lambda db: dialect.hour_floor_sql(db, "created_at"),
    dialect.driver_placeholder,
    lambda db: dialect.driver_insert_sql(db, "shares", _COLUMNS, 3),
    lambda db: dialect.driver_insert_ignore_sql(db, "shares", _COLUMNS, 3, "id"),
    lambda db: dialect.driver_insert(db, _Cursor(), "shares", _COLUMNS, [(1, "a", True)]),
    dialect.driver_time,
    views.create_statements,
]


@pytest.mark.parametrize("rule", _RULES)
def test_other_databases_are_refused(rule: Callable[[str], object]) -> None:
    with pytest.raises(dialect.UnsupportedDatabase, match=r"^unsupported database mysql$"):
        rule("mysql")
    assert issubclass(dialect.UnsupportedDatabase, RuntimeError)  # as before the move
