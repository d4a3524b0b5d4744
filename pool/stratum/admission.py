"""Who may connect and who is shut out: per-address caps, bans and trust lists.

The share path's front door. A whole farm site often reaches the pool from one address (NAT),
so misbehaviour is answered at the smallest scope that stops it:

1. a session whose invalid messages and shares reach `ban.invalid_shares` (weighted: a stale
   share counts `ban.stale_weight`) within `ban.window_s` is closed (a strike);
2. the same worker closed `ban.sessions_per_address` times from one address within
   `ban.window_s` is refused at that address for `ban.ban_s` (a faulty ASIC that reconnects
   and goes on sending garbage is shut out, its neighbours keep mining);
3. the address itself is banned for `ban.ban_s` only when `ban.sessions_per_address`
   different workers (or sessions that never authorized one) from it got a strike within
   `ban.window_s`;
4. an address inside `stratum.trusted_networks` is never banned (its sessions and workers
   still are).

Pure bookkeeping on the reactor thread: the server closes the connections this decides on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pool.config import StratumSettings
from pool.netlists import in_networks, parse_networks

log = logging.getLogger(__name__)


@dataclass
class _Strikes:
    """Sessions closed for misbehaviour within one window."""

    since: float
    by_identity: Counter[str]


class Admission:
    """Per-address connection counts, bans (of addresses and of workers at an address),
    strikes, and the trusted networks."""

    def __init__(self, settings: StratumSettings, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.per_ip: Counter[str] = Counter()
        self._banned: dict[str, float] = {}
        self._worker_bans: dict[tuple[str, str], float] = {}
        self._strikes: dict[str, _Strikes] = {}
        self.configure(settings)

    def configure(self, settings: StratumSettings) -> None:
        """Take new limits (start, SIGHUP); bans in force stay."""
        self.settings = settings
        self.trusted = parse_networks(settings.trusted_networks)

    # --- connections ---------------------------------------------------------------------

    def refusal(self, ip: str) -> str | None:
        """Why a new connection from `ip` is refused, or None (and it is counted)."""
        if self.banned_for(ip) > 0:
            return "banned"
        if self.per_ip[ip] >= self.settings.max_connections_per_ip:
            return "per_ip"
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        """A connection counted by `refusal` is gone."""
        left = self.per_ip[ip] - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            del self.per_ip[ip]

    # --- bans ------------------------------------------------------------------------------

    def is_trusted(self, ip: str) -> bool:
        return in_networks(ip, self.trusted)

    def banned_for(self, ip: str) -> float:
        """Seconds the address's ban has left (0: not banned)."""
        until = self._banned.get(ip)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._banned[ip]
            return 0.0
        return left

    def worker_banned(self, ip: str, worker: str) -> bool:
        until = self._worker_bans.get((ip, worker))
        if until is None:
            return False
        if until <= self.clock():
            del self._worker_bans[(ip, worker)]
            return False
        return True

    def ban(self, ip: str, seconds: float) -> bool:
        """Ban the address; False (nothing done) for a trusted one."""
        if self.is_trusted(ip):
            return False
        self._banned[ip] = self.clock() + seconds
        self._strikes.pop(ip, None)
        return True

    def unban(self, ip: str) -> bool:
        """Lift the address's ban and its workers' bans; whether there was one."""
        was = self._banned.pop(ip, None) is not None
        for key in [k for k in self._worker_bans if k[0] == ip]:
            del self._worker_bans[key]
            was = True
        self._strikes.pop(ip, None)
        return was

    def banned(self) -> dict[str, float]:
        """Banned addresses and the seconds each has left."""
        now = self.clock()
        return {ip: until - now for ip, until in self._banned.items() if until > now}

    def strike(self, ip: str, identity: str) -> tuple[bool, bool]:
        """A session from `ip` was closed for misbehaviour; `identity` is its worker's name
        (or a name of its own for a session that never authorized one). Returns (ban the
        worker at this address, ban the address)."""
        ban = self.settings.ban
        now = self.clock()
        strikes = self._strikes.get(ip)
        if strikes is None or now - strikes.since > ban.window_s:
            strikes = self._strikes[ip] = _Strikes(now, Counter())
        strikes.by_identity[identity] += 1
        limit = ban.sessions_per_address
        worker_ban = ban.ban_s > 0 and strikes.by_identity[identity] >= limit
        if worker_ban:
            self._worker_bans[(ip, identity)] = now + ban.ban_s
            del strikes.by_identity[identity]
        address_ban = (
            ban.ban_s > 0 and len(strikes.by_identity) >= limit and not self.is_trusted(ip)
        )
        if address_ban:
            self.ban(ip, ban.ban_s)
        return worker_ban, address_ban

    def expire(self) -> None:
        """Forget bans and strike windows that are over (the server's periodic sweep)."""
        now = self.clock()
        for ip in [ip for ip, until in self._banned.items() if until <= now]:
            del self._banned[ip]
        for key in [k for k, until in self._worker_bans.items() if until <= now]:
            del self._worker_bans[key]
        window = self.settings.ban.window_s
        for ip in [ip for ip, s in self._strikes.items() if now - s.since > window]:
            del self._strikes[ip]
