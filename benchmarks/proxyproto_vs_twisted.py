"""Measurement: pool/stratum/proxyproto.py against Twisted's twisted.protocols.haproxy.

Not one of the benchmarks run by benchmarks/run_all: a one-off comparison whose numbers are in
proxyproto.py's module docstring (the reason the pool keeps its own parser). Three parts:

1. Behaviour on a corpus of valid and hostile headers, each given whole and byte by byte:
   ours (`parse_proxy_header`, as StratumProtocol feeds it) against Twisted's
   `HAProxyWrappingFactory` over a real StringTransport (what Twisted would do at the door:
   the wrapped protocol's peer, a dropped connection, or an exception escaping dataReceived).
2. Parse cost of one whole header (v1 TCP4/TCP6, v2 TCP4/TCP6): ours against Twisted's v1 and
   v2 parsers (`_v1parser.V1Parser`, `_v2parser.V2Parser`, private modules) and its wrapper.
3. Memory per connection waiting for its header (tracemalloc, N connections each holding the
   first 20 bytes of a v1 header): our StratumProtocol on a PROXY listener (trusted-proxy
   check, counted against the balancer's cap, a 10 s timer), and what Twisted's wrapper (its
   ProtocolWrapper and parser) would add in front of it.

Run: PYTHONPATH=. python benchmarks/proxyproto_vs_twisted.py [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import struct
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory

from pool.stratum.protocol import StratumProtocol
from pool.stratum.proxyproto import ProxyHeaderError, parse_proxy_header
from tests.unit.stratum_harness import Pool, settings

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
STRATUM = b'{"id":1,"method":"mining.subscribe","params":[]}\n'


def v2(ver_cmd: int, family: int, length: int, body: bytes = b"") -> bytes:
    return SIG + struct.pack("!BBH", ver_cmd, family, length) + body


V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 3333\r\n"
V2_TCP4 = v2(0x21, 0x11, 12, bytes([203, 0, 113, 7, 10, 0, 0, 5]) + struct.pack("!HH", 1, 2))
V2_TCP6 = v2(
    0x21, 0x21, 36, bytes.fromhex("20010db8" + "00" * 11 + "01") + bytes(16) + b"\x9c\x40\x0d\x05"
)

#: (name, bytes): what a balancer or an attacker might send first.
CORPUS: list[tuple[str, bytes]] = [
    ("v1 TCP4", V1_TCP4),
    ("v1 TCP6", V1_TCP6),
    ("v1 TCP6 upper case", b"PROXY TCP6 2001:DB8::1 2001:db8::2 51000 3333\r\n"),
    ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n"),
    ("v2 TCP4", V2_TCP4),
    ("v2 TCP6 (::1 style)", V2_TCP6),
    ("v2 LOCAL", v2(0x20, 0x00, 0)),
    ("v1 address 999.1.1.1", b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n"),
    ("v1 address 01.2.3.4", b"PROXY TCP4 01.2.3.4 10.0.0.1 1 2\r\n"),
    ("v1 port 99999", b"PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n"),
    ("v1 port -1", b"PROXY TCP4 1.2.3.4 10.0.0.1 -1 2\r\n"),
    ("v1 port x", b"PROXY TCP4 1.2.3.4 10.0.0.1 x 2\r\n"),
    ("v1 non-ASCII address", b"PROXY TCP4 1.2.3.\xff 10.0.0.1 1 2\r\n"),
    ("v1 extra field", b"PROXY TCP4 1.2.3.4 10.0.0.1 1 2 junk\r\n"),
    ("v1 TCP4 with IPv6 address", b"PROXY TCP4 ::1 ::2 1 2\r\n"),
    ("v1 line of 200 bytes", b"PROXY UNKNOWN " + b"x" * 184 + b"\r\n"),
    ("v1 bare LF", b"PROXY TCP4 1.2.3.4 10.0.0.1 1 2\n"),
    ("v2 declared length 65535", v2(0x21, 0x11, 65535, bytes(65535))),
    ("v2 family 0x13", v2(0x21, 0x13, 12, bytes(12))),
    ("v2 family 0x10", v2(0x21, 0x10, 12, bytes(12))),
    ("v2 length 4 < TCP4 block", v2(0x21, 0x11, 4, bytes(4))),
    ("v2 version 3", v2(0x31, 0x11, 12, bytes(12))),
    ("not PROXY (a Stratum line)", STRATUM),
]


class _Recorder(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def twisted_at_the_door(data: bytes, chunk: int) -> str:
    """What Twisted's HAProxyWrappingFactory does with `data` sent `chunk` bytes at a time."""
    factory = HAProxyWrappingFactory(protocol.Factory.forProtocol(_Recorder))
    wrapper = factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.1", 5000))
    wrapper.makeConnection(transport)
    try:
        for i in range(0, len(data), chunk):
            wrapper.dataReceived(data[i : i + chunk])
            if transport.disconnecting:
                return "dropped (no reason given)"
    except Exception as exc:  # escapes dataReceived: Twisted logs it and drops the connection
        return f"exception escapes: {type(exc).__name__}"
    if wrapper._proxyInfo is None:
        return "waits for more"
    peer = wrapper.getPeer()
    host = getattr(peer, "host", None)
    return f"accepted: {host}:{getattr(peer, 'port', '')}" if host else "accepted: no address"


def ours_at_the_door(data: bytes, chunk: int) -> str:
    """What StratumProtocol does with `data` sent `chunk` bytes at a time (the parser is
    called with everything received so far)."""
    buffer = b""
    for i in range(0, len(data), chunk):
        buffer += data[i : i + chunk]
        try:
            header = parse_proxy_header(buffer)
        except ProxyHeaderError as exc:
            return f"refused: {exc}"
        if header is not None:
            if header.source is None:
                return "accepted: no address"
            return f"accepted: {header.source[0]}:{header.source[1]}"
    return "waits for more"


def behaviour() -> list[dict[str, str]]:
    rows = []
    for name, data in CORPUS:
        rows.append(
            {
                "input": name,
                "ours": ours_at_the_door(data, len(data)),
                "twisted": twisted_at_the_door(data, len(data)),
                "ours_bytewise": ours_at_the_door(data, 1),
                "twisted_bytewise": twisted_at_the_door(data, 1),
            }
        )
    return rows


def per_call_us(fn: Callable[[], Any], seconds: float = 0.3) -> float:
    """Best of 5 runs of fn in a loop, microseconds per call."""
    n = 1
    while True:  # calibrate
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start > seconds / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def parse_cost() -> dict[str, dict[str, float]]:
    results = {}
    for name, header, parser in (
        ("v1 TCP4", V1_TCP4, V1Parser),
        ("v1 TCP6", V1_TCP6, V1Parser),
        ("v2 TCP4", V2_TCP4, V2Parser),
        ("v2 TCP6", V2_TCP6, V2Parser),
    ):
        data = header + STRATUM
        factory = HAProxyWrappingFactory(protocol.Factory.forProtocol(_Recorder))

        def wrapped(data: bytes = data, factory: Any = factory) -> None:
            wrapper = factory.buildProtocol(None)
            wrapper.makeConnection(StringTransport())
            wrapper.dataReceived(data)

        results[name] = {
            "ours_us": round(per_call_us(lambda data=data: parse_proxy_header(data)), 2),
            "twisted_parser_us": round(
                per_call_us(lambda data=data, parser=parser: parser().feed(data)), 2
            ),
            "twisted_wrapper_us": round(per_call_us(wrapped), 2),
        }
    # A v2 header declaring 65535 bytes, then dripped a byte at a time: ours refuses at the
    # 16th byte; Twisted's parser buffers (and re-joins) all of it.
    drip = v2(0x21, 0x11, 65535, bytes(65535))
    start = time.perf_counter()
    ours_at_the_door(drip, 1)
    ours_drip = time.perf_counter() - start
    start = time.perf_counter()
    parser = V2Parser()
    parser.feed(drip[:16])
    for i in range(16, len(drip)):
        parser.feed(drip[i : i + 1])
    twisted_drip = time.perf_counter() - start
    results["v2 65535 declared, 1 byte at a time"] = {
        "ours_ms": round(ours_drip * 1e3, 3),
        "twisted_parser_ms": round(twisted_drip * 1e3, 1),
    }
    return results


def _per_connection(make: Callable[[], Any], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(n)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / n


def memory(n: int = 5000) -> dict[str, float]:
    pool = Pool(
        settings(
            listener={"proxy_protocol": True, "trusted_proxies": ["10.0.0.0/8"]},
            stratum={"max_connections_per_ip": 10 * n},
        )
    )
    listener = pool.server.settings.listeners[0]
    partial = V1_TCP4[:20]
    transports = [
        StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.1", 5000)) for _ in range(n)
    ]
    it = iter(transports)

    def ours() -> StratumProtocol:
        proto = StratumProtocol(pool.server, listener)
        proto.makeConnection(next(it))
        proto.dataReceived(partial)
        assert proto._awaiting_proxy
        return proto

    ours_b = _per_connection(ours, n)
    factory = HAProxyWrappingFactory(protocol.Factory.forProtocol(_Recorder))
    transports2 = [StringTransport() for _ in range(n)]
    it2 = iter(transports2)

    def twisted_wrapper() -> Any:
        wrapper = factory.buildProtocol(None)
        wrapper.makeConnection(next(it2))
        wrapper.dataReceived(partial)
        return wrapper

    bare = _per_connection(_Recorder, n)
    wrapper_b = _per_connection(twisted_wrapper, n)
    return {
        "ours_waiting_connection_bytes": round(ours_b),
        "twisted_wrapper_and_parser_bytes": round(wrapper_b - bare),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object, nothing else")
    args = parser.parse_args()
    report = {"behaviour": behaviour(), "parse_cost": parse_cost(), "memory": memory()}
    if args.json:
        print(json.dumps(report))
        return
    for row in report["behaviour"]:
        print(f"{row['input']}:")
        for key in ("ours", "twisted", "ours_bytewise", "twisted_bytewise"):
            print(f"    {key:17} {row[key]}")
    print(json.dumps({"parse_cost": report["parse_cost"], "memory": report["memory"]}, indent=1))


if __name__ == "__main__":
    main()
