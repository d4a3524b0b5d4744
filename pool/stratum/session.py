"""One miner connection's state and its methods: the session step of the share path.

subscribe / authorize / configure / suggest_difficulty / extranonce.subscribe / submit. A
method returns its result (or a Deferred of it) or raises StratumError; messages the pool
pushes right after a reply (difficulty, first job) go to the outbox, which the protocol sends
after the reply. Share checks run in a fixed order, each with its own error: subscribed (25),
authorized worker (24), well-formed (20: every field parsed once, hex digit by digit), job
known on the current tip (21), then the judge (pool/stratum/judge.py): version bits inside
the negotiated mask (20), ntime window (20), duplicate (22), difficulty (23, with a grace
window for the previous difficulty). Every difficulty a miner asks for is checked finite and
bounded before it is stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pool.config import ListenerSettings
from pool.hashing import difficulty_to_target
from pool.ledger.records import ShareRecord
from pool.stratum import errors as E
from pool.stratum.errors import StratumError
from pool.stratum.extranonce import ExtranonceExhausted
from pool.stratum.judge import (
    Grace,
    SubmitError,
    duplicate_key,
    judge,
    ntime_window,
    parse_submit,
)
from pool.stratum.vardiff import Vardiff, clamp, nice_difficulty

if TYPE_CHECKING:
    from pool.stratum.protocol import StratumProtocol
    from pool.stratum.server import StratumServer

_DIFFICULTY_OPTION = re.compile(r"(?:^|[,;\s])d=([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


@dataclass(frozen=True, slots=True)
class Worker:
    """An authorized `tenant.worker` name on a session."""

    name: str
    tenant: str
    worker: str


def finite_difficulty(value: Any, what: str) -> float:
    """A difficulty from a miner as a float: a JSON number that is finite and above 0, else
    error 20 (NaN, Infinity, a number too large for a float, zero, negative, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StratumError(E.OTHER, f"{what} must be a number above 0")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not (math.isfinite(number) and number > 0):
        raise StratumError(E.OTHER, f"{what} must be a finite number above 0")
    return number


def difficulty_json(value: float) -> float | int:
    """Difficulty as a JSON number: whole numbers without a fraction (some firmware cares)."""
    return int(value) if value == int(value) and value < 2**53 else value


class Session:
    """State of one connection; methods are called by the protocol in message order."""

    __slots__ = (
        "accepted",
        "agent",
        "connected_at",
        "difficulty",
        "difficulty_changed_at",
        "extranonce1",
        "extranonce_subscribed",
        "fixed_difficulty",
        "floor",
        "invalid_score",
        "invalid_since",
        "last_share_at",
        "listener",
        "outbox",
        "peer",
        "prev_difficulty",
        "prev_target",
        "protocol",
        "rejected",
        "server",
        "share_target",
        "submit_worker",
        "subscribed",
        "vardiff",
        "version_mask",
        "workers",
        "working",
    )

    def __init__(
        self,
        server: StratumServer,
        listener: ListenerSettings,
        protocol: StratumProtocol,
        peer: str,
        now: float,
    ) -> None:
        self.server = server
        self.listener = listener
        self.protocol = protocol
        self.peer = peer
        self.connected_at = now
        self.subscribed = False
        self.working = False
        self.agent = ""
        self.extranonce1: bytes = b""
        self.extranonce_subscribed = False
        self.workers: dict[str, Worker] = {}
        self.submit_worker: Worker | None = None  # the worker of the submit being checked
        self.difficulty = listener.start_difficulty
        self.share_target = difficulty_to_target(self.difficulty)
        self.prev_difficulty = 0.0
        self.prev_target = 0
        self.difficulty_changed_at = 0.0
        self.fixed_difficulty = False
        self.floor = listener.min_difficulty
        self.version_mask: int | None = None
        self.vardiff = Vardiff(listener.vardiff, now) if listener.vardiff.enabled else None
        self.outbox: list[bytes] = []
        self.accepted = 0
        self.rejected = 0
        self.last_share_at = 0.0
        # Invalid shares and messages (weighted) since invalid_since: a flood closes the
        # session (Gatekeeper.note_invalid).
        self.invalid_score = 0.0
        self.invalid_since = now

    # --- dispatch ------------------------------------------------------------------------

    def handle(self, method: str, params: list[Any]) -> Any:
        if method == "mining.submit":
            return self.submit(params)
        handler = _HANDLERS.get(method)
        if handler is None:
            raise StratumError(E.OTHER, f"Unknown method {method[:64]!r}")
        return handler(self, params)

    # --- methods -------------------------------------------------------------------------

    def subscribe(self, params: list[Any]) -> Any:
        if self.subscribed:
            return self._subscribe_result()
        if params and isinstance(params[0], str):
            self.agent = params[0][:128]
        wanted = None
        if len(params) > 1 and isinstance(params[1], str):
            try:
                wanted = bytes.fromhex(params[1])
            except ValueError:
                wanted = None  # not one of ours: a new extranonce1
        try:
            self.extranonce1 = self.server.extranonces.allocate(wanted)
        except ExtranonceExhausted:
            raise StratumError(E.OTHER, "Pool is full: no extranonce1 left") from None
        self.subscribed = True
        self.server.session_subscribed(self)
        self._maybe_start_work()
        return self._subscribe_result()

    def _subscribe_result(self) -> list[Any]:
        session_id = self.extranonce1.hex()
        return [
            [["mining.set_difficulty", session_id], ["mining.notify", session_id]],
            session_id,
            self.server.extranonce2_size,
        ]

    def authorize(self, params: list[Any]) -> bool:
        if not params or not isinstance(params[0], str):
            raise StratumError(E.OTHER, 'authorize takes ["tenant.worker", "password"]')
        name = params[0].strip()
        tenant, _, worker = name.partition(".")
        if not self.server.tenant_known(tenant):
            raise StratumError(
                E.UNAUTHORIZED, f"Unauthorized worker: unknown tenant {tenant[:64]!r}", result=False
            )
        if len(name) > 128 or not worker.isprintable():
            raise StratumError(E.UNAUTHORIZED, "Unauthorized worker: bad worker name", result=False)
        if self.server.gate.worker_banned(self.peer, name):
            raise StratumError(
                E.UNAUTHORIZED,
                "Unauthorized worker: banned for a while after floods of invalid shares",
                result=False,
            )
        cap = self.server.settings.stratum.max_workers_per_session
        if name not in self.workers and len(self.workers) >= cap:
            raise StratumError(
                E.UNAUTHORIZED,
                f"Unauthorized worker: {cap} workers on one connection at most",
                result=False,
            )
        password = params[1] if len(params) > 1 and isinstance(params[1], str) else ""
        match = _DIFFICULTY_OPTION.search(password)
        fixed = None
        if match:
            try:
                fixed = max(self._bounded(float(match.group(1)), "d= in the password"), self.floor)
            except StratumError as exc:
                raise StratumError(exc.code, exc.message, result=False) from None
        self.workers[name] = Worker(name, tenant, worker or "default")
        if fixed is not None:
            self.fixed_difficulty = True
            self.set_difficulty(fixed, push=self.working)
        self._maybe_start_work()
        return True

    def drop_tenants(self, tenants: set[str]) -> bool:
        """Forget the workers of tenants that are no longer active (their shares are refused
        with error 24 from now on); True when the session has no worker left."""
        gone = [name for name, w in self.workers.items() if w.tenant in tenants]
        for name in gone:
            del self.workers[name]
        return bool(gone) and not self.workers

    def configure(self, params: list[Any]) -> dict[str, Any]:
        if len(params) < 1 or not isinstance(params[0], list):
            raise StratumError(E.OTHER, "configure takes [[extensions], {parameters}]")
        options = params[1] if len(params) > 1 else {}
        if not isinstance(options, dict):
            raise StratumError(E.OTHER, "configure parameters must be an object")
        result: dict[str, Any] = {}
        for extension in params[0]:
            if extension == "version-rolling":
                result.update(self._configure_version_rolling(options))
            elif extension == "minimum-difficulty":
                try:
                    floor = self._bounded(
                        options.get("minimum-difficulty.value"), "minimum-difficulty.value"
                    )
                except StratumError:
                    result["minimum-difficulty"] = False
                    continue
                self.floor = floor
                if self.difficulty < self.floor:
                    self.set_difficulty(self.floor, push=self.working)
                result["minimum-difficulty"] = True
            elif extension == "subscribe-extranonce":
                self.extranonce_subscribed = True
                result["subscribe-extranonce"] = True
            elif isinstance(extension, str):
                result[extension] = False
        return result

    def _configure_version_rolling(self, options: dict[str, Any]) -> dict[str, Any]:
        mask_text = options.get("version-rolling.mask", "ffffffff")
        min_bits = options.get("version-rolling.min-bit-count", 0)
        if not isinstance(mask_text, str) or not _HEX8.fullmatch(mask_text.zfill(8)):
            raise StratumError(E.OTHER, "version-rolling.mask must be 8 hex digits")
        if isinstance(min_bits, bool) or not isinstance(min_bits, int) or min_bits < 0:
            raise StratumError(E.OTHER, "version-rolling.min-bit-count must be a whole number")
        mask = self.server.settings.stratum.version_mask & int(mask_text, 16)
        if bin(mask).count("1") < min_bits:
            self.version_mask = None
            return {"version-rolling": False}
        self.version_mask = mask
        return {"version-rolling": True, "version-rolling.mask": f"{mask:08x}"}

    def suggest_difficulty(self, params: list[Any]) -> bool:
        value = self._bounded(params[0] if params else None, "suggest_difficulty")
        if not self.fixed_difficulty:
            self.set_difficulty(max(value, self.floor), push=self.working)
        return True

    def _bounded(self, value: Any, what: str) -> float:
        """A difficulty a miner asks for: finite and above 0 (else error 20), then within the
        listener's bounds."""
        number = finite_difficulty(value, what)
        return clamp(number, self.listener.min_difficulty, self.listener.max_difficulty)

    def extranonce_subscribe(self, params: list[Any]) -> bool:
        self.extranonce_subscribed = True
        return True

    # --- work and difficulty ---------------------------------------------------------------

    def _maybe_start_work(self) -> None:
        if self.working or not self.subscribed or not self.workers:
            return
        entry = self.server.jobs.current
        if entry is None:
            return
        self.working = True
        self.outbox.append(self._set_difficulty_message())
        self.outbox.append(entry.notify(True))
        self.server.session_working(self)

    def set_difficulty(self, value: float, push: bool, now: float | None = None) -> None:
        """Change the session's difficulty; shares at the old one count during the grace."""
        if not (math.isfinite(value) and value > 0):  # callers bound it; never store NaN
            raise ValueError(f"difficulty must be finite and above 0, got {value!r}")
        if value == self.difficulty:
            return
        self.prev_difficulty = self.difficulty
        self.prev_target = self.share_target
        self.difficulty_changed_at = self.server.clock() if now is None else now
        self.difficulty = value
        self.share_target = difficulty_to_target(value)
        if push:
            self.outbox.append(self._set_difficulty_message())

    def _set_difficulty_message(self) -> bytes:
        return (
            b'{"id":null,"method":"mining.set_difficulty","params":[%s]}\n'
            % repr(difficulty_json(self.difficulty)).encode()
        )

    def retarget(self, proposed: float | None, now: float) -> None:
        if proposed is None or self.fixed_difficulty or not math.isfinite(proposed):
            return
        value = clamp(nice_difficulty(proposed), self.floor, self.listener.max_difficulty)
        if value != self.difficulty:
            self.set_difficulty(value, push=self.working, now=now)

    # --- shares ----------------------------------------------------------------------------

    def submit(self, params: list[Any]) -> Any:
        self.submit_worker = None
        if not self.subscribed:
            raise StratumError(E.NOT_SUBSCRIBED, "Not subscribed")
        name = params[0] if params else None
        if not isinstance(name, str):
            raise StratumError(E.OTHER, "submit takes [worker, job_id, extranonce2, ntime, nonce]")
        worker = self.workers.get(name)
        if worker is None:
            raise StratumError(E.UNAUTHORIZED, "Unauthorized worker")
        self.submit_worker = worker  # rejects from here on count against this worker
        server = self.server
        try:
            submit = parse_submit(params, server.extranonce2_size)
        except SubmitError as exc:
            raise StratumError(E.OTHER, exc.message) from None
        entry = server.jobs.get(submit.job_id)
        if entry is None:
            raise StratumError(E.JOB_NOT_FOUND, "Job not found (stale)")
        job = entry.job
        now = server.clock()
        grace = None
        if self.prev_target and (
            now - self.difficulty_changed_at <= server.settings.stratum.difficulty_grace_s
        ):
            grace = Grace(self.prev_difficulty, self.prev_target)
        template = job.template
        verdict = judge(
            job.work,
            self.extranonce1,
            submit,
            version_mask=self.version_mask if self.version_mask is not None else 0,
            difficulty=self.difficulty,
            share_target=self.share_target,
            grace=grace,
            ntime_range=ntime_window(template.mintime, template.curtime, now, server.ntime_ahead_s),
            seen=entry.seen,
        )
        if verdict.code is not None:
            raise StratumError(verdict.code, verdict.reason or "Invalid share")
        entry.seen.add(duplicate_key(verdict.digest))
        self.accepted += 1
        self.last_share_at = now
        share = ShareRecord(
            verdict.digest,
            worker.tenant,
            worker.worker,
            self.listener.site,
            job.job_id,
            job.height,
            verdict.credited,
            verdict.share_difficulty,
            verdict.is_block,
            now,
            bits=job.work.nbits,
        )
        if self.vardiff is not None:
            self.retarget(self.vardiff.on_share(self.difficulty, now), now)
        if verdict.is_block:
            return server.blocks.found(self, entry, share, submit, verdict.version)
        return server.record_share(share)

    def check_idle(self, now: float) -> None:
        """Periodic: let vardiff lower the difficulty of a session whose shares stopped."""
        if self.vardiff is not None and self.working:
            self.retarget(self.vardiff.on_idle(self.difficulty, now), now)


_HANDLERS: dict[str, Any] = {
    "mining.subscribe": Session.subscribe,
    "mining.authorize": Session.authorize,
    "mining.configure": Session.configure,
    "mining.suggest_difficulty": Session.suggest_difficulty,
    "mining.extranonce.subscribe": Session.extranonce_subscribe,
}
