"""Bounded fuzzing of a live `farmpool serve` (issue 12): nothing a miner sends stops the pool.

One server on the bcoin regtest node, with a plain listener and a PROXY listener (trusted
proxy 127.0.0.1 only), its API, a job refresh every 2 s. A well-behaved miner (127.0.0.2)
mines all along, in a thread, while generated hostile input arrives from many other loopback
addresses: malformed JSON and binary, NaN/Infinity and out-of-range numbers, wrong types,
odd hex in every submit field, huge ids (Hypothesis draws and mixes them), then floods of
authorizes and of stale submits, PROXY headers from an untrusted peer, half-open connections
and submits whose connection is reset before the reply. The test passes only if afterwards
the server is alive and healthy, the miner got a reply to every request and every job the
server announced, no traceback reached the log, and the server's RSS grew by less than
20 MB. Bounded: about 30 s on this machine.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.stratum_client import StratumClient

GOOD_SOURCE = "127.0.0.2"
RSS_GROWTH_MAX = 20 << 20
FUZZ_SECONDS = 12.0  # for the generated lines; the floods after them take about 10 s


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = dict(bcoin_config)
    config["log_level"] = "info"
    config["node"] = {**config["node"], "refresh_interval_s": 2}
    config["listeners"] = [
        fixed_listener("main"),
        {**fixed_listener("lb"), "proxy_protocol": True, "trusted_proxies": ["127.0.0.1"]},
    ]
    config["stratum"] = {"subscribe_timeout_s": 5, "ban": {"ban_s": 3}}
    config["api"] = {"bind": "127.0.0.1", "port": 0}
    return serve_factory(config)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def health(server: ServeProcess) -> tuple[int, dict[str, Any]]:
    port = server.wait_event(lambda e: e.get("event") == "listening")["api"]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class GoodMiner(threading.Thread):
    """Mines shares that are not blocks, one every 50 ms; keeps what went wrong."""

    def __init__(self, server: ServeProcess) -> None:
        super().__init__(daemon=True)
        self.client = StratumClient(server.port("main"), source=GOOD_SOURCE, log=server.log_tail)
        self.client.start("acme.good")
        self.started_at = time.time()
        self.stop = threading.Event()
        self.replies = 0
        self.problems: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                reply = self.client.submit(self.client.find_accepted())
                self.replies += 1
                # Stale is fair: a refresh or a new block may overtake a share in flight.
                if reply["result"] is not True and reply["error"][0] != 21:
                    self.problems.append(f"share refused: {reply}")
                time.sleep(0.05)
            self.client.poll(1.0)  # the last pushes
        except Exception as exc:
            self.problems.append(f"{type(exc).__name__}: {exc}")

    def jobs(self) -> set[str]:
        return {p["params"][0] for p in self.client.all_pushes if p["method"] == "mining.notify"}


@pytest.fixture(scope="module")
def miner(server: ServeProcess) -> Iterator[GoodMiner]:
    good = GoodMiner(server)
    good.start()
    yield good
    good.stop.set()
    good.join(30)


@pytest.fixture(scope="module")
def baseline_rss(server: ServeProcess, miner: GoodMiner) -> int:
    time.sleep(0.5)
    return rss_bytes(server.pid)


# --- what is sent --------------------------------------------------------------------------

METHODS = [
    "mining.subscribe",
    "mining.authorize",
    "mining.configure",
    "mining.suggest_difficulty",
    "mining.extranonce.subscribe",
    "mining.submit",
]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
odd_hex = st.text(alphabet="0123456789abcdefABCDEF-+x_ \t\u0660\uff10", min_size=0, max_size=12)
worker_names = st.sampled_from(["acme.fuzz", "globex.fuzz", "nobody.x", ""]) | st.text(max_size=30)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One line: a request (plausible or not), a non-finite number, or garbage."""
    kind = draw(st.sampled_from(["request", "submit", "non_finite", "garbage", "not_object"]))
    request_id = draw(json_values)
    if kind == "request":
        method = draw(st.sampled_from(METHODS) | st.text(max_size=30))
        params: Any = draw(st.lists(json_values, max_size=6) | json_values)
        return json.dumps({"id": request_id, "method": method, "params": params}).encode()
    if kind == "submit":
        fields = [draw(worker_names), draw(odd_hex | st.just("1"))]
        fields += [draw(odd_hex | json_values) for _ in range(draw(st.integers(3, 5)))]
        return json.dumps({"id": request_id, "method": "mining.submit", "params": fields}).encode()
    if kind == "non_finite":
        number = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]))
        method = draw(st.sampled_from(["mining.suggest_difficulty", "mining.configure"]))
        params_text = (
            f"[{number}]"
            if method == "mining.suggest_difficulty"
            else f'[["minimum-difficulty"], {{"minimum-difficulty.value": {number}}}]'
        )
        return f'{{"id": 1, "method": "{method}", "params": {params_text}}}'.encode()
    if kind == "not_object":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=200)).replace(b"\n", b" ")


def corpus(count: int) -> list[bytes]:
    """`count` hostile lines drawn by Hypothesis (about 100 a second here)."""
    lines: list[bytes] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(requests())
    def draw(line: bytes) -> None:
        lines.append(line)

    draw()
    return lines


def mutated(rng: random.Random, line: bytes) -> bytes:
    """A line as a broken firmware or a fuzzer might send it: cut, a byte changed, a number
    made non-finite, or as it is."""
    how = rng.randrange(5)
    if how == 0 and line:
        return line[: rng.randrange(len(line))]
    if how == 1 and line:
        at = rng.randrange(len(line))
        return line[:at] + bytes([rng.randrange(256)]).replace(b"\n", b"?") + line[at + 1 :]
    if how == 2:
        return line.replace(b"1", rng.choice([b"NaN", b"Infinity", b"1e999", b"-0"]), 1)
    return line


def reads(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends within `seconds` (or until it closes)."""
    data = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def check_lines(data: bytes) -> None:
    """Everything the server sends is a JSON object: a reply with both result and error, or
    a push with a method."""
    for line in data.split(b"\n")[:-1]:
        message = json.loads(line)
        assert isinstance(message, dict), line
        assert "method" in message or ("result" in message and "error" in message), line


def connect(port: int, source: str) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    except OSError:
        return None  # refused: this address is banned for a while


def test_generated_hostile_lines(server: ServeProcess, miner: GoodMiner, baseline_rss: int) -> None:
    lines = corpus(400)
    seed = random.randrange(2**32)
    print(f"fuzz: {len(lines)} lines drawn by Hypothesis, mixed and mutated with seed {seed}")
    rng = random.Random(seed)
    sent = {"connections": 0, "lines": 0}
    deadline = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < deadline:
        sock = connect(server.port("main"), f"127.0.0.{rng.randrange(10, 250)}")
        if sock is None:
            continue
        batch = [mutated(rng, rng.choice(lines)) for _ in range(rng.randrange(1, 400))]
        sent["connections"] += 1
        sent["lines"] += len(batch)
        with sock:
            with contextlib.suppress(OSError):
                if rng.random() < 0.5:  # subscribed and authorized: the deep paths
                    sock.sendall(
                        b'{"id":1,"method":"mining.subscribe","params":[]}\n'
                        b'{"id":2,"method":"mining.authorize","params":["acme.fuzz","x"]}\n'
                    )
                sock.sendall(b"\n".join(batch) + b"\n")
            check_lines(reads(sock, 0.01))
    print(f"fuzz: {sent['lines']} lines over {sent['connections']} connections (seed {seed})")
    assert server.running(), server.log_tail()


def test_floods_untrusted_proxies_and_half_open_connections(
    server: ServeProcess, miner: GoodMiner
) -> None:
    port = server.port("main")
    # 20,000 authorizes with fresh names on a few connections: each is closed after the cap
    # of workers and a hundred refusals.
    for host in range(30, 34):
        sock = connect(port, f"127.0.2.{host}")
        if sock is None:
            continue
        with sock, contextlib.suppress(OSError):
            sock.sendall(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
            sock.sendall(
                b"".join(
                    b'{"id":%d,"method":"mining.authorize","params":["acme.f%d","x"]}\n' % (i, i)
                    for i in range(5000)
                )
            )
            reads(sock, 0.5)
    # Authorize + stale submit pairs with fresh worker names.
    for host in range(40, 44):
        sock = connect(port, f"127.0.2.{host}")
        if sock is None:
            continue
        pairs = b"".join(
            b'{"id":%d,"method":"mining.authorize","params":["acme.s%d","x"]}\n'
            b'{"id":%d,"method":"mining.submit","params":["acme.s%d","dead","00000000",'
            b'"6553f100","00000000"]}\n' % (i, i, i, i)
            for i in range(5000)
        )
        with sock, contextlib.suppress(OSError):
            sock.sendall(b'{"id":1,"method":"mining.subscribe","params":[]}\n' + pairs)
            reads(sock, 0.5)
    # PROXY headers from an untrusted peer: refused before any Stratum answer.
    for n in range(50):
        sock = connect(server.port("lb"), "127.0.0.9")
        if sock is None:
            continue
        with sock, contextlib.suppress(OSError):
            sock.sendall(b"PROXY TCP4 192.0.2.%d 127.0.0.1 4000 3333\r\n" % n)
            sock.sendall(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
            assert reads(sock, 0.5) == b""
    # Half-open connections: a partial line, then silence (held open until the end).
    held = [connect(port, f"127.0.3.{1 + n % 20}") for n in range(200)]
    for sock in held:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendall(b'{"id": 1, "method": "mining.subscr')
    # Shares whose connection is reset before the ledger's reply can go out.
    for n in range(40):
        client = StratumClient(port, source=f"127.0.4.{1 + n % 10}", log=server.log_tail)
        client.start("globex.reset")
        share = client.find_accepted().params(client.worker)
        client.send({"id": 7, "method": "mining.submit", "params": share})
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST at once
    time.sleep(1.0)
    for sock in held:
        if sock is not None:
            sock.close()
    assert server.running(), server.log_tail()


def test_the_pool_came_through_unharmed(
    server: ServeProcess, miner: GoodMiner, baseline_rss: int
) -> None:
    time.sleep(2.5)  # one more job refresh reaches the miner
    miner.stop.set()
    miner.join(30)
    assert server.running(), server.log_tail()
    assert not miner.problems, miner.problems[:5]
    assert miner.replies > 100
    announced = {
        e["job_id"]
        for e in server.events
        if e.get("event") == "job" and e.get("sent_at", 0) >= miner.started_at
    }
    assert announced and announced <= miner.jobs(), (
        f"{len(announced - miner.jobs())} of {len(announced)} jobs never reached the miner"
    )
    status, body = health(server)
    assert status == 200, body
    log = server.log_tail(10**7)
    for needle in ("Traceback", "Unhandled error"):
        assert needle not in log, log[log.index(needle) - 2000 : log.index(needle) + 3000]
    growth = rss_bytes(server.pid) - baseline_rss
    print(f"RSS grew by {growth / 2**20:.1f} MiB; the miner got {miner.replies} replies")
    assert growth < RSS_GROWTH_MAX, f"RSS grew by {growth / 2**20:.1f} MiB"
