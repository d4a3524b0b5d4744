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
from pool.logthrottle import ThrottledLog
from pool.stratum import errors as E
from pool.stratum.admission import Admission
from pool.stratum.errors import StratumError
from pool.stratum.extranonce import ExtranonceAllocator
from pool.stratum.jobs import JobEntry, JobRegistry
from pool.stratum.judge import Submit
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


class ShareObserver(Protocol):
    """Told of every accepted share and every block, after the sink (the alerts): it must
    only note them (no I/O, nothing slow), since it runs in the share path."""

    def on_share(self, share: ShareRecord) -> None: ...

    def on_block(
        self, share: ShareRecord, block_hash: str, accepted: bool, answer: str | None
    ) -> None: ...


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
        self.observer: ShareObserver | None = None
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
        self.admission = Admission(settings.stratum, clock)
        # What miners make the server do (refuse, close, ban), logged at a bounded rate.
        self.events = ThrottledLog(log, clock)
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
        self.admission.configure(settings.stratum)
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
        for session in list(self.sessions):
            self.reconnect(session)
        log.info("sent client.reconnect to %d sessions", len(self.sessions))
        done: defer.Deferred[None] = defer.DeferredList(stopped).addCallback(lambda _: None)
        return done

    # --- connections -----------------------------------------------------------------------

    def admit(self, proto: StratumProtocol) -> bool:
        """Count a new connection from `proto.peer`, or refuse it (banned, too many)."""
        if self.stopping:
            return False
        refusal = self.admission.refusal(proto.peer)
        if refusal is not None:
            self.stats[f"refused_{refusal}"] += 1
            if refusal == "per_ip":
                self.events.warning(
                    "refused_per_ip",
                    "refused %s: %d connections from it already",
                    proto.peer,
                    self.admission.per_ip[proto.peer],
                )
            return False
        self.unsubscribed[proto] = self.clock()
        return True

    def admit_pending(self, proto: StratumProtocol) -> bool:
        """A connection from a trusted proxy that has not sent its PROXY header yet: it
        counts against the balancer's address until it does (release_pending)."""
        if self.stopping:
            return False
        refusal = self.admission.refusal(proto.peer)
        if refusal is not None:
            self.stats[f"refused_{refusal}"] += 1
            return False
        return True

    def release_pending(self, ip: str) -> None:
        self.admission.release(ip)

    def refused_untrusted_proxy(self, ip: str, listener: str) -> None:
        """A connection to a PROXY listener from outside its trusted_proxies: refused."""
        self.stats["refused_untrusted_proxy"] += 1
        self.events.warning(
            "refused_untrusted_proxy",
            "refused %s on listener %s: not one of its trusted_proxies",
            ip,
            listener,
        )

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
        self.admission.release(session.peer)

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
            port = self.bound_ports.get(listener.name, listener.port)
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

    def note_rejected(self, session: Session, method: str, error: StratumError) -> None:
        """A request refused with an error: rejected shares are counted (against the worker
        the session authorized, if the submit named one) and, like refused authorizes,
        weigh toward closing the session."""
        if method == "mining.submit":
            session.rejected += 1
            self.stats[f"rejected_{error.reason}"] += 1
            if session.submit_worker is not None:
                self.sink.count_reject(session, error.reason, self.clock())
            weight = 1.0
            if error.code == E.JOB_NOT_FOUND:  # a few stale shares after a block are normal
                weight = self.settings.stratum.ban.stale_weight
            self.note_invalid(session, error.reason, weight)
        elif method == "mining.authorize":
            self.stats["authorize_refused"] += 1
            self.note_invalid(session, "authorize")

    def note_invalid(self, session: Session, reason: str, weight: float = 1.0) -> None:
        """Count an invalid share or message against the session; close it on a flood."""
        if weight <= 0 or session.protocol.closing:
            return
        ban = self.settings.stratum.ban
        now = self.clock()
        if now - session.invalid_since > ban.window_s:
            session.invalid_since, session.invalid_score = now, 0.0
        session.invalid_score += weight
        if session.invalid_score >= ban.invalid_shares:
            self.close_misbehaving(
                session, f"{ban.invalid_shares} invalid shares or messages in {ban.window_s:g} s"
            )

    def close_misbehaving(self, session: Session, why: str) -> None:
        """Close a flooding session; ban its worker or its address when that keeps
        happening (pool/stratum/admission.py)."""
        self.stats["closed_invalid"] += 1
        ip = session.peer
        identity = next(iter(session.workers), None) or f"#{id(session)}"
        self.events.warning(
            "closed_invalid", "closed a session from %s (%s): %s", ip, identity[:80], why
        )
        session.protocol.close()
        worker_ban, address_ban = self.admission.strike(ip, identity)
        ban_s = self.settings.stratum.ban.ban_s
        if worker_ban:
            self.stats["bans_worker"] += 1
            self.events.warning(
                "bans_worker", "worker %s banned at %s for %g s", identity[:80], ip, ban_s
            )
            self._close_where(lambda s: s.peer == ip and identity in s.workers)
        if address_ban:
            self.stats["bans_address"] += 1
            self.events.warning(
                "bans_address",
                "banned %s for %g s: sessions of several workers from it kept misbehaving",
                ip,
                ban_s,
            )
            self._close_address(ip)

    def ban(self, ip: str, seconds: float, why: str) -> bool:
        """Ban an address (an admin's ban); False for an address in trusted_networks."""
        if not self.admission.ban(ip, seconds):
            log.warning("not banned %s (%s): it is in stratum.trusted_networks", ip, why)
            return False
        log.warning("banned %s for %g s: %s", ip, seconds, why)
        self._close_address(ip)
        return True

    def unban(self, ip: str) -> bool:
        return self.admission.unban(ip)

    def banned(self) -> dict[str, float]:
        """Banned addresses and the seconds left (read-only, for the API and metrics)."""
        return self.admission.banned()

    def _close_address(self, ip: str) -> None:
        self._close_where(lambda s: s.peer == ip)
        for proto in [p for p in self.unsubscribed if p.peer == ip]:
            proto.close()

    def _close_where(self, match: Callable[[Session], bool]) -> None:
        for session in [s for s in self.sessions if match(s)]:
            session.protocol.close()

    def block_found(
        self,
        session: Session,
        entry: JobEntry,
        share: ShareRecord,
        submit: Submit,
        version: int,
    ) -> defer.Deferred[None]:
        """Assemble the block from the parsed submit, submit it, record the answer; the reply
        waits for all that."""
        job = entry.job
        work = job.work
        root = work.merkle_root(session.extranonce1, submit.extranonce2)
        header = work.header(root, submit.ntime, submit.nonce, version)
        block = job.block(session.extranonce1 + submit.extranonce2, header)
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
        if self.observer is not None:
            self.observer.on_block(share, block_hash, accepted, answer)
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
        for proto, since in list(self.unsubscribed.items()):
            if now - since > timeout:
                del self.unsubscribed[proto]
                self.stats["closed_unsubscribed"] += 1
                proto.close()
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
        self.admission.expire()

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
