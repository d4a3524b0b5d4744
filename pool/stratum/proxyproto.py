"""HAProxy PROXY protocol header parser, version 1 (text) and version 2 (binary).

Behind a TCP load balancer, every connection the pool accepts comes from the balancer. On a
listener with `proxy_protocol: true` the balancer sends a PROXY header as the very first bytes
of each connection, before any Stratum line, giving the real client's address. That
address, not the balancer's, is the one for per-IP connection limits and bans. So a listener
in this mode must parse the header before it reads any Stratum line. It must also drop any
connection whose first bytes are not a valid header, because such a client did not come
through the proxy. The spec forbids guessing whether a header is present.

`parse_proxy_header` is pure. It uses no sockets, Twisted or clock. It is called with the
bytes received so far and returns one of three results:

* a `ProxyHeader`: the header is complete and valid. `length` bytes belong to it, and
  `data[length:]` is the start of the Stratum stream.
* `None`: `data` is still a strict prefix of a possible header. Call again with more bytes.
  The caller should bound the wait with a short timeout, since the spec says a sender writes
  the whole header at once.
* `ProxyHeaderError`: no more bytes can make this a valid header, so drop the connection.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

Choices made here:

* v1 is parsed strictly. There is exactly one space between fields, and a TCP4/TCP6 line has
  exactly 6 fields. IPv4 addresses must be dotted-quad without leading zeros
  (`ipaddress.IPv4Address`). IPv6 addresses go through `ipaddress.IPv6Address`, which takes
  no `%scope`. Ports are ASCII decimal 0-65535 without a sign or a leading zero, as the spec
  says. The line with its CRLF must fit in 107 bytes. A lone CR or LF does not end it.
  "PROXY UNKNOWN" is followed by anything up to the CRLF, and that is ignored.
* Returned addresses are normalised (`str(ipaddress.ip_address(...))`, e.g. IPv6 in
  compressed lowercase). The same client then gives the same text through v1 and v2, which
  matters for ban keys. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is left as IPv6.
* v2: the version nibble must be 2 and the command LOCAL (0) or PROXY (1). For LOCAL (a
  balancer health check) the family byte and address block are skipped, as the spec says.
  `source` is None and the real connection endpoints apply. For PROXY, the family/transport
  byte must be one of the seven the spec lists. The declared length must cover that family's
  address block. TLVs after the addresses are skipped but counted in `length`. UNSPEC and
  UNIX give `source` None.
* The v2 declared length is a 16-bit field (at most 65535). This parser also rejects
  anything above `V2_MAX_ADDRESS_LENGTH` (4096) as too long. The largest standard block,
  UNIX with 216 bytes, plus the usual TLVs (ALPN, authority, SSL, unique id of at most 128
  bytes) is far below that. So a bigger header points to a broken or hostile sender, and
  the cap keeps a connection from holding up to 64 KiB before its first Stratum line.

Why not Twisted's `twisted.protocols.haproxy` (measured with Twisted 26.10 by
benchmarks/proxyproto_vs_twisted.py, on this project's 2-core build machine; issue 15 item 4):

* It is private API. The package exports only `proxyEndpoint`; `HAProxyWrappingFactory`,
  `V1Parser` and `V2Parser` live in `_wrapper`, `_v1parser` and `_v2parser`. Using them would
  add a reliance on Twisted internals, which pool/stratum/twisted_compat.py exists to keep
  to a minimum.
* It does not do what a listener needs. The wrapper has no trusted-proxies check, no timeout
  for a missing header, no way to count a waiting connection against the balancer's cap, and
  no callback when the header is complete (the miner would be admitted only on its first
  Stratum bytes). It drops a bad header with `loseConnection()` and no reason, so
  `proxy_header_errors` could not say what was wrong. StratumProtocol would keep all of its
  own PROXY code anyway; only the parser could be swapped.
* Its parser mishandles 12 of the 23 inputs in the script's corpus when each is sent whole,
  and drops all 7 valid headers when they are sent a byte at a time. Ours handles all 23 as
  the spec says, sent either way:
  - Headers that arrive in pieces: it chooses v1 or v2 from the first `dataReceived` only,
    and drops the connection if that chunk is shorter than 8 (v1) or 16 (v2) bytes. All 7
    valid headers sent a byte at a time were dropped. Ours accepts them.
  - Valid input it refuses: `PROXY UNKNOWN\r\n`, the shortest v1 header.
  - Invalid input it accepts: `999.1.1.1` and `01.2.3.4` as IPv4 addresses, ports 99999 and
    -1, IPv6 text in a TCP4 line, a seventh field, a 200-byte v1 line, v2 family byte 0x10,
    and a v2 header declaring 65535 bytes.
  - Invalid input that raises instead of refusing: a non-ASCII byte in an address
    (UnicodeDecodeError) and a port `x` (ValueError). These escape `dataReceived`.
  - It does not normalise addresses. v1 `2001:DB8::1` stays upper case, and v2 gives
    `2001:db8:0:0:0:0:0:1`, so one client behind v1 and v2 balancers would get two ban and
    limit keys. Ours gives `2001:db8::1` for both.
* Hostile cost: a v2 header declaring 65535 bytes, sent a byte at a time, took Twisted's parser
  64-131 ms of CPU to buffer (it joins its buffer again on every byte). Ours refuses it at byte
  16 (0.03 and 1.7 ms in the two runs).
* Speed of a valid header given whole (two runs, microseconds; the pool parses one per
  connection, so either is negligible next to accepting the connection): v1 TCP4 ours 7.7,
  Twisted's parser 7.4-7.8, its wrapper 11-13; v1 TCP6 ours 14-15 against 6.8-7.3 (ours checks
  and normalises the address with `ipaddress`, theirs does not); v2 TCP4 ours 3.7-4.0 against
  11.5-12.7 (wrapper 16-17); v2 TCP6 ours 9-18 against 12-23 (wrapper 16-33).
* Memory of a connection waiting for its header (tracemalloc, 5000 connections each holding
  the first 20 bytes of a v1 header): 817 bytes for our whole StratumProtocol (protocol, buffer
  and its 10 s timer). Twisted's wrapper and parser would add 254 bytes per connection in
  front of it, and the timer and count would still be ours.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "V1_MAX_LENGTH",
    "V2_MAX_ADDRESS_LENGTH",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "parse_proxy_header",
]

#: "PROXY" and its single space: the start of every v1 header.
V1_PREFIX: Final = b"PROXY "
#: Longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses and ports).
V1_MAX_LENGTH: Final = 107
#: The 12-byte v2 signature.
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
#: Signature, version/command, family/transport, 2-byte length.
V2_FIXED_LENGTH: Final = 16
#: Largest v2 declared length accepted. See the module docstring.
V2_MAX_ADDRESS_LENGTH: Final = 4096

_V2_LOCAL: Final = 0x0
_V2_PROXY: Final = 0x1

#: v2 family/transport byte -> (description, address block length).
_V2_FAMILIES: Final[dict[int, tuple[str, int]]] = {
    0x00: ("UNSPEC", 0),
    0x11: ("TCP over IPv4", 12),
    0x12: ("UDP over IPv4", 12),
    0x21: ("TCP over IPv6", 36),
    0x22: ("UDP over IPv6", 36),
    0x31: ("UNIX stream", 216),
    0x32: ("UNIX datagram", 216),
}

_V1_PROTOCOLS: Final = (b"TCP4", b"TCP6", b"UNKNOWN")
_V1_FIELD_NAMES: Final = (
    "source address",
    "destination address",
    "source port",
    "destination port",
)
_PORT_RE: Final = re.compile(r"0|[1-9][0-9]{0,4}", re.ASCII)
# Characters an address can contain, for checking a field that is not complete yet. Longest
# forms: "255.255.255.255" (15) and "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (45).
_PARTIAL_ADDRESS: Final = {
    "TCP4": (re.compile(r"[0-9.]{0,15}", re.ASCII), "dotted IPv4"),
    "TCP6": (re.compile(r"[0-9A-Fa-f:.]{0,45}", re.ASCII), "IPv6"),
}


class ProxyHeaderError(ValueError):
    """The bytes can never form a valid PROXY header. The message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete PROXY header at the start of a connection."""

    #: 1 (text) or 2 (binary).
    version: int
    #: (ip text, port) of the real client. None for v1 UNKNOWN, and for v2 LOCAL, UNSPEC and
    #: UNIX. The caller then keeps the socket's own peer address.
    source: tuple[str, int] | None
    #: (ip text, port) the client connected to on the balancer. None whenever source is.
    destination: tuple[str, int] | None
    #: Bytes of the header consumed from the stream. Stratum data starts at data[length:].
    length: int


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """Parse a PROXY header at the start of `data`. None: not enough bytes yet (call again
    with more). ProxyHeaderError: the bytes can never be a valid header (including: data that
    is neither a v1 nor a v2 signature — a client that did not come through the proxy)."""
    if not data:
        return None
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    raise _not_proxy(data)


def _not_proxy(data: bytes) -> ProxyHeaderError:
    return ProxyHeaderError(f"not a PROXY protocol header (starts {bytes(data[:16])!r})")


# --- version 1 ---------------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    head = data[: len(V1_PREFIX)]
    if head != V1_PREFIX[: len(head)]:
        raise _not_proxy(data)
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        _check_v1_partial(data[:V1_MAX_LENGTH])  # the more precise error first
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyHeaderError(f"PROXY v1: no CRLF within the first {V1_MAX_LENGTH} bytes")
        return None
    source, destination = _parse_v1_line(data[:end])
    return ProxyHeader(1, source, destination, end + 2)


def _parse_v1_line(
    line: bytes,
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The addresses of a complete v1 line, given without its CRLF."""
    protocol, sep, rest = line[len(V1_PREFIX) :].partition(b" ")
    if protocol == b"UNKNOWN":
        return None, None  # the spec says to ignore the rest of the line
    name = _v1_protocol(protocol)
    _v1_no_stray_cr_lf(rest)
    fields = rest.split(b" ") if sep else []
    if len(fields) != 4:
        raise ProxyHeaderError(
            f"PROXY v1: {name} needs 6 fields (PROXY {name} src dst sport dport), "
            f"got {len(fields) + 2}"
        )
    texts = [_v1_ascii(field, i) for i, field in enumerate(fields)]
    src_ip = _v1_address(texts[0], name, "source")
    dst_ip = _v1_address(texts[1], name, "destination")
    src_port = _v1_port(texts[2], "source")
    dst_port = _v1_port(texts[3], "destination")
    return (src_ip, src_port), (dst_ip, dst_port)


def _check_v1_partial(data: bytes) -> None:
    """Raise if `data`, a v1 line whose CRLF has not arrived yet, can never become valid."""
    if len(data) <= len(V1_PREFIX):
        return  # a prefix of "PROXY ", already checked
    if data.endswith(b"\r"):
        # Only an LF can follow, so the line is complete. Check it now.
        _parse_v1_line(data[:-1])
        return
    protocol, sep, rest = data[len(V1_PREFIX) :].partition(b" ")
    if not sep:
        if not any(known.startswith(protocol) for known in _V1_PROTOCOLS):
            raise ProxyHeaderError(f"PROXY v1: unknown protocol {_show(protocol)}")
        return
    if protocol == b"UNKNOWN":
        return
    name = _v1_protocol(protocol)
    _v1_no_stray_cr_lf(rest)
    fields = rest.split(b" ")
    if len(fields) > 4:
        raise ProxyHeaderError(
            f"PROXY v1: {name} needs 6 fields (PROXY {name} src dst sport dport), got more"
        )
    texts = [_v1_ascii(field, i) for i, field in enumerate(fields)]
    *complete, last = texts
    for i, text in enumerate(complete):
        if i < 2:
            _v1_address(text, name, ("source", "destination")[i])
        else:
            _v1_port(text, "source")
    index = len(complete)
    if index < 2:
        pattern, kind = _PARTIAL_ADDRESS[name]
        if not pattern.fullmatch(last):
            which = ("source", "destination")[index]
            raise ProxyHeaderError(f"PROXY v1: bad {which} address {last!r} for {name} ({kind})")
    elif last and (not _PORT_RE.fullmatch(last) or int(last) > 0xFFFF):
        which = ("source", "destination")[index - 2]
        raise ProxyHeaderError(f"PROXY v1: bad {which} port {last!r}")


def _v1_protocol(protocol: bytes) -> str:
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {_show(protocol)}")
    return protocol.decode("ascii")


def _v1_no_stray_cr_lf(rest: bytes) -> None:
    if b"\r" in rest or b"\n" in rest:
        raise ProxyHeaderError("PROXY v1: bare CR or LF in the line (only CRLF may end it)")


def _v1_ascii(field: bytes, index: int) -> str:
    try:
        return field.decode("ascii")
    except UnicodeDecodeError:
        what = _V1_FIELD_NAMES[index] if index < len(_V1_FIELD_NAMES) else "field"
        raise ProxyHeaderError(f"PROXY v1: non-ASCII byte in {what} {field!r}") from None


def _v1_address(text: str, protocol: str, which: str) -> str:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if protocol == "TCP4":
            address = ipaddress.IPv4Address(text)
        else:
            if "%" in text:  # IPv6Address takes a scope id; the wire format has none
                raise ValueError(text)
            address = ipaddress.IPv6Address(text)
    except ValueError:
        kind = "dotted IPv4" if protocol == "TCP4" else "IPv6"
        raise ProxyHeaderError(
            f"PROXY v1: bad {which} address {text!r} for {protocol} ({kind})"
        ) from None
    return str(address)


def _v1_port(text: str, which: str) -> int:
    if not _PORT_RE.fullmatch(text) or int(text) > 0xFFFF:
        raise ProxyHeaderError(f"PROXY v1: bad {which} port {text!r}")
    return int(text)


def _show(raw: bytes) -> str:
    return repr(raw.decode("ascii", "backslashreplace"))


# --- version 2 ---------------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    signature = data[: len(V2_SIGNATURE)]
    if signature != V2_SIGNATURE[: len(signature)]:
        raise _not_proxy(data)
    if len(data) <= 12:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(
            f"PROXY v2: bad version {version} in version/command byte 0x{data[12]:02x} (must be 2)"
        )
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError(
            f"PROXY v2: unknown command {command} in version/command byte 0x{data[12]:02x} "
            "(0 LOCAL, 1 PROXY)"
        )
    if len(data) <= 13:
        return None
    family = data[13]
    if command == _V2_PROXY and family not in _V2_FAMILIES:
        raise ProxyHeaderError(f"PROXY v2: unknown address family/transport byte 0x{family:02x}")
    if len(data) < V2_FIXED_LENGTH:
        return None
    declared = int.from_bytes(data[14:16], "big")  # 16 bits: at most 65535
    if declared > V2_MAX_ADDRESS_LENGTH:
        raise ProxyHeaderError(
            f"PROXY v2: declared length {declared} is too long "
            f"(this pool accepts at most {V2_MAX_ADDRESS_LENGTH})"
        )
    if command == _V2_PROXY:
        description, needed = _V2_FAMILIES[family]
        if declared < needed:
            raise ProxyHeaderError(
                f"PROXY v2: declared length {declared} is shorter than the {needed}-byte "
                f"address block of {description}"
            )
    total = V2_FIXED_LENGTH + declared
    if len(data) < total:
        return None
    if command == _V2_LOCAL:
        return ProxyHeader(2, None, None, total)
    block = bytes(data[V2_FIXED_LENGTH:total])
    if family in (0x11, 0x12):
        return ProxyHeader(
            2,
            (str(ipaddress.IPv4Address(block[0:4])), int.from_bytes(block[8:10], "big")),
            (str(ipaddress.IPv4Address(block[4:8])), int.from_bytes(block[10:12], "big")),
            total,
        )
    if family in (0x21, 0x22):
        return ProxyHeader(
            2,
            (str(ipaddress.IPv6Address(block[0:16])), int.from_bytes(block[32:34], "big")),
            (str(ipaddress.IPv6Address(block[16:32])), int.from_bytes(block[34:36], "big")),
            total,
        )
    return ProxyHeader(2, None, None, total)  # UNSPEC or UNIX: no IP address to use
