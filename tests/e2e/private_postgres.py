"""A private, throwaway PostgreSQL cluster for one test.

Tests that stop and start the database (an outage under load) must not touch the machine's
shared server, which other tests use. `PrivatePostgres` runs `initdb` into a fresh directory
under /tmp, owned by the `postgres` OS user (the server refuses to run as root), and starts it
with `pg_ctl` on a free 127.0.0.1 port with its socket in the data directory. `stop()` and
`start()` are for the test; `cleanup()` always stops it and removes the directory.

The binaries are found under /usr/lib/postgresql/*/bin (the newest major version; override
with $FARMPOOL_PG_BIN). A missing binary or OS user raises `PrivatePostgresError`: the tests
using it must fail, not skip.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_USER = "postgres"
START_TIMEOUT_S = 30

_live: list[PrivatePostgres] = []


class PrivatePostgresError(RuntimeError):
    """The private cluster could not be set up or controlled."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/N/bin with initdb and pg_ctl (or $FARMPOOL_PG_BIN)."""
    override = os.environ.get("FARMPOOL_PG_BIN")
    candidates = (
        [Path(override)]
        if override
        else sorted(
            (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
            key=lambda p: _major(p.parent.name),
            reverse=True,
        )
    )
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PrivatePostgresError(
        "no PostgreSQL binaries (initdb, pg_ctl, postgres) under "
        f"{override or '/usr/lib/postgresql/*/bin'}: install postgresql-15"
    )


def _major(name: str) -> float:
    try:
        return float(name)
    except ValueError:
        return -1.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """One throwaway cluster: `init()` + `start()` (or use `running()`), then `cleanup()`."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = find_bindir()
        try:
            self._pw = pwd.getpwnam(PG_USER)
        except KeyError:
            raise PrivatePostgresError(f"no OS user {PG_USER!r} to run PostgreSQL as") from None
        euid = os.geteuid()
        if euid == 0:
            self._as_user = ["runuser", "-u", PG_USER, "--"]
            if shutil.which("runuser") is None:
                raise PrivatePostgresError("runuser is missing: cannot run PostgreSQL as postgres")
        elif euid == self._pw.pw_uid:
            self._as_user = []
        else:
            raise PrivatePostgresError(
                f"must run as root or as {PG_USER!r} to own a private cluster (euid {euid})"
            )
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="farmpool-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "postgres.log"
        os.chown(self.root, self._pw.pw_uid, self._pw.pw_gid)
        self._initialised = False
        self.ready_s: float | None = None  # init + first start, seconds
        _live.append(self)

    # --- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    # --- control ----------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [*self._as_user, str(self.bindir / tool), *args]
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
            )
        except FileNotFoundError as exc:
            raise PrivatePostgresError(f"{command[0]}: {exc}") from None

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            raise PrivatePostgresError(
                f"{what} failed (exit {done.returncode}): {done.stdout}{done.stderr}\n"
                f"server log:\n{self.log_tail()}"
            )

    def init(self) -> None:
        """initdb: trust authentication, UTF-8, superuser `postgres`."""
        done = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._check(done, "initdb")
        self._initialised = True

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1"
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
            timeout=START_TIMEOUT_S + 10,
        )
        self._check(done, "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back open transactions, disconnect everyone)."""
        done = self._run(
            "pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop", timeout=40
        )
        self._check(done, f"pg_ctl stop -m {mode}")

    def is_running(self) -> bool:
        if not self._initialised:
            return False
        return self._run("pg_ctl", "-D", str(self.datadir), "status", timeout=15).returncode == 0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def cleanup(self) -> None:
        """Stop the server if it runs (immediately) and remove the directory; never raises."""
        if self in _live:
            _live.remove(self)
        with contextlib.suppress(Exception):
            if self.is_running():
                self._run(
                    "pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", timeout=40
                )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def running_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, stopped and removed afterwards whatever happens."""
    cluster = PrivatePostgres()
    try:
        started = time.monotonic()
        cluster.init()
        cluster.start()
        cluster.ready_s = round(time.monotonic() - started, 3)
        yield cluster
    finally:
        cluster.cleanup()


def _cleanup_leftovers() -> None:
    for cluster in list(_live):
        cluster.cleanup()


atexit.register(_cleanup_leftovers)
