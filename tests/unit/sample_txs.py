"""Two hand-serialized transactions (a legacy P2PKH spend and a P2WPKH spend) with their ids,
shared by the template and coinbase tests."""

from __future__ import annotations

import hashlib
import struct


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# A legacy P2PKH spend: 1 input (71-byte signature push + 33-byte key push), 1 output.
LEGACY_TX = (
    struct.pack("<I", 1)
    + b"\x01"
    + b"\x11" * 32
    + struct.pack("<I", 0)
    + b"\x6a"
    + b"\x47"
    + b"\x30" * 71
    + b"\x21"
    + b"\x02" * 33
    + b"\xff\xff\xff\xff"
    + b"\x01"
    + struct.pack("<q", 99_000)
    + b"\x19\x76\xa9\x14"
    + b"\x44" * 20
    + b"\x88\xac"
    + b"\x00\x00\x00\x00"
)

# A P2WPKH spend: marker/flag, 1 input with empty scriptSig, 2 outputs, 2-item witness.
_SEGWIT_BODY = (
    b"\x01"
    + b"\x22" * 32
    + struct.pack("<I", 1)
    + b"\x00"
    + b"\xfd\xff\xff\xff"
    + b"\x02"
    + struct.pack("<q", 50_000)
    + b"\x16\x00\x14"
    + b"\x55" * 20
    + struct.pack("<q", 40_000)
    + b"\x22\x51\x20"
    + b"\x66" * 32
)
_SEGWIT_WITNESS = b"\x02" + b"\x47" + b"\x30" * 71 + b"\x21" + b"\x03" * 33
_LOCKTIME = struct.pack("<I", 839_999)
SEGWIT_TX = struct.pack("<I", 2) + b"\x00\x01" + _SEGWIT_BODY + _SEGWIT_WITNESS + _LOCKTIME
SEGWIT_TX_STRIPPED = struct.pack("<I", 2) + _SEGWIT_BODY + _LOCKTIME

LEGACY_TXID = dsha(LEGACY_TX)
SEGWIT_TXID = dsha(SEGWIT_TX_STRIPPED)
SEGWIT_WTXID = dsha(SEGWIT_TX)

# BIP141: witness root over (0 for the coinbase, wtxids...), committed with a zero reserved value.
WITNESS_ROOT = dsha(dsha(b"\x00" * 32 + LEGACY_TXID) + dsha(SEGWIT_WTXID + SEGWIT_WTXID))
WITNESS_COMMITMENT = bytes.fromhex("6a24aa21a9ed") + dsha(WITNESS_ROOT + b"\x00" * 32)
