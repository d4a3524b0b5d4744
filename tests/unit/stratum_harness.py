"""A whole stratum server in memory: Twisted's StringTransport for each miner, a Clock for
time, no socket and no sleep. For session and server behaviours that need no node: blocks
found here go to a node that takes them in memory (blocks against a real node are
tests/e2e/test_stratum_blocks.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from pool.chain.job import Job, JobFactory
from pool.chain.rpc import SubmitResult
from pool.chain.template import parse_template
from pool.config import Settings, settings_from_mapping
from pool.stratum.protocol import StratumProtocol
from pool.stratum.server import CountingShareSink, StratumServer
from pool.stratum.session import Session

ADDRESS = "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"
#: The clock starts here; the template's curtime is the same.
START = 1_700_000_000.0


class MemoryNode:
    """Takes submitblock in memory: every block the server assembled, accepted."""

    def __init__(self) -> None:
        self.blocks: list[str] = []

    def submit_block(self, block_hex: str) -> defer.Deferred[SubmitResult]:
        self.blocks.append(block_hex)
        return defer.succeed(SubmitResult(True, None))


def regtest_template(prev: str = "11" * 32, curtime: int = int(START)) -> Any:
    """A regtest template (nBits 207fffff: about half of all hashes are blocks)."""
    return parse_template(
        {
            "height": 200,
            "version": 0x20000000,
            "previousblockhash": prev,
            "bits": "207fffff",
            "target": "7fffff" + "00" * 29,
            "curtime": curtime,
            "mintime": curtime - 600,
            "coinbasevalue": 5_000_000_000,
            "transactions": [],
            "rules": [],
        }
    )


def settings(
    listener: dict[str, Any] | None = None,
    stratum: dict[str, Any] | None = None,
    tenants: tuple[str, ...] = ("acme", "borealis"),
) -> Settings:
    """Settings with one listener (difficulty 1e-10 unless given: every hash meets it)."""
    return settings_from_mapping(
        {
            "pool": {"payout_address": ADDRESS},
            "listeners": [
                {
                    "name": "a",
                    "port": 0,
                    "difficulty": {"start": 1e-10, "min": 1e-12, "max": 1e6},
                    "vardiff": {"enabled": False},
                    **(listener or {}),
                }
            ],
            "tenants": [{"name": name} for name in tenants],
            "stratum": stratum or {},
        }
    )


class Miner:
    """One connection: send lines, read what the pool wrote."""

    def __init__(self, pool: Pool, peer: str) -> None:
        self.pool = pool
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto = StratumProtocol(pool.server, pool.server.settings.listeners[0])
        self.proto.makeConnection(self.transport)
        self.extranonce1 = b""
        self._next_id = 1

    @property
    def session(self) -> Session:
        assert self.proto.session is not None
        return self.proto.session

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def send_raw(self, data: bytes) -> list[dict[str, Any]]:
        """Bytes as one packet; every line the pool wrote since the last read."""
        self.proto.dataReceived(data)
        return self.read()

    def read(self) -> list[dict[str, Any]]:
        lines = self.transport.value().split(b"\n")
        self.transport.clear()
        assert lines[-1] == b"", lines[-1]
        return [json.loads(line) for line in lines[:-1]]

    def request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """One request; its reply (pushed messages after it are dropped)."""
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"id": request_id, "method": method, "params": params})
        replies = [m for m in self.send_raw(line.encode() + b"\n") if m.get("id") == request_id]
        assert len(replies) == 1, replies
        return replies[0]

    def start(self, worker: str = "acme.w1", password: str = "x") -> None:
        """Subscribe and authorize, as firmware does."""
        reply = self.request("mining.subscribe", ["harness/1"])
        self.extranonce1 = bytes.fromhex(reply["result"][1])
        assert self.request("mining.authorize", [worker, password])["result"] is True

    def find_share(self, accept: Callable[[int, int], bool], job: Job | None = None) -> list[Any]:
        """Submit params (worker and all) for the current job whose hash passes
        `accept(value, network_target)`, found by hashing."""
        job = job or self.pool.job
        work = job.work
        en2 = bytes(4)
        ntime = job.template.curtime
        for nonce in range(1, 1 << 20):
            _, value = work.hash_share(self.extranonce1, en2, ntime, nonce, work.version)
            if accept(value, work.network_target):
                return [next(iter(self.session.workers)), job.job_id, en2.hex(),
                        f"{ntime:08x}", f"{nonce:08x}"]  # fmt: skip
        raise AssertionError("no such share in 2^20 nonces")

    def submit(self, params: list[Any]) -> dict[str, Any]:
        return self.request("mining.submit", params)


class Pool:
    """A StratumServer on a Clock with one regtest job."""

    def __init__(self, config: Settings | None = None) -> None:
        self.settings = config or settings()
        self.clock = Clock()
        self.clock.advance(START)
        self.node = MemoryNode()
        self.sink = CountingShareSink()
        self.server = StratumServer(
            self.settings, self.node, self.clock, sink=self.sink, clock=self.clock.seconds
        )  # type: ignore[arg-type]
        self.factory = JobFactory(self.settings.coinbase)
        self.job = self.new_job()

    def new_job(self, prev: str = "11" * 32, clean: bool = True) -> Job:
        self.job = self.factory.build(regtest_template(prev), clean=clean)
        self.server.on_job(self.job)
        return self.job

    def connect(self, peer: str = "10.0.0.5") -> Miner:
        return Miner(self, peer)

    def sweep(self, seconds: float = 1.0) -> None:
        """Let time pass and run the server's periodic sweep."""
        self.clock.advance(seconds)
        self.server._sweep()
