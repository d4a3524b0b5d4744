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


@dataclass
class MinerStats:
    accepted: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    blocks: int = 0
    unfound: int = 0  # ticks where no share was found within max_tries (difficulty too high)
    work: float = 0.0


class SimulatedMiner(LineOnlyReceiver):
    """The client side of one miner connection."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20
    transport: Any

    def __init__(self, spec: MinerSpec, reactor: Any) -> None:
        self.spec = spec
        self.reactor = reactor
        self.stats = MinerStats()
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
        self.request("mining.subscribe", ["farmpool-sim/1.0"], self._subscribed)
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
        self.submit_one()

    def submit_one(self) -> None:
        """Find a share at the current difficulty (by hashing) and submit it."""
        work = self.work
        assert work is not None
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
            _, value = work.hash_share(self.extranonce1, extranonce2, self.ntime, nonce, version)
            if value <= target:
                block = value <= work.network_target
                params = [
                    f"{self.spec.tenant}.{self.spec.worker}",
                    self.job_id,
                    extranonce2.hex(),
                    f"{self.ntime:08x}",
                    f"{nonce:08x}",
                ]
                if version_bits is not None:
                    params.append(f"{version_bits:08x}")
                self.request(
                    "mining.submit",
                    params,
                    functools.partial(self._submitted, block=block, difficulty=self.difficulty),
                )
                return
        self.stats.unfound += 1

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
    """Builds one SimulatedMiner and keeps a reference to it."""

    def __init__(self, spec: MinerSpec, reactor: Any) -> None:
        self.spec = spec
        self.reactor = reactor
        self.miner: SimulatedMiner | None = None

    def buildProtocol(self, addr: Any) -> SimulatedMiner:
        self.miner = SimulatedMiner(self.spec, self.reactor)
        return self.miner
