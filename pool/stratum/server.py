"""The stratum server: listeners, the set of sessions, job fan-out, blocks, bans, shutdown.

It joins the work source (jobs from the node) to the sessions: every new job is registered,
its notify encoded once and the same bytes pushed to every working session. A share that
meets the network target becomes a block that goes to submitblock before the share's reply is
sent. Accepted shares go to the share sink (the ledger). Connection limits, invalid-share
bans, the subscribe timeout and vardiff's idle check run on a one-second sweep.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer, protocol, task

from pool.chain.job import Job
from pool.chain.rpc import AsyncNode, SubmitResult
from pool.config import ListenerSettings, Settings
from pool.hashing import hash_to_hex
from pool.ledger.records import ShareRecord
from pool.stratum import errors as E
from pool.stratum.errors import StratumError
from pool.stratum.extranonce import ExtranonceAllocator
from pool.stratum.jobs import JobEntry, JobRegistry
from pool.stratum.protocol import StratumProtocol
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

    def record_block(
        self,
        share: ShareRecord,
        block_hash: str,
        reward_sat: int,
        accepted: bool,
        answer: str | None,
    ) -> defer.Deferred[None] | None: ...

    def count_reject(self, session: Session, reason: str, when: float) -> None: ...


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

    def record_block(
        self,
        share: ShareRecord,
        block_hash: str,
        reward_sat: int,
        accepted: bool,
        answer: str | None,
    ) -> None:
        self.blocks.append((block_hash, accepted, answer))
        return None

    def count_reject(self, session: Session, reason: str, when: float) -> None:
        self.rejects[reason] += 1


class StratumFactory(protocol.Factory):
    def __init__(self, server: StratumServer, listener: ListenerSettings) -> None:
        self.server = server
        self.listener = listener

    def buildProtocol(self, addr: Any) -> StratumProtocol:
        return StratumProtocol(self.server, self.listener)


class _ServerTLS:
    """A TLS context for a stratum+ssl listener: the certificate chain and key from PEM files,
    TLS 1.2 or newer."""

    def __init__(self, certificate: str, key: str) -> None:
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(certificate.encode())
        context.use_privatekey_file(key.encode())
        context.check_privatekey()
        self._context = context

    def getContext(self) -> Any:
        return self._context


def tls_context(certificate: str, key: str) -> _ServerTLS:
    return _ServerTLS(certificate, key)


class StratumServer:
    """All sessions of one process."""

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
        self.node = node
        self.reactor = reactor
        self.clock = clock
        self.sink: ShareSink = sink or CountingShareSink()
        self.on_block = on_block
        self.jobs = JobRegistry()
        cb = settings.coinbase
        # The node's leased prefix byte (pool/ledger/leases.py): extranonce1 values, and so
        # the work of its miners, never collide with another node's on the same database.
        self.extranonces = ExtranonceAllocator(cb.extranonce1_size, extranonce_prefix)
        self.extranonce2_size = cb.extranonce2_size
        self.extranonce2_hex_len = 2 * cb.extranonce2_size
        self.ntime_ahead_s = settings.stratum.ntime_ahead_s
        self.tenants = {t.name for t in settings.tenants}
        self.sessions: set[Session] = set()
        self.working: set[Session] = set()
        self.unsubscribed: dict[StratumProtocol, float] = {}
        self.per_ip: Counter[str] = Counter()
        self.banned: dict[str, float] = {}
        self.invalid: dict[str, tuple[float, int]] = {}
        self.stats: Counter[str] = Counter()
        self.ports: list[Any] = []
        self.stopping = False
        self._sweeper = task.LoopingCall(self._sweep)
        self._sweeper.clock = reactor
        self.last_fanout: dict[str, Any] = {}
        self.work_by_account: dict[tuple[str, str], float] = defaultdict(float)
        self.job_at = 0.0  # when the current job arrived (epoch seconds)
        self._idle_queue: list[Session] = []
        self.bound_ports: dict[str, int] = {}
        # name -> (its settings, its factory, its listening port)
        self.open_listeners: dict[str, tuple[ListenerSettings, StratumFactory, Any]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def listen(self) -> list[int]:
        """Open every configured listener; returns the bound ports (0 in config = any)."""
        bound = [self._open(listener) for listener in self.settings.listeners]
        if not self._sweeper.running:
            self._sweeper.start(1.0, now=False)
        return bound

    def _open(self, listener: ListenerSettings) -> int:
        factory = StratumFactory(self, listener)
        if listener.tls_certificate and listener.tls_key:
            port = self.reactor.listenSSL(
                listener.port,
                factory,
                tls_context(listener.tls_certificate, listener.tls_key),
                backlog=1024,
                interface=listener.bind,
            )
        else:
            port = self.reactor.listenTCP(
                listener.port, factory, backlog=1024, interface=listener.bind
            )
        self.ports.append(port)
        self.open_listeners[listener.name] = (listener, factory, port)
        bound = int(port.getHost().port)
        self.bound_ports[listener.name] = bound
        log.info(
            "listening on %s %s:%d (listener %s, site %s, difficulty %g [%g..%g])",
            "stratum+ssl" if listener.tls_certificate else "stratum+tcp",
            listener.bind,
            bound,
            listener.name,
            listener.site,
            listener.start_difficulty,
            listener.min_difficulty,
            listener.max_difficulty,
        )
        return bound

    def reload(self, settings: Settings) -> defer.Deferred[dict[str, int]]:
        """Apply a reloaded config (SIGHUP) without dropping a connected miner: listeners that
        are gone stop accepting (their sessions stay), new ones open, changed ones reopen where
        their socket or TLS changed and otherwise give new sessions the new settings; tenants
        and the stratum limits follow the new config. Fires with the bound ports."""
        old = dict(self.open_listeners)
        wanted = {listener.name: listener for listener in settings.listeners}
        stopping = []
        for name, (listener, factory, port) in old.items():
            new = wanted.get(name)
            same_socket = new is not None and (
                new.bind,
                new.port,
                new.tls_certificate,
                new.tls_key,
            ) == (listener.bind, listener.port, listener.tls_certificate, listener.tls_key)
            if new is not None and same_socket:
                factory.listener = new  # new sessions get the new difficulty and vardiff
                self.open_listeners[name] = (new, factory, port)
                continue
            del self.open_listeners[name]
            self.bound_ports.pop(name, None)
            self.ports.remove(port)
            stopping.append(defer.maybeDeferred(port.stopListening))
            log.info("listener %s closed by a reload (its sessions stay)", name)
        self.settings = settings
        self.tenants |= {t.name for t in settings.tenants}

        def open_new(_: Any) -> dict[str, int]:
            for name, listener in wanted.items():
                if name not in self.open_listeners:
                    self._open(listener)
            return dict(self.bound_ports)

        return defer.DeferredList(stopping).addCallback(open_new)

    def shutdown(self) -> defer.Deferred[None]:
        """Stop accepting, tell every miner to reconnect, let the messages flush, close."""
        self.stopping = True
        if self._sweeper.running:
            self._sweeper.stop()
        stopped = [defer.maybeDeferred(port.stopListening) for port in self.ports]
        self.ports = []
        wait = self.settings.stratum.reconnect_wait_s
        for session in list(self.sessions):
            listener = session.listener
            params: list[Any] = []
            if listener.public_host:
                port = self.bound_ports.get(listener.name, listener.port)
                params = [listener.public_host, port, wait]
            message = {"id": None, "method": "client.reconnect", "params": params}
            session.protocol.send(json.dumps(message).encode() + b"\n")
            transport = session.protocol.transport
            if transport is not None:
                transport.loseConnection()
        log.info("sent client.reconnect to %d sessions", len(self.sessions))
        done: defer.Deferred[None] = defer.DeferredList(stopped).addCallback(lambda _: None)
        return done

    # --- connections -----------------------------------------------------------------------

    def admit(self, proto: StratumProtocol) -> bool:
        ip = proto.peer
        if self.stopping:
            return False
        until = self.banned.get(ip)
        if until is not None:
            if until > self.clock():
                self.stats["refused_banned"] += 1
                return False
            del self.banned[ip]
        if self.per_ip[ip] >= self.settings.stratum.max_connections_per_ip:
            self.stats["refused_per_ip"] += 1
            log.warning("refused %s: %d connections from it already", ip, self.per_ip[ip])
            return False
        self.per_ip[ip] += 1
        self.unsubscribed[proto] = self.clock()
        return True

    def session_subscribed(self, session: Session) -> None:
        self.sessions.add(session)
        self.unsubscribed.pop(session.protocol, None)

    def session_working(self, session: Session) -> None:
        self.working.add(session)

    def session_closed(self, session: Session) -> None:
        self.unsubscribed.pop(session.protocol, None)
        self.sessions.discard(session)
        self.working.discard(session)
        if session.extranonce1:
            self.extranonces.release(session.extranonce1)
        ip = session.peer
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def tenant_known(self, tenant: str) -> bool:
        return tenant in self.tenants

    def set_tenants(self, names: set[str]) -> None:
        """The active tenants, refreshed from the database (new sessions see the change)."""
        self.tenants = set(names)

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
        return self.sink.record(share)

    def note_rejected(self, session: Session, method: str, error: StratumError) -> None:
        if method != "mining.submit":
            return
        session.rejected += 1
        self.stats[f"rejected_{error.reason}"] += 1
        if session.submit_worker is not None:
            self.sink.count_reject(session, error.reason, self.clock())
        if error.code != E.JOB_NOT_FOUND:  # stale shares after a block are normal
            self.note_invalid(session, error.reason)

    def note_invalid(self, session: Session, reason: str) -> None:
        """Count an invalid share or message from the session's address; ban on a flood."""
        ban = self.settings.stratum.ban
        ip = session.peer
        now = self.clock()
        start, count = self.invalid.get(ip, (now, 0))
        if now - start > ban.window_s:
            start, count = now, 0
        count += 1
        self.invalid[ip] = (start, count)
        if count >= ban.invalid_shares and ban.ban_s > 0:
            self.ban(ip, ban.ban_s, f"{count} invalid shares or messages in {ban.window_s:g} s")

    def ban(self, ip: str, seconds: float, why: str) -> None:
        self.banned[ip] = self.clock() + seconds
        self.invalid.pop(ip, None)
        log.warning("banned %s for %g s: %s", ip, seconds, why)
        for session in [s for s in self.sessions if s.peer == ip]:
            transport = session.protocol.transport
            if transport is not None:
                transport.loseConnection()
        for proto in [p for p in self.unsubscribed if p.peer == ip]:
            if proto.transport is not None:
                proto.transport.loseConnection()

    def block_found(
        self,
        session: Session,
        entry: JobEntry,
        share: ShareRecord,
        en2_hex: str,
        ntime_hex: str,
        nonce_hex: str,
        bits_hex: str | None,
        mask: int,
    ) -> defer.Deferred[None]:
        """Assemble the block, submit it, record the answer; the reply waits for all that."""
        job = entry.job
        work = job.work
        en2 = bytes.fromhex(en2_hex)
        version = work.rolled_version(None if bits_hex is None else int(bits_hex, 16), mask)
        root = work.merkle_root(session.extranonce1, en2)
        header = work.header(root, int(ntime_hex, 16), int(nonce_hex, 16), version)
        block = job.block(session.extranonce1 + en2, header)
        block_hash = hash_to_hex(share.hash)
        log.info(
            "block candidate %s at height %d from %s.%s",
            block_hash,
            job.height,
            share.tenant,
            share.worker,
        )
        self.stats["blocks_found"] += 1
        d = self.node.submit_block(block.hex())

        def answered(result: SubmitResult) -> defer.Deferred[None] | None:
            if result.accepted:
                self.stats["blocks_accepted"] += 1
                log.info("block %s accepted by the node", block_hash)
            else:
                self.stats["blocks_rejected"] += 1
                log.error("block %s rejected by the node: %s", block_hash, result.reason)
            if self.on_block is not None:
                self.on_block()
            return self._record_found(
                share, block_hash, job.template.coinbasevalue, result.accepted, result.reason
            )

        def failed(failure: Any) -> defer.Deferred[None] | None:
            self.stats["blocks_unsubmitted"] += 1
            log.error("block %s could not be submitted: %s", block_hash, failure.getErrorMessage())
            return self._record_found(
                share,
                block_hash,
                job.template.coinbasevalue,
                False,
                f"submit failed: {failure.getErrorMessage()}",
            )

        recorded: defer.Deferred[Any] = d.addCallbacks(answered, failed)
        return recorded

    def _record_found(
        self,
        share: ShareRecord,
        block_hash: str,
        reward_sat: int,
        accepted: bool,
        answer: str | None,
    ) -> defer.Deferred[Any] | None:
        """Record the block's share, then the block (the ledger keeps that order: a block row
        in the database means its share is there too); the reply waits for both."""
        pending = [
            d
            for d in (
                self.record_share(share),
                self.sink.record_block(share, block_hash, reward_sat, accepted, answer),
            )
            if d is not None
        ]
        if not pending:
            return None
        both: defer.Deferred[Any] = defer.gatherResults(pending, consumeErrors=True)
        return both.addCallback(lambda _: None)

    # --- periodic sweep ----------------------------------------------------------------------

    def _sweep(self) -> None:
        now = self.clock()
        timeout = self.settings.stratum.subscribe_timeout_s
        for proto, since in list(self.unsubscribed.items()):
            if now - since > timeout:
                del self.unsubscribed[proto]
                self.stats["closed_unsubscribed"] += 1
                if proto.transport is not None:
                    proto.transport.loseConnection()
        # Vardiff's idle check, a slice of the sessions per second, so that 15,000 sessions
        # never stall the reactor for more than a fraction of a millisecond at a time.
        if not self._idle_queue:
            self._idle_queue = list(self.sessions)
        batch = self._idle_queue[-IDLE_CHECKS_PER_SWEEP:]
        del self._idle_queue[-IDLE_CHECKS_PER_SWEEP:]
        idle_limit = self.settings.stratum.idle_timeout_s
        for session in batch:
            if session not in self.sessions:
                continue
            if idle_limit and now - session.protocol.last_data_at > idle_limit:
                self.stats["closed_idle"] += 1
                log.info("closed %s: silent for %g s", session.peer, idle_limit)
                if session.protocol.transport is not None:
                    session.protocol.transport.loseConnection()
                continue
            if session in self.working:
                session.check_idle(now)
                if session.outbox:
                    session.protocol.send(b"")
        for ip, until in list(self.banned.items()):
            if until <= now:
                del self.banned[ip]
