"""The stratum server: joins the work source, the sessions and the ledger.

Every new job is registered, its notify encoded once and the same bytes pushed to every
working session; accepted shares go to the share sink (the ledger) and the observer (the
alerts). The parts it is made of each do one thing: the listeners (pool/stratum/listeners.py),
the session registry (registry.py), the gatekeeper for admission, floods and bans
(gatekeeper.py, deciding with admission.py) and block submission (blocks.py). A one-second
sweep runs the subscribe and idle timeouts, vardiff's idle check and the expiry of bans.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from typing import Any, Protocol

from twisted.internet import defer, task

from pool.chain.job import Job
from pool.chain.rpc import AsyncNode
from pool.config import Settings
from pool.ledger.records import ShareRecord
from pool.logthrottle import ThrottledLog
from pool.stratum.blocks import BlockSubmitter, FoundBlock
from pool.stratum.extranonce import ExtranonceAllocator
from pool.stratum.gatekeeper import Gatekeeper
from pool.stratum.jobs import JobRegistry
from pool.stratum.listeners import ListenerSet
from pool.stratum.protocol import StratumProtocol
from pool.stratum.registry import SessionRegistry
from pool.stratum.session import Session

log = logging.getLogger(__name__)

#: Sessions whose vardiff idle check runs per one-second sweep (all of them every few seconds
#: up to ~20,000 sessions; vardiff's window is 60 s).
IDLE_CHECKS_PER_SWEEP = 2000


class ShareSink(Protocol):
    """Where accepted shares, blocks and reject counts go (the ledger).

    A Deferred from `record` or `record_block` delays the miner's `true` until it fires: the
    durable ledger fires it once the share is committed (or spooled).
    """

    def record(self, share: ShareRecord) -> defer.Deferred[None] | None: ...

    def record_block(self, block: FoundBlock) -> defer.Deferred[None] | None: ...

    def count_reject(self, session: Session, reason: str, when: float) -> None: ...


class ShareObserver(Protocol):
    """Told of every accepted share and every block, after the sink (the alerts): it must
    only note them (no I/O, nothing slow), since it runs in the share path."""

    def on_share(self, share: ShareRecord) -> None: ...

    def on_block(self, block: FoundBlock) -> None: ...


class CountingShareSink:
    """Per-worker totals in memory: for tests and tools that run without a database."""

    def __init__(self) -> None:
        self.shares: Counter[tuple[str, str]] = Counter()
        self.work: dict[tuple[str, str], float] = {}
        self.blocks: list[tuple[str, bool, str | None]] = []
        self.rejects: Counter[str] = Counter()

    def record(self, share: ShareRecord) -> None:
        key = (share.tenant, share.worker)
        self.shares[key] += 1
        self.work[key] = self.work.get(key, 0.0) + share.difficulty
        return None

    def record_block(self, block: FoundBlock) -> None:
        self.blocks.append((block.hash, block.accepted, block.answer))
        return None

    def count_reject(self, session: Session, reason: str, when: float) -> None:
        self.rejects[reason] += 1


class StratumServer:
    """All sessions of one process: the parts below, joined to the work source and the ledger.

    - `listeners` (pool/stratum/listeners.py): the ports, opened, reloaded and closed;
    - `registry` (pool/stratum/registry.py): connections, sessions, working sessions;
    - `gate` (pool/stratum/gatekeeper.py): admission, floods and bans;
    - `blocks` (pool/stratum/blocks.py): block assembly and submitblock;
    - here: job fan-out, accepted shares to the sink, tenants, the sweep, shutdown.
    """

    def __init__(
        self,
        settings: Settings,
        node: AsyncNode,
        reactor: Any,
        *,
        sink: ShareSink | None = None,
        on_block: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        extranonce_prefix: bytes = b"",
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self.clock = clock
        self.sink: ShareSink = sink or CountingShareSink()
        self.observer: ShareObserver | None = None
        self.jobs = JobRegistry()
        cb = settings.coinbase
        # The node's leased prefix byte (pool/ledger/leases.py): extranonce1 values, and so
        # the work of its miners, never collide with another node's on the same database.
        self.extranonces = ExtranonceAllocator(cb.extranonce1_size, extranonce_prefix)
        self.extranonce2_size = cb.extranonce2_size
        self.extranonce2_hex_len = 2 * cb.extranonce2_size
        self.ntime_ahead_s = settings.stratum.ntime_ahead_s
        self.tenants = {t.name for t in settings.tenants}
        self.stats: Counter[str] = Counter()
        # What miners make the server do (refuse, close, ban), logged at a bounded rate.
        self.events = ThrottledLog(log, clock)
        self.registry = SessionRegistry(self.extranonces)
        self.gate = Gatekeeper(
            settings.stratum, self.registry, clock, self.stats, self.events, self._count_reject
        )
        self.listeners = ListenerSet(reactor, lambda listener: StratumProtocol(self, listener))
        self.blocks = BlockSubmitter(node, self.record_found, self.stats, on_block)
        self.stopping = False
        self._sweeper = task.LoopingCall(self._sweep)
        self._sweeper.clock = reactor
        self.last_fanout: dict[str, Any] = {}
        self.work_by_account: dict[tuple[str, str], float] = defaultdict(float)
        self.job_at = 0.0  # when the current job arrived (epoch seconds)
        self._idle_queue: list[Session] = []

    @property
    def sessions(self) -> Collection[Session]:
        """Subscribed sessions (read-only)."""
        return self.registry.sessions

    @property
    def working(self) -> Collection[Session]:
        """Sessions that get job fan-outs (read-only)."""
        return self.registry.working

    # --- lifecycle -------------------------------------------------------------------------

    def listen(self) -> list[int]:
        """Open every configured listener; returns the bound ports (0 in config = any)."""
        bound = self.listeners.open_all(self.settings.listeners)
        if not self._sweeper.running:
            self._sweeper.start(1.0, now=False)
        return bound

    def reload(self, settings: Settings) -> defer.Deferred[dict[str, int]]:
        """Apply a reloaded config (SIGHUP) without dropping a connected miner: listeners that
        are gone stop accepting (their sessions stay), new ones open, changed ones reopen where
        their socket or TLS changed and otherwise give new sessions the new settings; tenants
        and the stratum limits follow the new config. Fires with the bound ports."""
        self.settings = settings
        self.gate.configure(settings.stratum)
        self.tenants |= {t.name for t in settings.tenants}
        return self.listeners.reload(settings.listeners)

    def shutdown(self) -> defer.Deferred[None]:
        """Stop accepting, tell every miner to reconnect, let the messages flush, close."""
        self.stopping = self.gate.stopping = True
        if self._sweeper.running:
            self._sweeper.stop()
        stopped = self.listeners.close_all()
        for session in list(self.sessions):
            self.reconnect(session)
        log.info("sent client.reconnect to %d sessions", len(self.sessions))
        return stopped

    # --- sessions ----------------------------------------------------------------------------

    def session_subscribed(self, session: Session) -> None:
        self.registry.subscribed(session)

    def session_working(self, session: Session) -> None:
        self.registry.started_work(session)

    def session_closed(self, session: Session) -> None:
        self.registry.closed(session)
        self.gate.released(session)

    def tenant_known(self, tenant: str) -> bool:
        return tenant in self.tenants

    def set_tenants(self, names: set[str]) -> None:
        """The active tenants, refreshed from the database. Sessions of a tenant that is no
        longer active lose its workers at once (their shares are refused with error 24); a
        session left with no worker is told to reconnect and closed."""
        gone = self.tenants - set(names)
        self.tenants = set(names)
        if not gone:
            return
        closed = 0
        for session in list(self.sessions):
            if session.workers and session.drop_tenants(gone):
                self.reconnect(session)
                closed += 1
        log.warning(
            "tenants no longer active: %s; %d sessions left with no worker were closed",
            ", ".join(sorted(gone)),
            closed,
        )

    def reconnect(self, session: Session) -> None:
        """Send `client.reconnect` (to this listener's public host, if it has one) and close."""
        listener = session.listener
        params: list[Any] = []
        if listener.public_host:
            port = self.listeners.port_of(listener)
            params = [listener.public_host, port, self.settings.stratum.reconnect_wait_s]
        message = {"id": None, "method": "client.reconnect", "params": params}
        session.protocol.send(json.dumps(message).encode() + b"\n")
        session.protocol.close()

    # --- jobs --------------------------------------------------------------------------------

    def on_job(self, job: Job) -> None:
        """A new job from the work source: register it and push it to every working session."""
        started = time.monotonic()
        self.job_at = time.time()
        entry = self.jobs.add(job)
        data = entry.notify(job.clean)
        sessions = list(self.working)
        for session in sessions:
            session.protocol.push(data)
        elapsed = (time.monotonic() - started) * 1000
        self.last_fanout = {
            "job_id": job.job_id,
            "clean": job.clean,
            "sessions": len(sessions),
            "elapsed_ms": round(elapsed, 3),
            "sent_at": time.time(),
        }
        log.info(
            "job %s height %d clean=%s sent to %d sessions in %.1f ms",
            job.job_id,
            job.height,
            job.clean,
            len(sessions),
            elapsed,
        )

    # --- shares and blocks -------------------------------------------------------------------

    def record_share(self, share: ShareRecord) -> defer.Deferred[None] | None:
        self.stats["accepted"] += 1
        # Credited difficulty per (site, tenant), for /metrics and the dashboard's hashrate.
        self.work_by_account[(share.site, share.tenant)] += share.difficulty
        if self.observer is not None:
            self.observer.on_share(share)
        return self.sink.record(share)

    def _count_reject(self, session: Session, reason: str, when: float) -> None:
        self.sink.count_reject(session, reason, when)

    def record_found(self, block: FoundBlock) -> defer.Deferred[Any] | None:
        """Record the block's share, then the block (the ledger keeps that order: a block row
        in the database means its share is there too); the reply waits for both."""
        if self.observer is not None:
            self.observer.on_block(block)
        pending = [
            d
            for d in (self.record_share(block.share), self.sink.record_block(block))
            if d is not None
        ]
        if not pending:
            return None
        both: defer.Deferred[Any] = defer.gatherResults(pending, consumeErrors=True)
        return both.addCallback(lambda _: None)

    # --- periodic sweep ----------------------------------------------------------------------

    def _sweep(self) -> None:
        """Once a second: subscribe and idle timeouts, vardiff's idle check, bans that are
        over. One session that fails is logged and skipped; the sweep never stops."""
        try:
            self._sweep_once()
        except Exception:
            self.stats["sweep_errors"] += 1
            log.exception("the periodic sweep failed; it runs again in a second")

    def _sweep_once(self) -> None:
        now = self.clock()
        timeout = self.settings.stratum.subscribe_timeout_s
        self.stats["closed_unsubscribed"] += self.registry.close_unsubscribed_since(now - timeout)
        # Vardiff's idle check, a slice of the sessions per second, so that 15,000 sessions
        # never stall the reactor for more than a fraction of a millisecond at a time.
        if not self._idle_queue:
            self._idle_queue = list(self.sessions)
        batch = self._idle_queue[-IDLE_CHECKS_PER_SWEEP:]
        del self._idle_queue[-IDLE_CHECKS_PER_SWEEP:]
        idle_limit = self.settings.stratum.idle_timeout_s
        failed = 0
        for session in batch:
            if session not in self.sessions or session.protocol.closing:
                continue
            try:
                self._sweep_session(session, now, idle_limit)
            except Exception:
                failed += 1
                if failed == 1:  # once per sweep, not once per session
                    log.exception("the sweep failed on a session from %s; skipped", session.peer)
                session.protocol.close()
        self.stats["sweep_session_errors"] += failed
        self.gate.expire()

    def _sweep_session(self, session: Session, now: float, idle_limit: float) -> None:
        if idle_limit and now - session.protocol.last_request_at > idle_limit:
            self.stats["closed_idle"] += 1
            self.events.info(
                "closed_idle", "closed %s: no request for %g s", session.peer, idle_limit
            )
            session.protocol.close()
            return
        if session in self.working:
            session.check_idle(now)
            if session.outbox:
                session.protocol.send(b"")
