"""A small synchronous Stratum v1 test miner: raw socket, line reader, share finder.

Replies (messages without ``method``) are kept apart from server pushes
(``mining.set_difficulty``, ``mining.notify``, ``client.reconnect``); every wait has a
deadline. Shares are found the way a miner finds them: the header is built from the
``mining.notify`` params received (``pool.hashing.HeaderWork``, as ``pool/sharecheck.py``
does) and nonces are tried until the hash falls into the range a test asks for (a block, a
share that is not a block, a share below the session's difficulty). On regtest the network
target is about 2**255, so each of those ranges is hit within a few hashes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pool.hashing import (
    HeaderWork,
    bits_to_target,
    difficulty_to_target,
    hash_to_hex,
)

DEFAULT_TIMEOUT = 5.0
_AUTO = object()


class ConnectionClosed(AssertionError):
    """The server closed the connection while the test waited for something."""


@dataclass(frozen=True)
class Job:
    """A `mining.notify` as the miner keeps it."""

    params: list[Any]
    raw: bytes

    @property
    def job_id(self) -> str:
        return str(self.params[0])

    @property
    def prevhash(self) -> str:
        return str(self.params[1])

    @property
    def clean(self) -> bool:
        return bool(self.params[8])

    @property
    def ntime(self) -> int:
        return int(self.params[7], 16)

    @property
    def nbits(self) -> int:
        return int(self.params[6], 16)

    @property
    def network_target(self) -> int:
        return bits_to_target(self.nbits)

    def work(self) -> HeaderWork:
        p = self.params
        return HeaderWork.from_notify(p)


@dataclass(frozen=True)
class Share:
    """A solved share, ready to submit."""

    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None
    value: int
    digest: bytes

    @property
    def block_hash(self) -> str:
        return hash_to_hex(self.digest)

    def params(self, worker: str) -> list[str]:
        p = [worker, self.job_id, self.extranonce2, self.ntime, self.nonce]
        if self.version_bits is not None:
            p.append(self.version_bits)
        return p


def stratum_prevhash(block_hash_hex: str) -> str:
    """A block hash as a block explorer shows it, in mining.notify's word-swapped form."""
    from pool.hashing import hash_from_hex, header_prevhash_to_stratum

    return header_prevhash_to_stratum(hash_from_hex(block_hash_hex))


class StratumClient:
    """One miner connection."""

    _extranonce2_counter = itertools.count(1)

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        source: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        log: Callable[[], str] | None = None,
        tls: ssl.SSLContext | None = None,
        prelude: bytes = b"",
    ) -> None:
        """`tls`: connect with TLS (stratum+ssl); `prelude`: bytes sent first, as a load
        balancer's PROXY protocol header."""
        self.port = port
        self.timeout = timeout
        self._server_log = log
        raw = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if prelude:
            raw.sendall(prelude)
        self.sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        self._buffer = b""
        self.closed = False
        self.lines: list[bytes] = []  # every line received, raw
        self.replies: list[dict[str, Any]] = []  # not yet taken
        self.pushes: list[dict[str, Any]] = []  # not yet taken
        self.all_pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        # session state, as a miner keeps it
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.session_id = ""
        self.difficulty: float | None = None
        self.difficulties: list[float] = []
        self.jobs: dict[str, Job] = {}
        self.job: Job | None = None
        self.version_mask = 0
        self.worker = ""

    # --- low level ---------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> StratumClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _context(self) -> str:
        log = self._server_log() if self._server_log is not None else ""
        return f"\nlast lines received: {self.lines[-5:]}\nserver log tail:\n{log[-3000:]}"

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def _read(self, deadline: float) -> bool:
        """Read once (until the deadline); False on timeout. Raises ConnectionClosed."""
        if self.closed:
            raise ConnectionClosed("connection closed" + self._context())
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            raise ConnectionClosed("the server closed the connection" + self._context())
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._route(line)
        return True

    def _route(self, line: bytes) -> None:
        self.lines.append(line)
        message = json.loads(line)
        assert isinstance(message, dict), f"the server sent a non-object: {line!r}"
        if "method" in message:
            self._apply(message)
            self.pushes.append(message)
            self.all_pushes.append(message)
        else:
            self.replies.append(message)

    def _apply(self, message: dict[str, Any]) -> None:
        method = message["method"]
        if method == "mining.set_difficulty":
            self.difficulty = float(message["params"][0])
            self.difficulties.append(self.difficulty)
        elif method == "mining.notify":
            job = Job(message["params"], json.dumps(message).encode())
            if job.clean:
                self.jobs.clear()
            self.jobs[job.job_id] = job
            self.job = job

    def poll(self, seconds: float) -> None:
        """Read whatever arrives during `seconds` (the connection must stay open)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline)

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True when the server closes the connection within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._read(deadline)
        except ConnectionClosed:
            return True
        return False

    # --- replies and pushes --------------------------------------------------------------

    def reply(self, request_id: Any, timeout: float | None = None) -> dict[str, Any]:
        """The first not yet taken reply whose id is `request_id` (same JSON value)."""
        want = json.dumps(request_id)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, message in enumerate(self.replies):
                if json.dumps(message.get("id")) == want:
                    return self.replies.pop(i)
            if not self._read(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"no reply with id {want}" + self._context())

    def push(
        self,
        method: str,
        timeout: float | None = None,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Take the first not yet taken push of `method` (matching `predicate`)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, message in enumerate(self.pushes):
                if message["method"] == method and (predicate is None or predicate(message)):
                    return self.pushes.pop(i)
            if not self._read(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"no {method} push within the wait" + self._context())

    def request(
        self, method: str, params: Any, request_id: Any = _AUTO, **extra: Any
    ) -> dict[str, Any]:
        """Send one request and return its whole reply."""
        rid = next(self._ids) if request_id is _AUTO else request_id
        self.send({"id": rid, "method": method, "params": params, **extra})
        return self.reply(rid)

    def call(self, method: str, params: Any) -> Any:
        """A request that must succeed; its result."""
        reply = self.request(method, params)
        assert reply["error"] is None, f"{method} failed: {reply}" + self._context()
        return reply["result"]

    # --- methods -------------------------------------------------------------------------

    def subscribe(self, *params: str) -> list[Any]:
        result = self.call("mining.subscribe", list(params))
        self.session_id = result[0][0][1]
        self.extranonce1 = bytes.fromhex(result[1])
        self.extranonce2_size = result[2]
        return result  # type: ignore[no-any-return]

    def authorize(self, worker: str = "acme.rig1", password: str = "x") -> dict[str, Any]:
        reply = self.request("mining.authorize", [worker, password])
        if reply["result"] is True:
            self.worker = worker
        return reply

    def start(
        self, worker: str = "acme.rig1", password: str = "x", agent: str = "e2e-miner/1.0"
    ) -> Job:
        """Subscribe, authorize and wait for the first job."""
        self.subscribe(agent)
        reply = self.authorize(worker, password)
        assert reply["result"] is True, reply
        self.push("mining.set_difficulty")
        self.push("mining.notify")
        assert self.job is not None
        return self.job

    def configure(self, extensions: list[str], options: dict[str, Any]) -> dict[str, Any]:
        result = self.call("mining.configure", [extensions, options])
        assert isinstance(result, dict)
        if result.get("version-rolling") is True:
            self.version_mask = int(result["version-rolling.mask"], 16)
        return result

    def submit(self, share: Share, worker: str | None = None) -> dict[str, Any]:
        return self.request("mining.submit", share.params(worker or self.worker))

    # --- mining --------------------------------------------------------------------------

    def share_target(self) -> int:
        assert self.difficulty is not None, "no mining.set_difficulty received yet"
        return difficulty_to_target(self.difficulty)

    def next_extranonce2(self) -> bytes:
        n = next(self._extranonce2_counter)
        return n.to_bytes(self.extranonce2_size or 4, "big")

    def find(
        self,
        wanted: Callable[[int], bool],
        *,
        job: Job | None = None,
        version_bits: int | None = None,
        extranonce2: bytes | None = None,
        ntime: int | None = None,
        max_tries: int = 100_000,
    ) -> Share:
        """A share whose hash value satisfies `wanted`, for `job` (default: the newest)."""
        job = job or self.job
        assert job is not None, "no job received yet"
        work = job.work()
        en2 = extranonce2 if extranonce2 is not None else self.next_extranonce2()
        when = job.ntime if ntime is None else ntime
        version = work.rolled_version(version_bits, self.version_mask)
        for nonce in range(max_tries):
            digest, value = work.hash_share(self.extranonce1, en2, when, nonce, version)
            if wanted(value):
                return Share(
                    job_id=job.job_id,
                    extranonce2=en2.hex(),
                    ntime=f"{when:08x}",
                    nonce=f"{nonce:08x}",
                    version_bits=None if version_bits is None else f"{version_bits:08x}",
                    value=value,
                    digest=digest,
                )
        raise AssertionError(f"no nonce out of {max_tries} gave a wanted hash")

    def find_accepted(self, job: Job | None = None, **kw: Any) -> Share:
        """A share that meets the session's difficulty and is not a block."""
        job = job or self.job
        assert job is not None
        network, share = job.network_target, self.share_target()
        assert share > network, "this difficulty leaves no share that is not a block"
        return self.find(lambda v: network < v <= share, job=job, **kw)

    def find_low(self, job: Job | None = None, **kw: Any) -> Share:
        """A share below the session's difficulty (and not a block)."""
        job = job or self.job
        assert job is not None
        low = max(self.share_target(), job.network_target)
        return self.find(lambda v: v > low, job=job, **kw)

    def find_block(self, job: Job | None = None, **kw: Any) -> Share:
        job = job or self.job
        assert job is not None
        network = job.network_target
        return self.find(lambda v: v <= network, job=job, **kw)


def wait_pushes(
    clients: list[StratumClient],
    method: str,
    predicate: Callable[[dict[str, Any]], bool],
    deadline: float,
) -> dict[int, tuple[dict[str, Any], float]]:
    """Wait on every client's socket at once until each has a matching push or the deadline
    (time.monotonic()) passes; returns {client index: (message, monotonic arrival time)}."""
    found: dict[int, tuple[dict[str, Any], float]] = {}

    def take(i: int) -> None:
        client = clients[i]
        for k, message in enumerate(client.pushes):
            if message["method"] == method and predicate(message):
                found[i] = (client.pushes.pop(k), time.monotonic())
                return

    for i in range(len(clients)):
        take(i)
    while len(found) < len(clients):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        waiting = {clients[i].sock: i for i in range(len(clients)) if i not in found}
        readable, _, _ = select.select(list(waiting), [], [], left)
        for sock in readable:
            i = waiting[sock]
            clients[i]._read(time.monotonic() + 0.05)
            take(i)
    return found
