"""Payout addresses to output scripts.

This module turns the pool's and the tenants' payout addresses (as written in the
configuration or entered by a tenant) into the output scripts (scriptPubKey) placed
in coinbase outputs and payout transactions, and turns such scripts back into
addresses for tests and reports.

Supported address forms:

* base58check P2PKH and P2SH;
* bech32 (BIP 173) segwit version 0: P2WPKH (20-byte program) and P2WSH (32-byte);
* bech32m (BIP 350) segwit versions 1 to 16 (P2TR is version 1 with a 32-byte program).

Networks (``NETWORKS``):

* ``main``: P2PKH version byte 0x00 (``1...``), P2SH 0x05 (``3...``), hrp ``bc``;
* ``test`` (testnet3, testnet4, signet): P2PKH 0x6f (``m...``/``n...``), P2SH 0xc4
  (``2...``), hrp ``tb``;
* ``regtest``: Bitcoin Core's prefixes (0x6f, 0xc4, hrp ``bcrt``) *and* bcoin's
  (P2PKH 0x3c ``R...``, P2SH 0x26 ``G...``, hrp ``rb``; from bcoin 1.0.2
  ``lib/protocol/networks.js``, ``regtest.addressPrefix``).

Base58 addresses of ``test`` and Core-style ``regtest`` share their version bytes, so
such an address is accepted on both networks; bech32 addresses are network-specific.
bcoin's legacy base58 encoding of witness programs is not supported.

The bech32/bech32m and base58check codecs below are small private helpers written
from the BIP 173 / BIP 350 specifications.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

__all__ = ["NETWORKS", "AddressError", "address_to_script", "script_to_address"]

NETWORKS: Final = ("main", "test", "regtest")

_FLAVORS: Final = ("core", "bcoin")


class AddressError(ValueError):
    """An address that cannot be turned into an output script for the given network.

    ``str(error)`` names the offending address (its repr) and what is wrong with it.
    """

    def __init__(self, address: object, reason: str) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid address {self.address!r}: {self.reason}"


# ---------------------------------------------------------------------------
# Network parameters


@dataclass(frozen=True)
class _Prefixes:
    label: str
    p2pkh: int
    p2sh: int
    hrp: str


_MAIN: Final = _Prefixes("main", 0x00, 0x05, "bc")
_TEST: Final = _Prefixes("test", 0x6F, 0xC4, "tb")
_REGTEST_CORE: Final = _Prefixes("regtest (Bitcoin Core)", 0x6F, 0xC4, "bcrt")
# bcoin 1.0.2, lib/protocol/networks.js: regtest.addressPrefix
# {pubkeyhash: 0x3c, scripthash: 0x26, witnesspubkeyhash: 0x7a,
#  witnessscripthash: 0x14, bech32: 'rb'}
_REGTEST_BCOIN: Final = _Prefixes("regtest (bcoin)", 0x3C, 0x26, "rb")

# Prefixes accepted when decoding, per network.
_ACCEPTED: Final[dict[str, tuple[_Prefixes, ...]]] = {
    "main": (_MAIN,),
    "test": (_TEST,),
    "regtest": (_REGTEST_CORE, _REGTEST_BCOIN),
}

# Prefixes used when encoding, per (network, flavor). bcoin's main and testnet
# prefixes are the same as Bitcoin Core's.
_ENCODING: Final[dict[tuple[str, str], _Prefixes]] = {
    ("main", "core"): _MAIN,
    ("main", "bcoin"): _MAIN,
    ("test", "core"): _TEST,
    ("test", "bcoin"): _TEST,
    ("regtest", "core"): _REGTEST_CORE,
    ("regtest", "bcoin"): _REGTEST_BCOIN,
}

# bcoin's base58 version bytes for witness programs (witnesspubkeyhash,
# witnessscripthash) on main, testnet and regtest: recognised only to explain
# that this legacy form is not supported.
_BCOIN_BASE58_WITNESS: Final = frozenset({0x06, 0x0A, 0x03, 0x28, 0x7A, 0x14})

_ALL_HRPS: Final = frozenset(p.hrp for ps in _ACCEPTED.values() for p in ps)


def _check_network(address: object, network: str) -> tuple[_Prefixes, ...]:
    prefixes = _ACCEPTED.get(network) if isinstance(network, str) else None
    if prefixes is None:
        raise AddressError(
            address, f"unknown network {network!r}; expected one of {', '.join(NETWORKS)}"
        )
    return prefixes


def _networks_with_hrp(hrp: str) -> list[str]:
    return [net for net, ps in _ACCEPTED.items() if any(p.hrp == hrp for p in ps)]


def _networks_with_version(version: int) -> list[str]:
    return [net for net, ps in _ACCEPTED.items() if any(version in (p.p2pkh, p.p2sh) for p in ps)]


# ---------------------------------------------------------------------------
# Bech32 / bech32m (BIP 173, BIP 350)

_BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_VALUES: Final = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONST: Final = 1
_BECH32M_CONST: Final = 0x2BC830A3
_BECH32_MAX_LENGTH: Final = 90


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, gen in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_checksum(hrp: str, data: list[int], spec: str) -> list[int]:
    const = _BECH32M_CONST if spec == "bech32m" else _BECH32_CONST
    polymod = _bech32_polymod([*_bech32_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ const
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def _bech32_encode(hrp: str, data: list[int], spec: str) -> str:
    combined = data + _bech32_checksum(hrp, data, spec)
    return hrp + "1" + "".join(_BECH32_CHARSET[v] for v in combined)


def _bech32_verify(hrp: str, values: list[int]) -> str | None:
    """Return "bech32" or "bech32m" when the checksum is valid for that variant."""
    polymod = _bech32_polymod(_bech32_hrp_expand(hrp) + values)
    if polymod == _BECH32_CONST:
        return "bech32"
    if polymod == _BECH32M_CONST:
        return "bech32m"
    return None


def _bech32_decode(address: str) -> tuple[str, list[int], str]:
    """Split a bech32/bech32m string into (lowercase hrp, data values, variant).

    The data values exclude the 6-value checksum. Raises AddressError.
    """
    for pos, char in enumerate(address):
        if not 33 <= ord(char) <= 126:
            raise AddressError(
                address, f"character {char!r} at position {pos} is out of range for bech32"
            )
    if address.lower() != address and address.upper() != address:
        raise AddressError(address, "mixed case bech32 (must be all lowercase or all uppercase)")
    if len(address) > _BECH32_MAX_LENGTH:
        raise AddressError(
            address, f"bech32 string is {len(address)} characters long (max {_BECH32_MAX_LENGTH})"
        )
    lowered = address.lower()
    sep = lowered.rfind("1")
    if sep < 0:
        raise AddressError(address, "no bech32 separator '1'")
    if sep == 0:
        raise AddressError(address, "empty bech32 human-readable part")
    hrp, rest = lowered[:sep], lowered[sep + 1 :]
    if len(rest) < 6:
        raise AddressError(address, "bech32 checksum too short (fewer than 6 characters)")
    values: list[int] = []
    for pos, char in enumerate(rest, start=sep + 1):
        value = _BECH32_VALUES.get(char)
        if value is None:
            raise AddressError(
                address, f"invalid bech32 character {address[pos]!r} at position {pos}"
            )
        values.append(value)
    spec = _bech32_verify(hrp, values)
    if spec is None:
        raise AddressError(address, "bad bech32/bech32m checksum")
    return hrp, values[:-6], spec


def _convert_bits(data: list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    """Regroup a list of from_bits-wide values into to_bits-wide values.

    Without pad, returns None when the leftover bits are more than from_bits - 1
    or not all zero (BIP 173 decoding rules).
    """
    acc = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & max_value):
        return None
    return out


def _segwit_decode(address: str, prefixes: tuple[_Prefixes, ...], network: str) -> bytes:
    hrp, data, spec = _bech32_decode(address)
    expected = ", ".join(repr(p.hrp) for p in prefixes)
    if hrp not in {p.hrp for p in prefixes}:
        owners = _networks_with_hrp(hrp)
        where = f" (it belongs to network {'/'.join(owners)})" if owners else ""
        raise AddressError(
            address,
            f"unknown bech32 prefix {hrp!r} for network {network}{where}; expected {expected}",
        )
    if not data:
        raise AddressError(address, "empty bech32 data section (no witness version)")
    version = data[0]
    if version > 16:
        raise AddressError(address, f"wrong witness version {version} (must be 0 to 16)")
    program_values = _convert_bits(data[1:], 5, 8, pad=False)
    if program_values is None:
        raise AddressError(
            address, "invalid padding in witness program (more than 4 bits or non-zero)"
        )
    program = bytes(program_values)
    if not 2 <= len(program) <= 40:
        raise AddressError(
            address,
            f"wrong length of witness program: {len(program)} bytes (must be 2 to 40)",
        )
    if version == 0 and len(program) not in (20, 32):
        raise AddressError(
            address,
            f"wrong length of witness program for version 0: {len(program)} bytes "
            "(must be 20 for P2WPKH or 32 for P2WSH)",
        )
    if version == 0 and spec != "bech32":
        raise AddressError(
            address, "bech32m checksum used for witness version 0, which requires bech32 (BIP 173)"
        )
    if version != 0 and spec != "bech32m":
        raise AddressError(
            address,
            f"bech32 checksum used for witness version {version}, which requires bech32m (BIP 350)",
        )
    return _witness_script(version, program)


def _segwit_encode(hrp: str, version: int, program: bytes) -> str:
    spec = "bech32" if version == 0 else "bech32m"
    five_bit = _convert_bits(list(program), 8, 5, pad=True)
    assert five_bit is not None  # padding never fails
    return _bech32_encode(hrp, [version, *five_bit], spec)


# ---------------------------------------------------------------------------
# Base58check

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_VALUES: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        chars.append(_B58_ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(chars))


def _b58decode(address: str) -> bytes:
    number = 0
    for pos, char in enumerate(address):
        value = _B58_VALUES.get(char)
        if value is None:
            raise AddressError(address, f"base58 invalid character {char!r} at position {pos}")
        number = number * 58 + value
    leading_zeros = len(address) - len(address.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * leading_zeros + body


def _b58check_encode(payload: bytes) -> str:
    return _b58encode(payload + _sha256d(payload)[:4])


def _b58check_decode(address: str) -> bytes:
    raw = _b58decode(address)
    if len(raw) < 5:
        raise AddressError(address, f"base58 data too short ({len(raw)} bytes)")
    payload, checksum = raw[:-4], raw[-4:]
    if _sha256d(payload)[:4] != checksum:
        raise AddressError(address, "bad base58check checksum")
    return payload


def _base58_decode(address: str, prefixes: tuple[_Prefixes, ...], network: str) -> bytes:
    if len(address) > 100:
        raise AddressError(address, f"too long for a base58 address ({len(address)} characters)")
    payload = _b58check_decode(address)
    version, body = payload[0], payload[1:]
    if len(body) != 20:
        if version in _BCOIN_BASE58_WITNESS and len(body) in (22, 34):
            raise AddressError(
                address,
                "bcoin legacy base58 witness address is not supported; use the bech32 form",
            )
        raise AddressError(
            address,
            f"wrong length of base58 payload: {len(body)} bytes after the version byte "
            "(must be 20)",
        )
    for p in prefixes:
        if version == p.p2pkh:
            return _p2pkh_script(body)
        if version == p.p2sh:
            return _p2sh_script(body)
    expected = " or ".join(f"0x{p.p2pkh:02x}/0x{p.p2sh:02x}" for p in prefixes)
    owners = _networks_with_version(version)
    where = f" (it belongs to network {'/'.join(owners)})" if owners else ""
    raise AddressError(
        address,
        f"unknown base58 prefix 0x{version:02x} for network {network}{where}; "
        f"expected P2PKH/P2SH version {expected}",
    )


# ---------------------------------------------------------------------------
# Scripts

_OP_0: Final = 0x00
_OP_1: Final = 0x51
_OP_DUP: Final = 0x76
_OP_HASH160: Final = 0xA9
_OP_EQUAL: Final = 0x87
_OP_EQUALVERIFY: Final = 0x88
_OP_CHECKSIG: Final = 0xAC


def _p2pkh_script(pubkey_hash: bytes) -> bytes:
    return bytes([_OP_DUP, _OP_HASH160, 20]) + pubkey_hash + bytes([_OP_EQUALVERIFY, _OP_CHECKSIG])


def _p2sh_script(script_hash: bytes) -> bytes:
    return bytes([_OP_HASH160, 20]) + script_hash + bytes([_OP_EQUAL])


def _witness_script(version: int, program: bytes) -> bytes:
    opcode = _OP_0 if version == 0 else _OP_1 + version - 1
    return bytes([opcode, len(program)]) + program


def _parse_witness_script(script: bytes) -> tuple[int, bytes] | None:
    if not 4 <= len(script) <= 42 or script[1] != len(script) - 2:
        return None
    opcode = script[0]
    if opcode == _OP_0:
        version = 0
    elif _OP_1 <= opcode <= _OP_1 + 15:
        version = opcode - _OP_1 + 1
    else:
        return None
    program = script[2:]
    if version == 0 and len(program) not in (20, 32):
        return None
    return version, program


# ---------------------------------------------------------------------------
# Public API


def address_to_script(address: str, network: str) -> bytes:
    """Return the output script (scriptPubKey) paying to ``address`` on ``network``.

    ``network`` is one of ``NETWORKS``. Raises AddressError (a ValueError) for an
    unknown network or for any address that is not valid on that network, with a
    message naming the address and the problem.
    """
    prefixes = _check_network(address, network)
    if not isinstance(address, str):
        raise AddressError(address, f"address must be a str, not {type(address).__name__}")
    if not address:
        raise AddressError(address, "empty address")
    if address.strip() != address:
        raise AddressError(address, "leading or trailing whitespace")

    sep = address.rfind("1")
    mixed_case = address.lower() != address and address.upper() != address
    if sep > 0 and address[:sep].lower() in _ALL_HRPS:
        if not mixed_case:
            return _segwit_decode(address, prefixes, network)
        # Mixed case is never bech32, but base58 can start like an HRP: bcoin's regtest
        # base58 addresses start with R, and "RB1..." reads as the bech32 prefix "rb1".
        try:
            return _base58_decode(address, prefixes, network)
        except AddressError:
            return _segwit_decode(address, prefixes, network)  # says: mixed case bech32
    if sep > 0 and _looks_like_valid_bech32(address, sep):
        # A well-formed bech32 string with a foreign prefix: say so.
        return _segwit_decode(address, prefixes, network)
    if sep > 0 and not mixed_case and not all(c in _B58_VALUES for c in address):
        # Cannot be base58 and may be bech32: report what is wrong with it as bech32.
        return _segwit_decode(address, prefixes, network)
    # Mixed case strings can only be base58.
    return _base58_decode(address, prefixes, network)


def _looks_like_valid_bech32(address: str, sep: int) -> bool:
    hrp, rest = address[:sep], address[sep + 1 :]
    if address.lower() != address and address.upper() != address:
        return False
    values = [_BECH32_VALUES.get(c, -1) for c in rest.lower()]
    if len(values) < 6 or -1 in values:
        return False
    return _bech32_verify(hrp.lower(), values) is not None


def script_to_address(script: bytes, network: str, *, flavor: str = "core") -> str | None:
    """Return the address for ``script`` on ``network``, or None if it has no address form.

    Handles P2PKH, P2SH, segwit v0 P2WPKH/P2WSH and witness versions 1 to 16 (bech32m).
    ``flavor`` ("core" or "bcoin") selects which prefixes are used on regtest; on main
    and test both flavors are the same. Raises ValueError for an unknown network or
    flavor.
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected one of {', '.join(NETWORKS)}")
    if flavor not in _FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {', '.join(_FLAVORS)}")
    prefixes = _ENCODING[(network, flavor)]
    script = bytes(script)
    if (
        len(script) == 25
        and script[:3] == bytes([_OP_DUP, _OP_HASH160, 20])
        and script[23:] == bytes([_OP_EQUALVERIFY, _OP_CHECKSIG])
    ):
        return _b58check_encode(bytes([prefixes.p2pkh]) + script[3:23])
    if len(script) == 23 and script[:2] == bytes([_OP_HASH160, 20]) and script[22] == _OP_EQUAL:
        return _b58check_encode(bytes([prefixes.p2sh]) + script[2:22])
    witness = _parse_witness_script(script)
    if witness is not None:
        return _segwit_encode(prefixes.hrp, *witness)
    return None
