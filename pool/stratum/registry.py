"""The sessions of one process: who is connected, subscribed and working.

Where it sits in the share path: a connection is counted from the moment it is admitted
(unsubscribed, with the time it came), becomes a session when it subscribes (with an
extranonce1 of its own) and a working session once it has a difficulty and a job (it gets
every job fan-out). Closing returns its extranonce1. Everything that looks for sessions by
address, worker or id (bans, the admin's kick, tenant deactivation) goes through here; the
API and /metrics read it through the read-only views.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from pool.stratum.extranonce import ExtranonceAllocator

if TYPE_CHECKING:
    from pool.stratum.protocol import StratumProtocol
    from pool.stratum.session import Session


class SessionRegistry:
    """Connections and sessions, with the extranonce1 values they hold."""

    def __init__(self, extranonces: ExtranonceAllocator) -> None:
        self.extranonces = extranonces
        self._sessions: set[Session] = set()
        self._working: set[Session] = set()
        self._unsubscribed: dict[StratumProtocol, float] = {}

    # --- read-only views (the API, /metrics, the sweep) ---------------------------------------

    @property
    def sessions(self) -> Collection[Session]:
        """Subscribed sessions."""
        return self._sessions

    @property
    def working(self) -> Collection[Session]:
        """Sessions that get job fan-outs."""
        return self._working

    @property
    def unsubscribed(self) -> Mapping[StratumProtocol, float]:
        """Connections that have not subscribed yet, with when they came."""
        return self._unsubscribed

    def by_listener(self) -> dict[str, int]:
        """Subscribed sessions per listener name."""
        return dict(Counter(session.listener.name for session in self._sessions))

    # --- a connection's life -----------------------------------------------------------------

    def connected(self, proto: StratumProtocol, now: float) -> None:
        self._unsubscribed[proto] = now

    def subscribed(self, session: Session) -> None:
        self._sessions.add(session)
        self._unsubscribed.pop(session.protocol, None)

    def started_work(self, session: Session) -> None:
        self._working.add(session)

    def closed(self, session: Session) -> None:
        self._unsubscribed.pop(session.protocol, None)
        self._sessions.discard(session)
        self._working.discard(session)
        if session.extranonce1:
            self.extranonces.release(session.extranonce1)

    def close_unsubscribed_since(self, before: float) -> int:
        """Close the connections that came before `before` and never subscribed."""
        late = [proto for proto, since in self._unsubscribed.items() if since < before]
        for proto in late:
            del self._unsubscribed[proto]
            proto.close()
        return len(late)

    # --- closing by what they are ------------------------------------------------------------

    def close_where(self, match: Callable[[Session], bool]) -> int:
        """Close the sessions that match; how many."""
        found = [s for s in self._sessions if match(s)]
        for session in found:
            session.protocol.close()
        return len(found)

    def close_address(self, ip: str) -> None:
        """Close every connection from an address, subscribed or not."""
        self.close_where(lambda s: s.peer == ip)
        for proto in [p for p in self._unsubscribed if p.peer == ip]:
            proto.close()

    def kick(self, worker: str | None = None, session_id: str | None = None) -> int:
        """Close the sessions that authorized `worker` (as the miner sent it, or as
        tenant.worker; every worker a session authorized counts, submitted or not) or whose
        id (extranonce1 in hex) is `session_id`; how many."""

        def match(session: Session) -> bool:
            if session_id is not None and session.extranonce1.hex() == session_id.lower():
                return True
            if worker is None:
                return False
            names = set(session.workers) | {
                f"{w.tenant}.{w.worker}" for w in session.workers.values()
            }
            return worker in names

        return self.close_where(match)
