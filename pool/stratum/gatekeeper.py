"""The share path's doorman: admits connections and removes the miners that misbehave.

It acts on what pool/stratum/admission.py decides (caps, bans, strikes, trust lists): a new
connection is admitted or refused; every invalid message or rejected share weighs on its
session (a stale share at `ban.stale_weight`), and a flood closes the session; a worker or an
address that keeps flooding is banned and its connections closed. Each action is counted in
the server's stats and logged at a bounded rate.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from pool.config import StratumSettings
from pool.logthrottle import ThrottledLog
from pool.stratum import errors as E
from pool.stratum.admission import Admission
from pool.stratum.errors import StratumError
from pool.stratum.registry import SessionRegistry

if TYPE_CHECKING:
    from pool.stratum.protocol import StratumProtocol
    from pool.stratum.session import Session

log = logging.getLogger(__name__)

#: Counts a rejected share against the worker its session authorized (the ledger's count).
CountReject = Callable[["Session", str, float], None]


class Gatekeeper:
    """Admission, invalid-message scores, floods, and bans, acted on."""

    def __init__(
        self,
        settings: StratumSettings,
        registry: SessionRegistry,
        clock: Callable[[], float],
        stats: Counter[str],
        events: ThrottledLog,
        count_reject: CountReject,
    ) -> None:
        self.settings = settings
        self.admission = Admission(settings, clock)
        self.registry = registry
        self.clock = clock
        self.stats = stats
        self.events = events
        self.count_reject = count_reject
        self.stopping = False  # the server is shutting down: nobody new comes in

    def configure(self, settings: StratumSettings) -> None:
        """New limits (SIGHUP); bans in force stay."""
        self.settings = settings
        self.admission.configure(settings)

    # --- connections -----------------------------------------------------------------------

    def admit(self, proto: StratumProtocol) -> bool:
        """Count a new connection from `proto.peer`, or refuse it (banned, too many)."""
        if not self._admitted(proto.peer):
            return False
        self.registry.connected(proto, self.clock())
        return True

    def admit_pending(self, proto: StratumProtocol) -> bool:
        """A connection from a trusted proxy that has not sent its PROXY header yet: it
        counts against the balancer's address until it does (release_pending)."""
        return self._admitted(proto.peer, log_per_ip=False)

    def _admitted(self, ip: str, log_per_ip: bool = True) -> bool:
        if self.stopping:
            return False
        refusal = self.admission.refusal(ip)
        if refusal is None:
            return True
        self.stats[f"refused_{refusal}"] += 1
        if refusal == "per_ip" and log_per_ip:
            self.events.warning(
                "refused_per_ip",
                "refused %s: %d connections from it already",
                ip,
                self.admission.per_ip[ip],
            )
        return False

    def release_pending(self, ip: str) -> None:
        self.admission.release(ip)

    def released(self, session: Session) -> None:
        """A session closed: its address has one connection less."""
        self.admission.release(session.peer)

    def refused_untrusted_proxy(self, ip: str, listener: str) -> None:
        """A connection to a PROXY listener from outside its trusted_proxies: refused."""
        self.stats["refused_untrusted_proxy"] += 1
        self.events.warning(
            "refused_untrusted_proxy",
            "refused %s on listener %s: not one of its trusted_proxies",
            ip,
            listener,
        )

    # --- misbehaviour ------------------------------------------------------------------------

    def note_rejected(self, session: Session, method: str, error: StratumError) -> None:
        """A request refused with an error: rejected shares are counted (against the worker
        the session authorized, if the submit named one) and, like refused authorizes,
        weigh toward closing the session."""
        if method == "mining.submit":
            session.rejected += 1
            self.stats[f"rejected_{error.reason}"] += 1
            if session.submit_worker is not None:
                self.count_reject(session, error.reason, self.clock())
            weight = 1.0
            if error.code == E.JOB_NOT_FOUND:  # a few stale shares after a block are normal
                weight = self.settings.ban.stale_weight
            self.note_invalid(session, error.reason, weight)
        elif method == "mining.authorize":
            self.stats["authorize_refused"] += 1
            self.note_invalid(session, "authorize")

    def note_invalid(self, session: Session, reason: str, weight: float = 1.0) -> None:
        """Count an invalid share or message against the session; close it on a flood."""
        if weight <= 0 or session.protocol.closing:
            return
        ban = self.settings.ban
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
        ban_s = self.settings.ban.ban_s
        if worker_ban:
            self.stats["bans_worker"] += 1
            self.events.warning(
                "bans_worker", "worker %s banned at %s for %g s", identity[:80], ip, ban_s
            )
            self.registry.close_where(lambda s: s.peer == ip and identity in s.workers)
        if address_ban:
            self.stats["bans_address"] += 1
            self.events.warning(
                "bans_address",
                "banned %s for %g s: sessions of several workers from it kept misbehaving",
                ip,
                ban_s,
            )
            self.registry.close_address(ip)

    # --- an admin's bans ---------------------------------------------------------------------

    def ban(self, ip: str, seconds: float, why: str) -> bool:
        """Ban an address (an admin's ban); False for an address in trusted_networks."""
        if not self.admission.ban(ip, seconds):
            log.warning("not banned %s (%s): it is in stratum.trusted_networks", ip, why)
            return False
        log.warning("banned %s for %g s: %s", ip, seconds, why)
        self.registry.close_address(ip)
        return True

    def unban(self, ip: str) -> bool:
        return self.admission.unban(ip)

    def banned(self) -> dict[str, float]:
        """Banned addresses and the seconds left (read-only, for the API and metrics)."""
        return self.admission.banned()

    def worker_banned(self, ip: str, worker: str) -> bool:
        return self.admission.worker_banned(ip, worker)

    def expire(self) -> None:
        """Forget bans and strikes that are over (the sweep, once a second)."""
        self.admission.expire()
