"""A simulated miner: speaks Stratum like ASIC firmware and sends real shares.

Not part of the share path: the other end of it, for the demo, tests and load. It configures
version rolling, suggests a difficulty, subscribes, authorizes, follows set_difficulty and
notify, and submits shares at the rate its nominal hashrate gives at its difficulty. Each share
is a real one, found by hashing with the pool's own hashing core, as long as the difficulty is
small enough to find one on a CPU (`max_tries` hashes); a share that also meets the network
target is a block.
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import protocol, task
from twisted.protocols.basic import LineOnlyReceiver

from pool.hashing import (
    BIP320_VERSION_MASK,
    HeaderWork,
    difficulty_to_target,
)


@dataclass(frozen=True)
class MinerSpec:
    """One simulated machine."""

    tenant: str
    worker: str
    hashrate: float  # hashes per second it pretends to do
    version_rolling: bool = True
    suggest_difficulty: float | None = None
    max_tries: int = 4096
    #: Firmware slips, as a fraction of shares: a share for the previous job after a new
    #: block (answered stale, 21), a share sent twice in a row, while its job is current
    #: (answered duplicate, 22).
    stale_rate: float = 0.0
    duplicate_rate: float = 0.0
    #: Drop the connection after this many seconds and come back, resuming the session.
    reconnect_after_s: float | None = None


@dataclass
class MinerStats:
    accepted: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    blocks: int = 0
    unfound: int = 0  # ticks where no share was found within max_tries (difficulty too high)
    work: float = 0.0
    submitted: int = 0  # every mining.submit sent (answered or not)
    stale_sent: int = 0
    duplicates_sent: int = 0
    connects: int = 0
    resumed: int = 0  # reconnects that got the same extranonce1 back


class SimulatedMiner(LineOnlyReceiver):
    """The client side of one miner connection."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20
    transport: Any

    def __init__(
        self,
        spec: MinerSpec,
        reactor: Any,
        stats: MinerStats | None = None,
        session_id: str = "",
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.reactor = reactor
        self.stats = stats or MinerStats()
        self.session_id = session_id  # from a previous connection: resume it
        self.rng = rng or random.Random()
        self.previous: tuple[str, HeaderWork, int] | None = None  # the job before a new block
        self.last_submit: list[str] | None = None
        self.difficulty = 1.0
        self.work: HeaderWork | None = None
        self.job_id = ""
        self.ntime = 0
        self.extranonce1 = b""
        self.extranonce2_size = 4
        self.mask = 0
        self.authorized = False
        self._next_id = 10
        self._pending: dict[int, Callable[[Any, Any], None]] = {}
        self._en2 = int.from_bytes(os.urandom(3), "big") << 8
        self._loop: task.LoopingCall | None = None

    # --- messages --------------------------------------------------------------------------

    def request(
        self, method: str, params: list[Any], then: Callable[[Any, Any], None] | None = None
    ) -> None:
        self._next_id += 1
        if method == "mining.submit":
            self.stats.submitted += 1
        if then is not None:
            self._pending[self._next_id] = then
        line = {"id": self._next_id, "method": method, "params": params}
        self.transport.write(json.dumps(line).encode() + b"\n")

    def connectionMade(self) -> None:
        spec = self.spec
        if spec.version_rolling:
            self.request(
                "mining.configure",
                [
                    ["version-rolling"],
                    {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2},
                ],
                self._configured,
            )
        self.stats.connects += 1
        subscribe = ["farmpool-sim/1.0"] + ([self.session_id] if self.session_id else [])
        self.request("mining.subscribe", subscribe, self._subscribed)
        if spec.reconnect_after_s is not None and self.stats.connects == 1:
            self.reactor.callLater(spec.reconnect_after_s, self._drop)
        if spec.suggest_difficulty is not None:
            self.request("mining.suggest_difficulty", [spec.suggest_difficulty])
        self.request("mining.authorize", [f"{spec.tenant}.{spec.worker}", "x"], self._authorized)

    def _configured(self, result: Any, error: Any) -> None:
        if isinstance(result, dict) and result.get("version-rolling"):
            self.mask = int(result["version-rolling.mask"], 16)

    def _subscribed(self, result: Any, error: Any) -> None:
        if error is None:
            self.extranonce1 = bytes.fromhex(result[1])
            self.extranonce2_size = int(result[2])
            if self.session_id and self.extranonce1.hex() == self.session_id:
                self.stats.resumed += 1
            self.session_id = self.extranonce1.hex()  # the pool's session id is extranonce1

    def _drop(self) -> None:
        """A planned disconnect (a firmware restart, a network blip): come back and resume."""
        if self.transport is not None and self.transport.connected:
            self.transport.loseConnection()

    def _authorized(self, result: Any, error: Any) -> None:
        self.authorized = result is True

    def lineReceived(self, line: bytes) -> None:
        message = json.loads(line)
        method = message.get("method")
        if method is None:
            then = self._pending.pop(message.get("id"), None)
            if then is not None:
                then(message.get("result"), message.get("error"))
            return
        params = message.get("params") or []
        if method == "mining.set_difficulty":
            self.difficulty = float(params[0])
        elif method == "mining.notify":
            self._new_job(params)
        elif method == "client.reconnect":
            self.transport.loseConnection()

    def _new_job(self, params: list[Any]) -> None:
        if params[8] is True and self.work is not None:  # a new block: keep the old job once
            self.previous = (self.job_id, self.work, self.ntime)
        self.job_id = params[0]
        self.work = HeaderWork.from_notify(params)
        self.ntime = int(params[7], 16)
        if self._loop is None:
            self._loop = task.LoopingCall(self._tick)
            self._loop.clock = self.reactor
            self._loop.start(self.share_interval(), now=False)

    def share_interval(self) -> float:
        """Seconds between shares for this hashrate at this difficulty (at least 1 ms)."""
        return max(self.difficulty * 2**32 / self.spec.hashrate, 0.001)

    def _tick(self) -> None:
        loop = self._loop
        if loop is not None and abs((loop.interval or 0.0) - self.share_interval()) > 1e-9:
            loop.stop()  # the difficulty changed: a new pace
            self._loop = task.LoopingCall(self._tick)
            self._loop.clock = self.reactor
            self._loop.start(self.share_interval(), now=False)
        if self.work is None or not self.authorized:
            return
        roll = self.rng.random()
        if roll < self.spec.duplicate_rate:
            # The same submit again at once: the pool judges it on the job it was found for.
            if self.submit_one() and self.last_submit is not None:
                self.stats.duplicates_sent += 1
                self.request("mining.submit", self.last_submit, self._slip)
            return
        if roll < self.spec.duplicate_rate + self.spec.stale_rate and self.previous is not None:
            job_id, work, ntime = self.previous
            self.previous = None
            if self._send_share(job_id, work, ntime, self._slip):
                self.stats.stale_sent += 1
            return
        self.submit_one()

    def _slip(self, result: Any, error: Any) -> None:
        """The answer to a stale or duplicate share (rejected, or accepted if it was lucky)."""
        if result is True:
            self.stats.accepted += 1
        else:
            code = error[0] if isinstance(error, list) and error else 0
            self.stats.rejected[code] += 1

    def submit_one(self) -> bool:
        """Find a share at the current difficulty (by hashing) and submit it; False if none
        was found within `max_tries` hashes."""
        work = self.work
        assert work is not None
        return self._send_share(
            self.job_id,
            work,
            self.ntime,
            functools.partial(self._submitted, difficulty=self.difficulty),
        )

    def _send_share(
        self, job_id: str, work: HeaderWork, ntime: int, then: Callable[..., None]
    ) -> bool:
        target = difficulty_to_target(self.difficulty)
        size = self.extranonce2_size
        version_bits = None
        for _ in range(self.spec.max_tries):
            self._en2 = (self._en2 + 1) % (1 << (8 * size))
            extranonce2 = self._en2.to_bytes(size, "big")
            nonce = int.from_bytes(os.urandom(4), "big")
            version = work.version
            if self.mask:
                version_bits = (
                    int.from_bytes(os.urandom(4), "big") & self.mask & BIP320_VERSION_MASK
                )
                version = work.rolled_version(version_bits, self.mask)
            _, value = work.hash_share(self.extranonce1, extranonce2, ntime, nonce, version)
            if value <= target:
                params = [
                    f"{self.spec.tenant}.{self.spec.worker}",
                    job_id,
                    extranonce2.hex(),
                    f"{ntime:08x}",
                    f"{nonce:08x}",
                ]
                if version_bits is not None:
                    params.append(f"{version_bits:08x}")
                self.last_submit = params
                block = value <= work.network_target
                if isinstance(then, functools.partial):
                    then = functools.partial(then, block=block)
                self.request("mining.submit", params, then)
                return True
        self.stats.unfound += 1
        return False

    def _submitted(self, result: Any, error: Any, block: bool, difficulty: float) -> None:
        if result is True:
            self.stats.accepted += 1
            self.stats.work += difficulty
            if block:
                self.stats.blocks += 1
        else:
            code = error[0] if isinstance(error, list) and error else 0
            self.stats.rejected[code] += 1

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()


class MinerFactory(protocol.ClientFactory):
    """Builds one SimulatedMiner at a time, and after a lost connection (a planned drop, or
    client.reconnect from the pool) connects again a second later and resumes its session;
    the statistics run across connections."""

    def __init__(self, spec: MinerSpec, reactor: Any, seed: int | None = None) -> None:
        self.spec = spec
        self.reactor = reactor
        self.miner: SimulatedMiner | None = None
        self.stats = MinerStats()
        self.rng = random.Random(seed)
        self.stopping = False

    def buildProtocol(self, addr: Any) -> SimulatedMiner:
        session = self.miner.session_id if self.miner is not None else ""
        self.miner = SimulatedMiner(self.spec, self.reactor, self.stats, session, self.rng)
        self.miner.factory = self
        return self.miner

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        if not self.stopping:
            self.reactor.callLater(1.0, connector.connect)
