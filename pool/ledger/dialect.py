"""What differs between SQLite and PostgreSQL, one function per rule.

Where it sits: the ledger writer, compaction, the config seeding (admin), the report views,
the run lock and the alert store ask here instead of comparing dialect names themselves.
Each function takes the database as its dialect name (`engine.dialect.name`), an Engine or a
Connection, and raises UnsupportedDatabase for anything but SQLite and PostgreSQL.

The rules: insert-or-ignore and upsert (SQLAlchemy core, and insert-or-ignore as raw SQL for
the writer's driver-level inserts), the two-argument maximum, the UTC hour floor of a
timestamp (a core expression, and the SQL text the report views embed), taking the write
lock at the start of a transaction, the driver's parameter marker, bulk inserts through the
driver, the values the driver takes for a timestamp, and `choose` for code that does a thing
two ways (compaction's batches, the run lock).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, literal_column, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from pool.ledger.models import UTCDateTime

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

#: A database: its dialect name, or an Engine or Connection to it.
Database = str | Engine | Connection

T = TypeVar("T")


class UnsupportedDatabase(RuntimeError):
    """A database other than SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unsupported database {name}")
        self.name = name


def name_of(db: Database) -> str:
    """The dialect name, SQLITE or POSTGRESQL; UnsupportedDatabase for any other."""
    name = db if isinstance(db, str) else db.dialect.name
    if name not in (SQLITE, POSTGRESQL):
        raise UnsupportedDatabase(name)
    return name


def choose(db: Database, *, sqlite: T, postgresql: T) -> T:
    """The one of two ways to do a thing that fits the database."""
    return sqlite if name_of(db) == SQLITE else postgresql


def is_sqlite(db: Database) -> bool:
    """SQLite (False: PostgreSQL); UnsupportedDatabase for any other."""
    return name_of(db) == SQLITE


# --- SQLAlchemy core -------------------------------------------------------------------------


def _insert(db: Database, table: Any) -> Any:
    return choose(db, sqlite=sqlite.insert, postgresql=postgresql.insert)(table)


def insert_ignore(db: Database, table: Any, keys: Sequence[str]) -> Insert:
    """INSERT that skips the rows whose `keys` (a unique index) exist already:
    INSERT ... ON CONFLICT (keys) DO NOTHING."""
    statement: Insert = _insert(db, table).on_conflict_do_nothing(index_elements=list(keys))
    return statement


def upsert(
    db: Database,
    table: Any,
    keys: Sequence[str],
    set_: Callable[[Any], Mapping[str, Any]],
) -> Insert:
    """INSERT that updates the existing row instead where `keys` (a unique index) conflict:
    INSERT ... ON CONFLICT (keys) DO UPDATE SET ...; `set_` is given the proposed row's
    columns (`excluded`) and returns the new values by column name."""
    ins = _insert(db, table)
    statement: Insert = ins.on_conflict_do_update(
        index_elements=list(keys), set_=dict(set_(ins.excluded))
    )
    return statement


def greatest(db: Database, *values: Any) -> ColumnElement[Any]:
    """The largest of the values (PostgreSQL greatest(); SQLite's scalar max() of several
    arguments)."""
    function: Any = choose(db, sqlite=func.max, postgresql=func.greatest)
    result: ColumnElement[Any] = function(*values)
    return result


def hour_floor(db: Database, column: Any) -> ColumnElement[datetime]:
    """The UTC hour floor of a timestamp column (stored as naive UTC), typed so that it reads
    back as an aware UTC datetime."""
    if is_sqlite(db):
        # Datetimes are text here ('YYYY-MM-DD HH:MM:SS.ffffff'); the hour is read back as a
        # datetime and written through UTCDateTime, so share_hours keeps SQLAlchemy's format.
        expr: Any = func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), column)
    else:
        expr = func.date_trunc(literal_column("'hour'"), column)
    return type_coerce(expr, UTCDateTime())


def hour_floor_sql(db: Database, column: str) -> str:
    """The UTC hour floor of a timestamp column as SQL text (the report views embed it): on
    SQLite, text in SQLAlchemy's format ('YYYY-MM-DD HH:00:00.000000'), so that it equals the
    stored hours it is compared with."""
    if is_sqlite(db):
        return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"
    return f"date_trunc('hour', {column})"


def begin_write(conn: Connection) -> None:
    """Take the database's write lock now, at the start of the transaction, before its reads.
    SQLite: pysqlite would BEGIN (deferred) only at the first write, so two transactions that
    read the same rows before writing deadlock ("database is locked"), or a row is written
    between the reads and the write; BEGIN IMMEDIATE. PostgreSQL: nothing (row locks)."""
    if is_sqlite(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# --- The driver (DB-API cursors: sqlite3, psycopg 3) -----------------------------------------


def driver_placeholder(db: Database) -> str:
    """The driver's parameter marker: sqlite3's `?`, psycopg's `%s`."""
    return choose(db, sqlite="?", postgresql="%s")


def _values(db: Database, width: int) -> str:
    return ", ".join([driver_placeholder(db)] * width)


def driver_insert_sql(db: Database, table: str, columns: str, width: int) -> str:
    """INSERT of one row of `width` values (for executemany)."""
    return f"INSERT INTO {table} ({columns}) VALUES ({_values(db, width)})"


def driver_insert_ignore_sql(db: Database, table: str, columns: str, width: int, key: str) -> str:
    """INSERT of one row of `width` values that is skipped where `key` (the primary key's
    columns) exists: SQLite INSERT OR IGNORE, PostgreSQL ON CONFLICT (key) DO NOTHING."""
    values = _values(db, width)
    if is_sqlite(db):
        return f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})"
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING"


def driver_insert(
    db: Database,
    cursor: Any,
    table: str,
    columns: str,
    rows: list[tuple[Any, ...]],
    ignore_key: str | None = None,
) -> None:
    """Write rows (tuples in `columns` order) straight through the driver's cursor: SQLite
    executemany, PostgreSQL COPY; with `ignore_key`, rows whose key exists are skipped
    (executemany of driver_insert_ignore_sql on both: COPY cannot skip rows)."""
    width = len(rows[0]) if rows else 0
    if ignore_key is not None:
        cursor.executemany(driver_insert_ignore_sql(db, table, columns, width, ignore_key), rows)
    elif is_sqlite(db):
        cursor.executemany(driver_insert_sql(db, table, columns, width), rows)
    else:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def naive_utc(epoch: float) -> datetime:
    """A Unix time as the naive UTC datetime the model's UTCDateTime stores."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


class _SqliteTime:
    """Unix times as the text SQLAlchemy's DateTime writes on SQLite (and reads back), naive
    UTC; the seconds part is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, epoch: float) -> str:
        """Rounded to the microsecond as datetime.fromtimestamp (and so PostgreSQL's column)
        rounds it: .9999998 is the next second's .000000, never this second's."""
        second = int(epoch)
        micro = round((epoch - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._prefix}.{micro:06d}"


def driver_time(db: Database) -> Callable[[float], Any]:
    """A function from Unix times to the values the driver writes into a timestamp column as
    UTCDateTime would (SQLite: text; PostgreSQL: naive UTC datetimes). One per writer: the
    SQLite one keeps the last second's text."""
    if is_sqlite(db):
        return _SqliteTime().text
    return naive_utc
