"""One run at a time: a lock held in (or beside) the database, released when its holder dies.

Where it sits: a payout run and the block tracker each take their named lock before they
touch money, so that two admins (or two stratum nodes sharing one database) never run them
at once. PostgreSQL: a session advisory lock on a connection kept open for the run; the
server drops it when that connection closes, including when the process is killed. SQLite:
an exclusive flock on a file beside the database file; the kernel drops it when the process
dies. A lock that is held raises LockBusy at once; nobody waits on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from pool.errors import OperationFailed
from pool.ledger.dialect import is_sqlite


class LockBusy(RuntimeError, OperationFailed):
    """Another process holds the lock."""


def _key(name: str) -> int:
    """A stable 63-bit advisory-lock key for a name."""
    digest = hashlib.sha256(f"farmpool:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@contextmanager
def run_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock `name` for the duration of the block; LockBusy if another holds it."""
    if not is_sqlite(engine):  # PostgreSQL
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)})
            if not got.scalar():
                raise LockBusy(f"another process is running {name} (PostgreSQL advisory lock)")
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                conn.commit()
        return
    path = _sqlite_file(engine)
    if path is None:
        yield  # a private in-memory database: nobody else can see it
        return
    lock_path = path.with_name(f"{path.name}.{name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(f"another process is running {name} (lock file {lock_path})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
