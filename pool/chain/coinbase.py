"""The coinbase transaction the pool writes, split around the miners' extranonce slot.

Layout of the stripped coinbase (what the txid covers and what miners hash):

    version | 1 input: null prevout, scriptSig, sequence | outputs | locktime
    scriptSig = push(BIP34 height) | push(extranonce1 + extranonce2) | push(pool tag)

coinb1 ends just before extranonce1, coinb2 starts just after extranonce2. The outputs pay
the template's coinbasevalue to the configured reward outputs (split by percent, the rounding
remainder to the first), then the witness commitment when the template carries one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pool.chain.serialize import push_data, push_int, varint
from pool.hashing import sha256d

NULL_PREVOUT = b"\x00" * 32 + b"\xff\xff\xff\xff"
#: The witness reserved value the coinbase carries in a segwit block (BIP141).
WITNESS_RESERVED_VALUE = b"\x00" * 32


class CoinbaseError(ValueError):
    """A coinbase that cannot be built from these settings and this template."""


@dataclass(frozen=True, slots=True)
class CoinbaseParts:
    """The coinbase around the extranonce slot."""

    coinb1: bytes
    coinb2: bytes
    extranonce_size: int

    def stripped(self, extranonce: bytes) -> bytes:
        if len(extranonce) != self.extranonce_size:
            raise CoinbaseError(f"extranonce must be {self.extranonce_size} bytes")
        return self.coinb1 + extranonce + self.coinb2

    def with_witness(self, extranonce: bytes) -> bytes:
        """The coinbase as a segwit block carries it: marker, flag, reserved-value witness."""
        stripped = self.stripped(extranonce)
        body = stripped[4:-4]
        witness = b"\x01" + push_data(WITNESS_RESERVED_VALUE)  # one stack item of 32 bytes
        return stripped[:4] + b"\x00\x01" + body + witness + stripped[-4:]


def split_reward(total: int, percents: Sequence[int]) -> list[int]:
    """Split satoshis by percent; whole satoshis, the remainder to the first output."""
    if sum(percents) != 100:
        raise CoinbaseError(f"reward percents add up to {sum(percents)}, not 100")
    parts = [total * p // 100 for p in percents]
    parts[0] += total - sum(parts)
    return parts


def tx_output(value: int, script: bytes) -> bytes:
    return struct.pack("<q", value) + varint(len(script)) + script


def build_coinbase(
    *,
    height: int,
    coinbasevalue: int,
    outputs: Sequence[tuple[bytes, int]],
    witness_commitment: bytes | None,
    tag: bytes,
    extranonce_size: int,
    tx_version: int = 2,
) -> CoinbaseParts:
    """Build the coinbase halves for a template.

    `outputs` are (script, percent) pairs that share `coinbasevalue`.
    """
    if not outputs:
        raise CoinbaseError("the coinbase needs at least one reward output")
    height_push = push_int(height)
    slot_push = bytes([extranonce_size])  # push opcode for the extranonce bytes
    tag_push = push_data(tag) if tag else b""
    script_len = len(height_push) + 1 + extranonce_size + len(tag_push)
    if not 2 <= script_len <= 100:
        raise CoinbaseError(f"coinbase scriptSig would be {script_len} bytes; must be 2..100")
    values = split_reward(coinbasevalue, [p for _, p in outputs])
    outs = [tx_output(v, script) for (script, _), v in zip(outputs, values, strict=True)]
    if witness_commitment is not None:
        outs.append(tx_output(0, witness_commitment))
    coinb1 = (
        struct.pack("<i", tx_version)
        + b"\x01"
        + NULL_PREVOUT
        + varint(script_len)
        + height_push
        + slot_push
    )
    coinb2 = tag_push + b"\xff\xff\xff\xff" + varint(len(outs)) + b"".join(outs) + b"\x00" * 4
    return CoinbaseParts(coinb1, coinb2, extranonce_size)


def witness_commitment_script(
    witness_root: bytes, reserved: bytes = WITNESS_RESERVED_VALUE
) -> bytes:
    """BIP141 commitment output script for a witness merkle root (internal order)."""
    return bytes.fromhex("6a24aa21a9ed") + sha256d(witness_root + reserved)
