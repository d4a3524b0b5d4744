"""Database engines and the schema's migrations (Alembic), for SQLite and PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL (a commit survives power loss, not only a
crash) and foreign keys on; PostgreSQL goes through psycopg 3. `postgresql://` URLs are
taken to mean psycopg.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from pool.errors import OperationFailed

#: Where the Alembic environment lives: the repository's migrations/ (or $FARMPOOL_MIGRATIONS).
MIGRATIONS = Path(
    os.environ.get("FARMPOOL_MIGRATIONS", Path(__file__).resolve().parents[2] / "migrations")
)


class DatabaseError(RuntimeError, OperationFailed):
    """A database the pool cannot use, with what to do about it."""


def normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def make_engine(url: str, *, create: bool = False, **kw: Any) -> Engine:
    """An engine with the pool's settings for its dialect.

    A SQLite file is made only with `create` (`farmpool db upgrade`): every other command on
    a database that is not there fails, naming the file, and leaves nothing behind (SQLite
    would otherwise create an empty file, and its folder, on the first connection)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            if create:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            elif not Path(database).exists():
                raise DatabaseError(
                    f"no database at {database}: create it with `farmpool db upgrade`"
                )
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


def alembic_config(url: str) -> Config:
    if not (MIGRATIONS / "env.py").exists():
        raise DatabaseError(f"no Alembic environment at {MIGRATIONS} (set FARMPOOL_MIGRATIONS)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`; the only command that creates a SQLite database."""
    config = alembic_config(url)
    config.attributes["create_database"] = True  # read by migrations/env.py
    command.upgrade(config, revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def require_current(engine: Engine, url: str) -> None:
    """Refuse to run on a schema that is not at the newest migration."""
    current, head = current_revision(engine), head_revision(url)
    if current != head:
        raise DatabaseError(
            f"the database is at migration {current or 'none'}, this farmpool needs {head}: "
            f"run `farmpool db upgrade`"
        )
