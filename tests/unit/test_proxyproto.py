"""PROXY protocol v1/v2 header parsing (pool.stratum.proxyproto): complete headers, partial
headers that need more bytes, and bytes that can never be a header."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from pool.stratum.protocol import StratumProtocol
from pool.stratum.proxyproto import ProxyHeader, ProxyHeaderError, parse_proxy_header
from tests.unit.stratum_harness import Pool, settings

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
SUBSCRIBE = b'{"id":1,"method":"mining.subscribe","params":["cgminer/4.12"]}\n'

V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333\r\n"
V1_TCP6 = b"PROXY TCP6 2001:DB8::1 2001:db8::2 51000 3333\r\n"
V1_TCP6_LONGEST = (
    b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
)
V1_UNKNOWN_LONGEST = (
    b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
)

# v2 PROXY TCP over IPv4 203.0.113.7:50123 -> 10.0.0.5:3333, then a UNIQUE_ID TLV (type 5,
# 4 bytes): 16 + 12 + 3 + 4 = 35 bytes.
V2_TCP4 = (
    SIGNATURE
    + struct.pack("!BBH", 0x21, 0x11, 19)
    + struct.pack("!4s4sHH", bytes([203, 0, 113, 7]), bytes([10, 0, 0, 5]), 50123, 3333)
    + struct.pack("!BH", 0x05, 4)
    + b"abcd"
)
# v2 PROXY TCP over IPv6 2001:db8::1:40000 -> 2001:db8::ff:3333, then a NOOP TLV (type 4,
# empty): 16 + 36 + 3 = 55 bytes.
V2_TCP6 = (
    SIGNATURE
    + struct.pack("!BBH", 0x21, 0x21, 39)
    + bytes.fromhex("20010db8000000000000000000000001")
    + bytes.fromhex("20010db80000000000000000000000ff")
    + struct.pack("!HH", 40000, 3333)
    + struct.pack("!BH", 0x04, 0)
)


def v2(ver_cmd: int, family: int, length: int, body: bytes = b"") -> bytes:
    return SIGNATURE + struct.pack("!BBH", ver_cmd, family, length) + body


# --- v1 ----------------------------------------------------------------------------------


def test_v1_tcp4_consumes_the_line_and_leaves_stratum_bytes() -> None:
    data = V1_TCP4 + SUBSCRIBE
    header = parse_proxy_header(data)
    assert header == ProxyHeader(
        version=1,
        source=("192.168.0.1", 56324),
        destination=("192.168.0.11", 3333),
        length=48,
    )
    assert data[header.length :] == SUBSCRIBE


def test_v1_tcp6_normalises_the_address() -> None:
    data = V1_TCP6 + SUBSCRIBE
    header = parse_proxy_header(data)
    assert header == ProxyHeader(1, ("2001:db8::1", 51000), ("2001:db8::2", 3333), 47)
    assert data[47:] == SUBSCRIBE


def test_v1_tcp6_longest_line() -> None:
    header = parse_proxy_header(V1_TCP6_LONGEST)
    assert header == ProxyHeader(
        1,
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        104,
    )


def test_v1_port_zero_and_ipv4_extremes() -> None:
    header = parse_proxy_header(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n")
    assert header == ProxyHeader(1, ("0.0.0.0", 0), ("255.255.255.255", 65535), 44)


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (b"PROXY UNKNOWN\r\n", 15),
        (b"PROXY UNKNOWN 192.168.0.1 192.168.0.11 56324 3333\r\n", 51),
        (b"PROXY UNKNOWN anything \xff at all\r\n", 33),
        (V1_UNKNOWN_LONGEST, 107),
    ],
)
def test_v1_unknown_has_no_source(data: bytes, length: int) -> None:
    header = parse_proxy_header(data + SUBSCRIBE)
    assert header == ProxyHeader(1, None, None, length)


@pytest.mark.parametrize("header", [V1_TCP4, V1_TCP6, V1_TCP6_LONGEST, V1_UNKNOWN_LONGEST])
def test_v1_every_strict_prefix_needs_more(header: bytes) -> None:
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, header[:end]
    assert parse_proxy_header(header) is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"PROXY TCP4 192.168.0.256 192.168.0.11 56324 3333\r\n",
            "PROXY v1: bad source address '192.168.0.256' for TCP4",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0 56324 3333\r\n",
            "PROXY v1: bad destination address '192.168.0' for TCP4",
        ),
        (
            b"PROXY TCP4 192.168.000.1 192.168.0.11 56324 3333\r\n",
            "PROXY v1: bad source address '192.168.000.1' for TCP4",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 3333\r\n",
            "PROXY v1: bad source port '65536'",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n",
            "PROXY v1: bad destination port '65536'",
        ),
        (b"PROXY TCP4 192.168.0.1 192.168.0.11 +5 3333\r\n", "PROXY v1: bad source port '\\+5'"),
        (b"PROXY TCP4 192.168.0.1 192.168.0.11 -5 3333\r\n", "PROXY v1: bad source port '-5'"),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 03333\r\n",
            "PROXY v1: bad destination port '03333'",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",
            "PROXY v1: TCP4 needs 6 fields .* got 5",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333 1\r\n",
            "PROXY v1: TCP4 needs 6 fields .* got 7",
        ),
        (b"PROXY TCP4\r\n", "PROXY v1: TCP4 needs 6 fields .* got 2"),
        (
            b"PROXY TCP4  192.168.0.1 192.168.0.11 56324 3333\r\n",
            "PROXY v1: TCP4 needs 6 fields .* got 7",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333 \r\n",
            "PROXY v1: TCP4 needs 6 fields .* got 7",
        ),
        (
            b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 3333\r\n",
            "PROXY v1: bad source address '2001:db8::1' for TCP4",
        ),
        (
            b"PROXY TCP6 2001:db8::1 192.168.0.11 56324 3333\r\n",
            "PROXY v1: bad destination address '192.168.0.11' for TCP6",
        ),
        (
            b"PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 3333\r\n",
            "PROXY v1: bad source address 'fe80::1%eth0' for TCP6",
        ),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: unknown protocol 'TCP5'"),
        (b"PROXY \r\n", "PROXY v1: unknown protocol ''"),
        (b"PROXY UNKNOWNX\r\n", "PROXY v1: unknown protocol 'UNKNOWNX'"),
        (
            b"PROXY TCP4 192.168.0.\xb9 192.168.0.11 56324 3333\r\n",
            "PROXY v1: non-ASCII byte in source address",
        ),
        (
            b"PROXY UNKNOWN " + b"x" * 93,
            "PROXY v1: no CRLF within the first 107 bytes",
        ),
        (
            V1_UNKNOWN_LONGEST[:-2] + b" \r\n",
            "PROXY v1: no CRLF within the first 107 bytes",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333\n" + SUBSCRIBE,
            "PROXY v1: bare CR or LF in the line",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333\n\r\n",
            "PROXY v1: bare CR or LF in the line",
        ),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 3333\r\r\n",
            "PROXY v1: bare CR or LF in the line",
        ),
        (
            b"proxy TCP4 192.168.0.1 192.168.0.11 56324 3333\r\n",
            "not a PROXY protocol header",
        ),
        (b"PROXY\r\n", "not a PROXY protocol header"),
        (b"PROXYTCP4", "not a PROXY protocol header"),
    ],
)
def test_v1_invalid(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_proxy_header(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PROXY TCP5", "PROXY v1: unknown protocol 'TCP5'"),
        (b"PROXY UDP4 ", "PROXY v1: unknown protocol 'UDP4'"),
        (b"PROXY TCP4 192.168.0.x", "PROXY v1: bad source address '192.168.0.x' for TCP4"),
        (b"PROXY TCP4 ::1 ", "PROXY v1: bad source address '::1' for TCP4"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999", "PROXY v1: bad source port '99999'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01", "PROXY v1: bad source port '01'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", "PROXY v1: TCP4 needs 6 fields .* got more"),
        (b"PROXY TCP4 1.2.3.4\r", "PROXY v1: TCP4 needs 6 fields .* got 3"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "PROXY v1: bare CR or LF in the line"),
        (b"PROXY TCP4 1.2.3.4\n", "PROXY v1: bare CR or LF in the line"),
    ],
)
def test_v1_error_as_soon_as_a_prefix_cannot_match(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_proxy_header(data)


@pytest.mark.parametrize(
    "data",
    [b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", b"PROXY UNKNOWN\r", b"PROXY UNKNOWN junk \n\r"],
)
def test_v1_waiting_for_lf_after_cr(data: bytes) -> None:
    assert parse_proxy_header(data) is None


# --- v2 ----------------------------------------------------------------------------------


def test_v2_tcp4_skips_tlvs_and_leaves_stratum_bytes() -> None:
    data = V2_TCP4 + SUBSCRIBE
    header = parse_proxy_header(data)
    assert header == ProxyHeader(
        version=2,
        source=("203.0.113.7", 50123),
        destination=("10.0.0.5", 3333),
        length=35,
    )
    assert data[35:] == SUBSCRIBE


def test_v2_tcp6_skips_tlvs() -> None:
    header = parse_proxy_header(V2_TCP6 + SUBSCRIBE)
    assert header == ProxyHeader(2, ("2001:db8::1", 40000), ("2001:db8::ff", 3333), 55)


def test_v2_udp4_gives_addresses() -> None:
    body = struct.pack("!4s4sHH", bytes([198, 51, 100, 1]), bytes([10, 0, 0, 5]), 1, 2)
    header = parse_proxy_header(v2(0x21, 0x12, 12, body))
    assert header == ProxyHeader(2, ("198.51.100.1", 1), ("10.0.0.5", 2), 28)


@pytest.mark.parametrize("header", [V2_TCP4, V2_TCP6])
def test_v2_every_strict_prefix_needs_more(header: bytes) -> None:
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, header[:end]
    assert parse_proxy_header(header) is not None


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (v2(0x20, 0x00, 0), 16),
        # a health check may still carry an address block: skipped, source stays None
        (v2(0x20, 0x11, 12, bytes(12)), 28),
        # LOCAL ignores the family byte, even one PROXY would reject
        (v2(0x20, 0x99, 0), 16),
    ],
)
def test_v2_local_has_no_source(data: bytes, length: int) -> None:
    assert parse_proxy_header(data + SUBSCRIBE) == ProxyHeader(2, None, None, length)


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (v2(0x21, 0x00, 0), 16),
        (v2(0x21, 0x00, 5, b"hello"), 21),
        (v2(0x21, 0x31, 216, b"/run/a.sock".ljust(108, b"\0") * 2), 232),
        (v2(0x21, 0x32, 216, bytes(216)), 232),
    ],
)
def test_v2_unspec_and_unix_have_no_source(data: bytes, length: int) -> None:
    assert parse_proxy_header(data + SUBSCRIBE) == ProxyHeader(2, None, None, length)


def test_v2_largest_accepted_length() -> None:
    body = struct.pack("!4s4sHH", bytes([203, 0, 113, 7]), bytes([10, 0, 0, 5]), 1, 2)
    body += struct.pack("!BH", 0x04, 4081) + bytes(4081)
    data = v2(0x21, 0x11, 4096, body)
    assert parse_proxy_header(data[:-1]) is None
    assert parse_proxy_header(data) == ProxyHeader(2, ("203.0.113.7", 1), ("10.0.0.5", 2), 4112)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (v2(0x11, 0x11, 12, bytes(12)), "PROXY v2: bad version 1 .* byte 0x11"),
        (SIGNATURE + b"\x31", "PROXY v2: bad version 3 .* byte 0x31"),
        (SIGNATURE + b"\x01", "PROXY v2: bad version 0 .* byte 0x01"),
        (SIGNATURE + b"\x22", "PROXY v2: unknown command 2 .* byte 0x22"),
        (SIGNATURE + b"\x21\x13", "PROXY v2: unknown address family/transport byte 0x13"),
        (v2(0x21, 0x41, 0), "PROXY v2: unknown address family/transport byte 0x41"),
        (v2(0x21, 0x10, 12, bytes(12)), "PROXY v2: unknown address family/transport byte 0x10"),
        (
            v2(0x21, 0x11, 8, bytes(8)),
            "PROXY v2: declared length 8 is shorter than the 12-byte address block of "
            "TCP over IPv4",
        ),
        (
            v2(0x21, 0x21, 12),  # rejected before the 12 bytes arrive
            "PROXY v2: declared length 12 is shorter than the 36-byte address block of "
            "TCP over IPv6",
        ),
        (
            v2(0x21, 0x22, 35),
            "PROXY v2: declared length 35 is shorter than the 36-byte address block of "
            "UDP over IPv6",
        ),
        (
            v2(0x21, 0x31, 12),
            "PROXY v2: declared length 12 is shorter than the 216-byte address block of "
            "UNIX stream",
        ),
        (v2(0x21, 0x11, 4097), "PROXY v2: declared length 4097 is too long"),
        (v2(0x20, 0x00, 65535), "PROXY v2: declared length 65535 is too long"),
    ],
)
def test_v2_invalid(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_proxy_header(data)


# --- neither -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"id":1',
        b'{"id": 1, "method": "mining.subscribe", "params": []}\n',
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"\n",
        b"\r\n\r\n\x01",  # v2 signature broken at byte 5
        SIGNATURE[:11] + b"X\x21\x11\x00\x0c",
        b"PROXX TCP4",
        b" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    ],
)
def test_not_a_proxy_header(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError, match=r"^not a PROXY protocol header"):
        parse_proxy_header(data)


@pytest.mark.parametrize("data", [b"", b"P", b"PRO", b"PROXY", b"\r", b"\r\n\r\n\x00"])
def test_short_prefixes_need_more(data: bytes) -> None:
    assert parse_proxy_header(data) is None


def test_error_is_a_value_error_and_header_is_frozen() -> None:
    assert issubclass(ProxyHeaderError, ValueError)
    header = parse_proxy_header(V1_TCP4)
    assert header is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.length = 0  # type: ignore[misc]


# --- through a PROXY listener's connection (what Twisted's haproxy wrapper got wrong) -----


@pytest.mark.parametrize(
    ("header", "peer"),
    [
        (V1_TCP4, "192.168.0.1"),
        (V1_TCP6, "2001:db8::1"),
        (V2_TCP4, "203.0.113.7"),
        (V2_TCP6, "2001:db8::1"),
        (b"PROXY UNKNOWN\r\n", "10.1.1.1"),  # the shortest v1 header: the balancer's address
        (v2(0x20, 0x00, 0), "10.1.1.1"),  # LOCAL: the balancer's own health check
    ],
)
def test_a_header_sent_a_byte_at_a_time_names_the_miner(header: bytes, peer: str) -> None:
    """TCP may split the header anywhere: each byte alone still makes a whole header (the
    comparison with twisted.protocols.haproxy is in proxyproto.py's docstring)."""
    pool = Pool(settings(listener={"proxy_protocol": True, "trusted_proxies": ["10.1.1.1"]}))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.1", 5000))
    proto = StratumProtocol(pool.server, pool.server.settings.listeners[0])
    proto.makeConnection(transport)
    for i in range(len(header + SUBSCRIBE)):
        proto.dataReceived((header + SUBSCRIBE)[i : i + 1])
    assert not transport.disconnecting and proto.session is not None
    assert proto.peer == peer
    assert transport.value().startswith(b'{"id":1,"result":[')
