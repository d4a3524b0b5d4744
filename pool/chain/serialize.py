"""Bitcoin wire serialization the pool needs: varints, script pushes, transactions.

Used to write coinbases and blocks, and to read blocks back (tests over real blocks, and a
check of every assembled block before it is submitted).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pool.hashing import sha256d


def varint(n: int) -> bytes:
    """CompactSize encoding."""
    if n < 0:
        raise ValueError("varint of a negative number")
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def push_data(data: bytes) -> bytes:
    """The smallest script push of `data`."""
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return b"\x4c" + bytes([n]) + data
    if n <= 0xFFFF:
        return b"\x4d" + struct.pack("<H", n) + data
    return b"\x4e" + struct.pack("<I", n) + data


def script_num(n: int) -> bytes:
    """CScriptNum bytes (minimal little-endian with a sign bit)."""
    if n == 0:
        return b""
    negative = n < 0
    value = abs(n)
    out = bytearray()
    while value:
        out.append(value & 0xFF)
        value >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def push_int(n: int) -> bytes:
    """How `CScript() << n` writes a number: OP_0, OP_1..OP_16, or a CScriptNum push."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    if n == -1:
        return b"\x4f"
    return push_data(script_num(n))


class Reader:
    """A cursor over bytes for parsing."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"truncated: wanted {n} bytes at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        return int.from_bytes(self.take(size), "little")


@dataclass(frozen=True)
class TxOut:
    value: int
    script: bytes


@dataclass(frozen=True)
class Tx:
    """A parsed transaction, with both serializations kept for hashing."""

    version: int
    inputs: tuple[tuple[bytes, int, bytes, int], ...]  # (prev txid, vout, scriptSig, sequence)
    outputs: tuple[TxOut, ...]
    witnesses: tuple[tuple[bytes, ...], ...]
    locktime: int
    raw: bytes
    stripped: bytes

    @property
    def txid(self) -> bytes:
        return sha256d(self.stripped)

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.raw)

    @property
    def has_witness(self) -> bool:
        return self.raw != self.stripped


def read_tx(r: Reader) -> Tx:
    start = r.pos
    version = r.u32()
    segwit = False
    count = r.varint()
    if count == 0:
        flag = r.take(1)[0]
        if flag != 1:
            raise ValueError("bad segwit flag")
        segwit = True
        count = r.varint()
    ins_start = r.pos
    inputs = []
    for _ in range(count):
        prev = r.take(32)
        vout = r.u32()
        script = r.take(r.varint())
        sequence = r.u32()
        inputs.append((prev, vout, script, sequence))
    outputs = []
    for _ in range(r.varint()):
        value = r.u64()
        outputs.append(TxOut(value, r.take(r.varint())))
    ins_end = r.pos
    witnesses: list[tuple[bytes, ...]] = []
    if segwit:
        for _ in range(count):
            witnesses.append(tuple(r.take(r.varint()) for _ in range(r.varint())))
    lock_start = r.pos
    locktime = r.u32()
    raw = r.data[start : r.pos]
    if segwit:
        stripped = (
            r.data[start : start + 4]
            + r.data[ins_start - len(varint(count)) : ins_end]
            + r.data[lock_start : r.pos]
        )
    else:
        stripped = raw
    return Tx(version, tuple(inputs), tuple(outputs), tuple(witnesses), locktime, raw, stripped)


def parse_tx(data: bytes) -> Tx:
    r = Reader(data)
    tx = read_tx(r)
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes after the transaction")
    return tx


@dataclass(frozen=True)
class Block:
    header: bytes
    txs: tuple[Tx, ...]

    @property
    def hash(self) -> bytes:
        return sha256d(self.header)


def parse_block(data: bytes) -> Block:
    r = Reader(data)
    header = r.take(80)
    txs = tuple(read_tx(r) for _ in range(r.varint()))
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes after the block's transactions")
    return Block(header, txs)
