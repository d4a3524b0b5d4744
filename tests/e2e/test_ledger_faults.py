"""The share ledger under faults: a `true` is a promise that the share is in the ledger.

Two faults, each under load from many sessions of real `farmpool serve` processes (against
the bcoin regtest node), with every share's header hash known to the client:

* kill -9 of the server in the middle of the load (SQLite and a private PostgreSQL), then a
  restart on the same config and data directory: every share that got `true` is in the
  `shares` table exactly once. Shares sent but not answered (the reply was lost in the kill)
  may be there too; nothing else may.
* PostgreSQL (a private cluster: the machine's shared server is never touched) stopped for
  30 s in the middle of a steady load and started again: the pool keeps answering `true` at a
  sane latency while it spools, loads the spool back once the database answers, and after a
  clean stop every acknowledged share is in the database exactly once, with nothing extra.

The load: sessions are opened with scripts/loadgen.py; the shares are precomputed here from
each session's `mining.notify` (pool.hashing.HeaderWork, as loadgen does), valid at the port's
difficulty of 2**-32 and *not* blocks (regtest's target is ~2**255: half of all hashes are
blocks, and a block would move the tip and make later shares stale), each with its header
hash (internal byte order, the ledger's key). An open-loop sender thread sends them on a
schedule and records, per request id, the send time and the reply (`true` or an error code).
"""

from __future__ import annotations

import ast
import contextlib
import errno
import json
import re
import select
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loadgen
import pytest
from regtest_peers import RegtestNode
from sqlalchemy import func
from sqlalchemy import select as sql_select

from pool.hashing import HeaderWork, difficulty_to_target
from pool.ledger.db import make_engine
from pool.ledger.models import Share
from tests.e2e.farmpool_serve import ServeProcess, base_config
from tests.e2e.private_postgres import PrivatePostgres, running_postgres
from tests.e2e.stratum_client import StratumClient
from tests.helpers import wait_until

pytestmark = pytest.mark.bcoin

SHARE_DIFFICULTY = 2.0**-32
SPOOL_NAME = "ledger-spool.jsonl"

# kill -9: 50 sessions, 3,000 shares/s for 3 s, killed 1.5 s in.
KILL_SESSIONS = 50
KILL_RATE = 3000.0
KILL_DURATION_S = 3.0
KILL_AT_S = 1.5

# PostgreSQL outage: 20 sessions, 500 shares/s for 42 s; down from 5 s to 35 s.
OUTAGE_SESSIONS = 20
OUTAGE_RATE = 500.0
OUTAGE_DURATION_S = 42.0
OUTAGE_FROM_S = 5.0
OUTAGE_UNTIL_S = 35.0
#: p99 reply latency before and during the outage.
OUTAGE_P99_LIMIT_S = 1.0
#: p99 reply latency after the database is back. Looser: the writer loads the whole spool
#: (here ~15,000 records, ~1 s) before it writes any fresh share, so every reply in that second
#: waits for the replay (a server weakness: the stall grows with the outage's length).
RECOVERY_P99_LIMIT_S = 1.0
SPOOL_DRAIN_LIMIT_S = 30.0


# --- the load ---------------------------------------------------------------------------------


class AckedLoad:
    """Sessions (opened by loadgen) and precomputed shares with their header hashes; `run`
    sends them open-loop and records the outcome of every request by its id."""

    NO_REPLY, ACCEPTED, REFUSED = 0, 1, 2

    def __init__(self, port: int, sessions: int, rate: float, duration: float) -> None:
        self.rate = rate
        self.gen = loadgen.LoadGen("127.0.0.1", port, "acme")
        try:
            self.gen.open(sessions, batch=sessions, timeout=30.0)
            self.sessions = [s for s in self.gen.sessions if s.ready]
            assert len(self.sessions) == sessions, f"{len(self.sessions)} of {sessions} ready"
            self.total = int(rate * duration)
            self.base_id = 100_000
            self.lines: list[bytes] = []
            self.owner = array("i")
            self.digests: list[bytes] = []
            self._prepare()
        except BaseException:
            self.gen.close()
            raise
        self.sent_at = array("d", bytes(8 * self.total))
        self.reply_at = array("d", bytes(8 * self.total))
        self.outcome = bytearray(self.total)
        self.errors: Counter[str] = Counter()
        self.closed: dict[int, tuple[float, str]] = {}  # session index -> (when, why)
        self.unsent = 0
        self.stray = 0
        self.t0 = 0.0
        self.finished = 0.0
        self.started = threading.Event()
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def _prepare(self) -> None:
        """Distinct shares at each session's difficulty that are not blocks, in send order
        (request k goes to session k mod N), each with its header hash."""
        works: dict[str, HeaderWork] = {}
        per_session = []
        for s in self.sessions:
            p = s.notify
            assert p is not None and s.difficulty is not None
            work = works.get(s.job_id)
            if work is None:
                work = works[s.job_id] = HeaderWork.from_notify(p)
            target = difficulty_to_target(s.difficulty)
            assert target - work.network_target > 1 << 254, "difficulty too high for the test"
            per_session.append((s, work, target, int(s.ntime, 16)))
        counters = [1] * len(self.sessions)
        for k in range(self.total):
            i = k % len(self.sessions)
            s, work, target, ntime = per_session[i]
            while True:
                en2 = counters[i].to_bytes(s.en2_size, "big")
                counters[i] += 1
                digest, value = work.hash_share(s.extranonce1, en2, ntime, 0, work.version)
                if work.network_target < value <= target:
                    break
            request = {
                "id": self.base_id + k,
                "method": "mining.submit",
                "params": [s.worker, s.job_id, en2.hex(), s.ntime, "00000000"],
            }
            self.lines.append(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            self.owner.append(i)
            self.digests.append(digest)
        assert len(set(self.digests)) == self.total

    # --- running ------------------------------------------------------------------------

    def run(self, drain_s: float = 5.0) -> None:
        try:
            self._run(drain_s)
        except BaseException as exc:
            self.failure = exc
        finally:
            self.finished = time.perf_counter()
            self.started.set()

    def _run(self, drain_s: float) -> None:
        ep = select.epoll()
        by_fd: dict[int, int] = {}
        wbuf: dict[int, bytes] = {}
        rbuf: dict[int, bytes] = {}
        for i, s in enumerate(self.sessions):
            by_fd[s.fd] = i
            rbuf[i] = s.rbuf
            ep.register(s.fd, select.EPOLLIN)
        live = set(range(len(self.sessions)))
        interval = 1.0 / self.rate
        replies = 0
        sent = 0
        k = 0
        self.t0 = t0 = time.perf_counter() + 0.01
        self.started.set()
        end = t0 + self.total * interval

        def close(i: int, why: str) -> None:
            if i in live:
                live.discard(i)
                self.closed[i] = (time.perf_counter(), why)
                with contextlib.suppress(OSError, ValueError):
                    ep.unregister(self.sessions[i].fd)

        def send(i: int, data: bytes) -> None:
            s = self.sessions[i]
            if wbuf.get(i):
                wbuf[i] += data
                return
            try:
                n = s.sock.send(data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                close(i, f"send: {exc}")
                return
            if n < len(data):
                wbuf[i] = data[n:]
                ep.modify(s.fd, select.EPOLLIN | select.EPOLLOUT)

        try:
            while not self.stop.is_set():
                now = time.perf_counter()
                due = min(self.total, int((now - t0) * self.rate) + 1) if now >= t0 else 0
                while k < due:
                    i = self.owner[k]
                    if i in live:
                        self.sent_at[k] = now
                        send(i, self.lines[k])
                        sent += 1
                    else:
                        self.unsent += 1
                    k += 1
                if not live:
                    break
                if k >= self.total and (replies >= sent or now > end + drain_s):
                    break
                timeout = 0.05 if k >= self.total else max(0.0, t0 + k * interval - now)
                events = ep.poll(min(timeout, 0.05))
                rnow = time.perf_counter()
                for fd, ev in events:
                    i = by_fd[fd]
                    if i not in live:
                        continue
                    s = self.sessions[i]
                    if ev & select.EPOLLOUT and wbuf.get(i):
                        try:
                            n = s.sock.send(wbuf[i])
                            wbuf[i] = wbuf[i][n:]
                            if not wbuf[i]:
                                ep.modify(s.fd, select.EPOLLIN)
                        except BlockingIOError:
                            pass
                        except OSError as exc:
                            close(i, f"send: {exc}")
                            continue
                    if not ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                        continue
                    try:
                        data = s.sock.recv(262144)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        close(i, f"recv: {errno.errorcode.get(exc.errno or 0, exc)}")
                        continue
                    if not data:
                        close(i, "closed by the server")
                        continue
                    data = rbuf[i] + data
                    *lines, rbuf[i] = data.split(b"\n")
                    for line in lines:
                        replies += self._reply(line, rnow)
        finally:
            self.unsent += self.total - k
            ep.close()

    def _reply(self, line: bytes, when: float) -> int:
        try:
            message = json.loads(line)
        except ValueError:
            self.stray += 1
            return 0
        rid = message.get("id")
        k = rid - self.base_id if isinstance(rid, int) else -1
        if "method" in message or not 0 <= k < self.total or self.outcome[k]:
            self.stray += 1
            return 0
        self.reply_at[k] = when
        if message.get("result") is True and message.get("error") is None:
            self.outcome[k] = self.ACCEPTED
        else:
            self.outcome[k] = self.REFUSED
            self.errors[json.dumps(message.get("error"))[:120]] += 1
        return 1

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="acked-load", daemon=True)
        thread.start()
        assert self.started.wait(10), "the load thread did not start"
        return thread

    def close(self) -> None:
        self.gen.close()

    # --- results --------------------------------------------------------------------------

    def acked(self) -> set[bytes]:
        return {self.digests[k] for k in range(self.total) if self.outcome[k] == self.ACCEPTED}

    def sent(self) -> set[bytes]:
        return {self.digests[k] for k in range(self.total) if self.sent_at[k] > 0}

    def latencies(self, start: float = 0.0, stop: float = float("inf")) -> list[float]:
        """Reply latencies (s) of the requests sent within [start, stop) (perf_counter)."""
        return [
            self.reply_at[k] - self.sent_at[k]
            for k in range(self.total)
            if self.outcome[k] and start <= self.sent_at[k] < stop
        ]

    def summary(self) -> dict[str, Any]:
        sent = sum(1 for x in self.sent_at if x > 0)
        return {
            "planned": self.total,
            "sent": sent,
            "unsent": self.unsent,
            "accepted": self.outcome.count(self.ACCEPTED),
            "refused": self.outcome.count(self.REFUSED),
            "no_reply": sent - self.outcome.count(self.ACCEPTED) - self.outcome.count(self.REFUSED),
            "errors": dict(self.errors),
            "closed_sessions": len(self.closed),
            "stray_lines": self.stray,
            "latency_ms": loadgen.percentiles(self.latencies()),
        }


# --- helpers ----------------------------------------------------------------------------------


def pool_config(node: RegtestNode, workdir: Path, database_url: str) -> dict[str, Any]:
    config = base_config(node.rpc_url, node.new_address(), workdir)
    config["database_url"] = database_url
    config["log_level"] = "info"
    config["listeners"] = [
        {
            "name": "main",
            "site": "north",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": {"start": SHARE_DIFFICULTY, "min": SHARE_DIFFICULTY, "max": 1},
            "vardiff": {"enabled": False},
        }
    ]
    config["stratum"] = {
        "max_connections_per_ip": 10_000,
        "ban": {"invalid_shares": 1_000_000, "ban_s": 0},
    }
    return config


def ledger_counts(database_url: str) -> tuple[Counter[bytes], int]:
    """Every share hash in the ledger with how often it is there, and the number of hashes
    stored more than once (by SQL GROUP BY, independently of the first)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            hashes = Counter(bytes(h) for h in conn.execute(sql_select(Share.hash)).scalars())
            doubled = (
                sql_select(Share.hash).group_by(Share.hash).having(func.count() > 1).subquery()
            )
            n_doubled = conn.execute(sql_select(func.count()).select_from(doubled)).scalar_one()
    finally:
        engine.dispose()
    return hashes, int(n_doubled)


def ledger_stats(log: str) -> dict[str, int]:
    """The writer's counters from the `ledger: {...}` line logged on a clean stop."""
    found = re.findall(r"ledger: (\{[^\n]*\})", log)
    return ast.literal_eval(found[-1]) if found else {}


def spool_size(config: dict[str, Any]) -> int:
    try:
        return (Path(config["data_dir"]) / SPOOL_NAME).stat().st_size
    except FileNotFoundError:
        return 0


def report(name: str, data: dict[str, Any]) -> None:
    print(f"\n{name}: {json.dumps(data, default=str)}", flush=True)


def timeline(load: AckedLoad, start: float, stop: float, step: float) -> list[str]:
    """Per `step` seconds of send time in [start, stop): "t: n p99/max ms" (t from load.t0)."""
    rows = []
    t = start
    while t < stop:
        got = sorted(load.latencies(t, t + step))
        if got:
            p99 = got[int(0.99 * (len(got) - 1))]
            rows.append(f"{t - load.t0:.2f}s: {len(got)} {1000 * p99:.0f}/{1000 * got[-1]:.0f}")
        t += step
    return rows


def start_server(
    config: dict[str, Any], workdir: Path, servers: list[ServeProcess]
) -> ServeProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServeProcess(config, workdir)
    servers.append(server)
    return server


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with running_postgres() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger database: SQLite, or a private PostgreSQL cluster (set up before the
    servers, so torn down after them)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    cluster: PrivatePostgres = request.getfixturevalue("private_postgres")
    return cluster.url


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    """Servers a test started: any still running at the end gets SIGTERM (before a private
    database goes away) and must exit 0."""
    started: list[ServeProcess] = []
    yield started
    codes = [(s, s.terminate()) for s in started if s.running()]
    bad = [f"exit {code}:\n{s.log_tail()}" for s, code in codes if code != 0]
    assert not bad, "farmpool serve did not exit 0 on SIGTERM: " + "\n".join(bad)


# --- kill -9 ----------------------------------------------------------------------------------


def test_kill_9_under_load_loses_no_acknowledged_share(
    ledger_url: str,
    bcoin_node: RegtestNode,
    servers: list[ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    backend = ledger_url.split(":", 1)[0]
    database_url = ledger_url
    workdir = tmp_path_factory.mktemp(f"kill9-{backend}")
    config = pool_config(bcoin_node, workdir, database_url)
    first = start_server(config, workdir / "first", servers)

    load = AckedLoad(first.port("main"), KILL_SESSIONS, KILL_RATE, KILL_DURATION_S)
    try:
        thread = load.start_thread()
        time.sleep(max(0.0, load.t0 + KILL_AT_S - time.perf_counter()))
        killed_at = time.perf_counter()
        first.proc.kill()
        killed_code = first.terminate(timeout=10)  # already dead: waits, closes its log
        thread.join(KILL_DURATION_S + 15)
        assert not thread.is_alive(), "the load did not end after the kill"
    finally:
        load.close()
    if load.failure is not None:
        raise load.failure
    summary = load.summary()
    acked, sent = load.acked(), load.sent()
    assert killed_code == -9, killed_code
    spool_at_restart = spool_size(config)
    # Before the kill everything was answered `true`; the kill closed every session.
    assert not load.errors, f"refused shares before the kill: {summary}\n{first.log_tail()}"
    assert len(load.closed) == KILL_SESSIONS, summary
    assert len(acked) > 0.2 * KILL_RATE * KILL_AT_S, f"too few shares acked: {summary}"
    assert load.unsent > 0, f"the kill came after the load: {summary}"

    # Restart on the same config and data directory; it must serve again.
    second = start_server(config, workdir / "second", servers)
    with StratumClient(second.port("main"), log=second.log_tail) as probe:
        probe.start("acme.probe")
        share = probe.find_accepted()
        reply = probe.submit(share)
        assert reply["result"] is True and reply["error"] is None, reply
    assert second.terminate() == 0, f"restarted serve did not exit 0:\n{second.log_tail()}"

    hashes, doubled = ledger_counts(database_url)
    missing = acked - hashes.keys()
    unknown = hashes.keys() - sent - {share.digest}
    report(
        f"kill-9 [{backend}]",
        {
            **summary,
            "killed_after_s": round(killed_at - load.t0, 3),
            "acked": len(acked),
            "in_db": len(hashes),
            "in_db_from_the_load": len(hashes.keys() & sent),
            "in_db_not_acked": len((hashes.keys() & sent) - acked),
            "missing": len(missing),
            "doubled": doubled,
            "spool_bytes_at_restart": spool_at_restart,
            "ledger_after_restart": ledger_stats(second.log_text()),
        },
    )
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged shares are not in the ledger, e.g. "
        f"{sorted(h.hex() for h in missing)[:3]}\n{first.log_tail()}"
    )
    assert doubled == 0 and max(hashes.values()) == 1, "a share is in the ledger twice"
    assert not unknown, f"{len(unknown)} shares in the ledger that nobody sent"
    assert share.digest in hashes, "the share acknowledged after the restart is missing"


# --- SIGTERM -------------------------------------------------------------------------------


def test_sigterm_under_load_loses_no_acknowledged_share(
    ledger_url: str,
    bcoin_node: RegtestNode,
    servers: list[ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A graceful stop in the middle of 3,000 shares/s: exit 0, every miner told to reconnect
    (or closed), every share answered `true` in the ledger, none twice."""
    backend = ledger_url.split(":", 1)[0]
    workdir = tmp_path_factory.mktemp(f"sigterm-{backend}")
    config = pool_config(bcoin_node, workdir, ledger_url)
    server = start_server(config, workdir / "first", servers)
    load = AckedLoad(server.port("main"), KILL_SESSIONS, KILL_RATE, KILL_DURATION_S)
    try:
        thread = load.start_thread()
        time.sleep(max(0.0, load.t0 + KILL_AT_S - time.perf_counter()))
        stopped_at = time.perf_counter()
        code = server.terminate(timeout=30)  # SIGTERM, then wait
        thread.join(KILL_DURATION_S + 15)
        assert not thread.is_alive(), "the load did not end after the stop"
    finally:
        load.close()
    if load.failure is not None:
        raise load.failure
    summary = load.summary()
    acked, sent = load.acked(), load.sent()
    assert code == 0, f"serve exit {code} on SIGTERM:\n{server.log_tail()}"
    assert len(acked) > 0.2 * KILL_RATE * KILL_AT_S, f"too few shares acked: {summary}"
    assert load.unsent > 0, f"the stop came after the load: {summary}"
    assert spool_size(config) == 0, "a graceful stop leaves nothing in the spool"
    hashes, doubled = ledger_counts(ledger_url)
    missing = acked - hashes.keys()
    report(
        f"sigterm [{backend}]",
        {
            **summary,
            "stopped_after_s": round(stopped_at - load.t0, 3),
            "acked": len(acked),
            "in_db": len(hashes),
            "missing": len(missing),
            "doubled": doubled,
        },
    )
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged shares are not in the ledger"
    assert doubled == 0, "a share is in the ledger twice"
    assert not hashes.keys() - sent, "shares in the ledger that nobody sent"


# --- PostgreSQL outage ------------------------------------------------------------------------


def test_postgres_outage_under_load_keeps_answering_and_loses_nothing(
    bcoin_node: RegtestNode,
    private_postgres: PrivatePostgres,
    servers: list[ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    workdir = tmp_path_factory.mktemp("pg-outage")
    config = pool_config(bcoin_node, workdir, private_postgres.url)
    server = start_server(config, workdir / "serve", servers)

    load = AckedLoad(server.port("main"), OUTAGE_SESSIONS, OUTAGE_RATE, OUTAGE_DURATION_S)
    max_spool = 0
    up_at = drained_at = 0.0
    try:
        thread = load.start_thread()

        def sleep_until(offset: float) -> None:
            nonlocal max_spool, drained_at
            while (left := load.t0 + offset - time.perf_counter()) > 0 and thread.is_alive():
                size = spool_size(config)
                max_spool = max(max_spool, size)
                if up_at and not drained_at and size == 0:
                    drained_at = time.perf_counter()
                time.sleep(min(left, 0.05))

        sleep_until(OUTAGE_FROM_S)
        assert thread.is_alive(), f"the load ended early: {load.summary()}"
        down_at = time.perf_counter()
        private_postgres.stop("fast")
        stopped_at = time.perf_counter()
        sleep_until(OUTAGE_UNTIL_S)
        assert thread.is_alive(), f"the load ended during the outage: {load.summary()}"
        private_postgres.start()
        up_at = time.perf_counter()
        sleep_until(OUTAGE_DURATION_S)
        thread.join(20)
        assert not thread.is_alive(), "the load did not end"
    finally:
        load.stop.set()
        load.close()
    if load.failure is not None:
        raise load.failure
    load_end = load.finished

    wait_until(
        lambda: spool_size(config) == 0,
        SPOOL_DRAIN_LIMIT_S,
        lambda: f"the spool still has {spool_size(config)} bytes:\n{server.log_tail()}",
        step=0.05,
    )
    drained_at = drained_at or time.perf_counter()
    code = server.terminate()
    assert code == 0, f"serve exit {code} on SIGTERM:\n{server.log_tail()}"

    summary = load.summary()
    before = load.latencies(0.0, down_at)
    during = load.latencies(down_at, up_at)
    after = load.latencies(up_at)
    hashes, doubled = ledger_counts(private_postgres.url)
    acked, sent = load.acked(), load.sent()
    log = server.log_text()
    stats = ledger_stats(log)
    report(
        "postgres-outage",
        {
            **summary,
            "outage_s": round(up_at - down_at, 2),
            "pg_stop_took_s": round(stopped_at - down_at, 3),
            "latency_ms_before": loadgen.percentiles(before),
            "latency_ms_outage": loadgen.percentiles(during),
            "latency_ms_after": loadgen.percentiles(after),
            "max_spool_bytes": max_spool,
            "spool_empty_after_restart_s": round(drained_at - up_at, 2),
            "spool_empty_after_load_end_s": round(max(0.0, drained_at - load_end), 2),
            "timeline": timeline(load, load.t0, load.t0 + OUTAGE_DURATION_S, 1.0),
            "ledger_log": [line[:160] for line in log.splitlines() if "pool.ledger" in line],
            "acked": len(acked),
            "in_db": len(hashes),
            "doubled": doubled,
            "ledger_stats": stats,
        },
    )

    # The pool kept answering: every share answered `true`, no session lost, sane latency.
    assert summary["refused"] == 0 and not load.errors, f"refusals: {summary}\n{log[-3000:]}"
    assert summary["no_reply"] == 0 and summary["unsent"] == 0, summary
    assert not load.closed, f"sessions closed: {load.closed}"
    limits = (
        ("before", before, OUTAGE_P99_LIMIT_S),
        ("during", during, OUTAGE_P99_LIMIT_S),
        ("after", after, RECOVERY_P99_LIMIT_S),
    )
    for name, values, limit in limits:
        assert values, f"no share answered {name} the outage"
        p99 = sorted(values)[int(0.99 * (len(values) - 1))]
        assert p99 < limit, f"p99 reply latency {name} the outage: {p99:.3f} s (limit {limit} s)"

    # It spooled and loaded the spool back.
    assert "spooling to" in log, f"no spooling in the log:\n{log[-3000:]}"
    assert "ledger database answers again; loading the spool" in log, log[-3000:]
    loaded = [int(n) for n in re.findall(r"spool loaded: (\d+) records", log)]
    assert loaded and sum(loaded) >= 1, log[-3000:]
    assert stats.get("spooled", 0) > 0, stats
    assert stats.get("replayed", 0) >= stats["spooled"], stats

    # Nothing lost, nothing doubled, nothing extra.
    missing = acked - hashes.keys()
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged shares are missing"
    assert doubled == 0 and max(hashes.values()) == 1, "a share is in the ledger twice"
    assert hashes.keys() <= sent, "shares in the ledger that nobody sent"
    in_flight = len(sent) - len(acked)
    assert len(acked) <= len(hashes) <= len(acked) + in_flight
