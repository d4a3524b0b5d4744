"""A whole stratum server in memory: Twisted's StringTransport for each miner, a Clock for
time, no socket and no sleep. For session and server behaviours that need no node: blocks
found here go to a node that takes them in memory (blocks against a real node are
tests/e2e/test_stratum_blocks.py).

`Pool(listen=True)` also opens the listeners on an in-memory reactor (`MemoryReactor` and
the same Clock): miners then connect through a listener's factory, the server's own sweep
runs once a second as the clock advances, and reloads and shutdowns open and close ports.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from pool.api.http import Api
from pool.api.metrics import HashrateHistory
from pool.chain.job import Job, JobFactory
from pool.chain.rpc import SubmitResult
from pool.chain.template import parse_template
from pool.config import ListenerSettings, Settings, settings_from_mapping
from pool.stratum.protocol import StratumProtocol
from pool.stratum.server import CountingShareSink, StratumServer
from pool.stratum.session import Session
from tests.helpers import Accept, tenants_config

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
    listeners: list[dict[str, Any]] | None = None,
) -> Settings:
    """Settings with one listener, `a` (difficulty 1e-10 unless given: every hash meets it),
    or with `listeners` (each on those defaults, named `a` unless it says; the sites they
    name are the config's sites)."""
    defaults = {
        "name": "a",
        "port": 0,
        "difficulty": {"start": 1e-10, "min": 1e-12, "max": 1e6},
        "vardiff": {"enabled": False},
    }
    chosen = [{**defaults, **x} for x in listeners or [listener or {}]]
    sites = sorted({x["site"] for x in chosen if "site" in x})
    return settings_from_mapping(
        {
            "pool": {"payout_address": ADDRESS},
            "listeners": chosen,
            "tenants": tenants_config(*tenants),
            "stratum": stratum or {},
            **({"sites": sites} if sites else {}),
        }
    )


class MemoryPort:
    """A listening port of the in-memory reactor: its factory, and whether it still listens."""

    def __init__(self, factory: Any, number: int) -> None:
        self.factory = factory
        self.number = number
        self.listening = True

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", self.number)

    def stopListening(self) -> None:
        self.listening = False


class Reactor(MemoryReactorClock):
    """A MemoryReactorClock whose listeners are `MemoryPort`s (port 0: the next free number)."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[MemoryPort] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        opened = MemoryPort(factory, port or 40_000 + len(self.ports))
        self.ports.append(opened)
        return opened

    def listenSSL(
        self, port: int, factory: Any, context: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        return self.listenTCP(port, factory)


class Miner:
    """One connection: send lines, read what the pool wrote; the pool's pushed messages
    (set_difficulty, notify, reconnect) are kept in `pushes`."""

    def __init__(self, pool: Pool, peer: str, listener: str | None = None) -> None:
        self.pool = pool
        address = IPv4Address("TCP", peer, 40000)
        self.transport = StringTransport(peerAddress=address)
        self.proto: StratumProtocol
        if pool.listening:
            self.proto = pool.port(listener).factory.buildProtocol(address)
        else:
            self.proto = StratumProtocol(pool.server, pool.listener(listener))
        self.proto.makeConnection(self.transport)
        self.extranonce1 = b""
        self.pushes: list[dict[str, Any]] = []
        self.lines: list[bytes] = []
        self.lost = False
        self._next_id = 1
        self._nonce = 0  # finds go on from the last nonce: each finds a new share

    @property
    def session(self) -> Session:
        assert self.proto.session is not None
        return self.proto.session

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    @property
    def difficulties(self) -> list[float]:
        """Every difficulty the pool set, in order."""
        return [m["params"][0] for m in self.pushes if m["method"] == "mining.set_difficulty"]

    @property
    def notifies(self) -> list[list[Any]]:
        """The params of every mining.notify, in order."""
        return [m["params"] for m in self.pushes if m["method"] == "mining.notify"]

    def send_raw(self, data: bytes) -> list[dict[str, Any]]:
        """Bytes as one packet; every line the pool wrote since the last read."""
        self.proto.dataReceived(data)
        return self.read()

    def read(self) -> list[dict[str, Any]]:
        lines = self.transport.value().split(b"\n")
        self.transport.clear()
        assert lines[-1] == b"", lines[-1]
        self.lines += lines[:-1]
        messages = [json.loads(line) for line in lines[:-1]]
        self.pushes += [m for m in messages if "method" in m]
        return messages

    def request(self, method: str, params: list[Any], request_id: Any = ...) -> dict[str, Any]:
        """One request; its reply (pushed messages after it go to `pushes`)."""
        if request_id is ...:
            request_id = self._next_id
            self._next_id += 1
        line = json.dumps({"id": request_id, "method": method, "params": params})
        replies = [
            m
            for m in self.send_raw(line.encode() + b"\n")
            if "method" not in m and m.get("id") == request_id
        ]
        assert len(replies) == 1, replies
        return replies[0]

    def subscribe(self, *params: Any) -> list[Any]:
        result: list[Any] = self.request("mining.subscribe", list(params))["result"]
        self.extranonce1 = bytes.fromhex(result[1])
        return result

    def start(self, worker: str = "acme.w1", password: str = "x") -> None:
        """Subscribe and authorize, as firmware does."""
        self.subscribe("harness/1")
        assert self.request("mining.authorize", [worker, password])["result"] is True

    def hang_up(self) -> None:
        """The miner closes the connection (and the pool sees it go)."""
        self.transport.loseConnection()
        self.pool.settle()

    def find_share(self, accept: Accept, job: Job | None = None, **options: Any) -> list[Any]:
        """Submit params (worker and all) for a job (the current one) whose hash passes
        `accept(value, network_target)`, found by hashing (options: see `find`)."""
        return self.find(accept, job, **options)[0]

    def accepted(self, value: int, network: int) -> bool:
        """An `Accept`: a share the session's difficulty takes that is no block."""
        return network < value <= self.session.share_target

    def low(self, value: int, network: int) -> bool:
        """An `Accept`: a share below the session's difficulty that is no block."""
        return value > self.session.share_target and value > network

    def find(
        self,
        accept: Accept,
        job: Job | None = None,
        *,
        ntime: int | None = None,
        extranonce2: bytes = bytes(4),
        version_bits: int | None = None,
    ) -> tuple[list[Any], int]:
        """Submit params and the hash value of a share for a job (the current one) whose
        hash passes `accept(value, network_target)`; `ntime` (the template's), `extranonce2`
        (zeros) and `version_bits` (none: five params; given: six) as the share is to have.
        Each find goes on from the nonce the last one stopped at."""
        job = job or self.pool.job
        work = job.work
        ntime = job.template.curtime if ntime is None else ntime
        version = work.version | (version_bits or 0)
        for nonce in range(self._nonce + 1, self._nonce + (1 << 20)):
            _, value = work.hash_share(self.extranonce1, extranonce2, ntime, nonce, version)
            if accept(value, work.network_target):
                self._nonce = nonce
                params = [next(iter(self.session.workers)), job.job_id, extranonce2.hex(),
                          f"{ntime:08x}", f"{nonce:08x}"]  # fmt: skip
                if version_bits is not None:
                    params.append(f"{version_bits:08x}")
                return params, value
        raise AssertionError("no such share in 2^20 nonces")

    def submit(self, params: list[Any]) -> dict[str, Any]:
        return self.request("mining.submit", params)


class Pool:
    """A StratumServer on a Clock with one regtest job; with `listen`, its listeners open on
    the in-memory reactor and its sweep runs on the clock."""

    def __init__(self, config: Settings | None = None, listen: bool = False) -> None:
        self.settings = config or settings()
        self.reactor = Reactor()
        self.clock = self.reactor
        self.clock.advance(START)
        self.node = MemoryNode()
        self.sink = CountingShareSink()
        self.server = StratumServer(
            self.settings,
            self.node,  # type: ignore[arg-type]
            self.reactor,
            sink=self.sink,
            clock=self.clock.seconds,
        )
        self.factory = JobFactory(self.settings.coinbase)
        self.job = self.new_job()
        self.miners: list[Miner] = []
        self.listening = listen
        if listen:
            self.server.listen()

    def new_job(self, prev: str = "11" * 32, clean: bool = True) -> Job:
        self.job = self.factory.build(regtest_template(prev), clean=clean)
        self.server.on_job(self.job)
        return self.job

    def connect(self, peer: str = "10.0.0.5", listener: str | None = None) -> Miner:
        """A new connection to a listener (by name; the first one by default)."""
        miner = Miner(self, peer, listener)
        self.miners.append(miner)
        return miner

    def listener(self, name: str | None = None) -> ListenerSettings:
        listeners = self.server.settings.listeners
        return next(x for x in listeners if name in (None, x.name))

    def port(self, name: str | None = None) -> MemoryPort:
        """A listener's open port (listening pools only; the first listener by default):
        the one whose factory serves it now (a reload may give a port new settings).
        ConnectionRefusedError when no open port serves it."""
        name = name or self.listener().name
        for port in self.reactor.ports:
            if port.listening and port.factory.listener.name == name:
                return port
        raise ConnectionRefusedError(f"no open port for listener {name}")

    @property
    def api(self) -> Api:
        """The HTTP API's admin side (ban, unban, kick, the pool's state), without HTTP."""
        return Api(self.server, None, None, self.server.settings, HashrateHistory())

    def banned(self) -> dict[str, float]:
        """Banned addresses and the seconds left, as the API shows them."""
        banned: dict[str, float] = self.api.pool()["banned"]
        return banned

    def settle(self) -> None:
        """What the reactor would do next: connections being closed are gone."""
        for miner in self.miners:
            if miner.transport.disconnecting and not miner.lost:
                miner.lost = True
                miner.proto.connectionLost()

    def advance(self, seconds: float) -> None:
        """Let time pass a second at a time (listening pools: the sweep runs each second);
        closed connections are gone after each step."""
        assert self.listening, "advance() runs the listening pool's own sweep"
        steps = int(seconds)
        for _ in range(steps):
            self.clock.advance(1.0)
            self.settle()
        if seconds > steps:
            self.clock.advance(seconds - steps)

    def sweep(self, seconds: float = 1.0) -> None:
        """Let time pass and run the server's periodic sweep."""
        self.clock.advance(seconds)
        self.server._sweep()
