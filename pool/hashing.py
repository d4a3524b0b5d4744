"""The fast hashing core: the step of the share path that turns a submit into a verdict.

coinbase (coinb1 + extranonce1 + extranonce2 + coinb2) -> txid -> merkle root through the
job's branch -> 80-byte header -> sha256d -> compared with the share and network targets.

Everything here is pure and synchronous (no I/O), built on hashlib (OpenSSL, SHA-NI where the
CPU has it). Per job the expensive prefix of the coinbase is hashed once per extranonce1
(a SHA-256 midstate that is copied for each share), and the merkle root of an
(extranonce1, extranonce2) pair is cached so that a miner rolling only nonce/ntime/version
pays for the header hash alone.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import Any

from pool.units import DIFF1_TARGET, bits_to_target

_sha256 = hashlib.sha256
_pack_u32 = struct.Struct("<I").pack
_pack_tail = struct.Struct("<III").pack

MAX_TARGET = (1 << 256) - 1

#: BIP320 general-purpose version bits, the mask pools offer for version rolling.
BIP320_VERSION_MASK = 0x1FFFE000

#: The `mining.notify` params, in order.
NOTIFY_FIELDS = (
    "job_id",
    "prevhash",
    "coinb1",
    "coinb2",
    "merkle_branch",
    "version",
    "nbits",
    "ntime",
    "clean_jobs",
)

#: How many merkle roots one job remembers for repeated (extranonce1, extranonce2) pairs.
ROOT_CACHE_SIZE = 8192


def _load_accelerator() -> ModuleType | None:
    """The optional C build of the fold and header hash (pool/_sha256d.c), if installed."""
    if os.environ.get("FARMPOOL_PURE_PYTHON_HASHING"):
        return None
    try:
        return importlib.import_module("pool._sha256d")
    except ImportError:
        return None


ACCELERATOR = _load_accelerator()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, in internal (little-endian) byte order."""
    return _sha256(_sha256(data).digest()).digest()


def hash_to_hex(digest: bytes) -> str:
    """A hash in internal byte order shown as a block explorer shows it (reversed)."""
    return digest[::-1].hex()


def hash_from_hex(text: str) -> bytes:
    """A block-explorer hex hash turned into internal byte order."""
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError(f"expected a 32-byte hash, got {len(raw)} bytes")
    return raw[::-1]


def hash_to_int(digest: bytes) -> int:
    """The 256-bit number a block hash stands for (internal order is little-endian)."""
    return int.from_bytes(digest, "little")


# --- targets and difficulty --------------------------------------------------------------


def target_to_bits(target: int) -> int:
    """Compress a target into nBits (the inverse of bits_to_target, rounding down)."""
    if target <= 0:
        return 0
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        mantissa = target << (8 * (3 - size))
    else:
        mantissa = target >> (8 * (size - 3))
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def difficulty_to_target(difficulty: float | int | Fraction) -> int:
    """Share target for a pool difficulty (difficulty 1 = DIFF1_TARGET), exact for floats."""
    value = Fraction(difficulty)
    if value <= 0:
        raise ValueError(f"difficulty must be positive, got {difficulty!r}")
    target = DIFF1_TARGET * value.denominator // value.numerator
    return min(target, MAX_TARGET)


def target_to_difficulty(target: int) -> float:
    """Pool difficulty of a target (or of a hash read as a number)."""
    if target <= 0:
        return float("inf")
    return DIFF1_TARGET / target


def bits_to_difficulty(bits: int) -> float:
    """The network difficulty an nBits value stands for."""
    return target_to_difficulty(bits_to_target(bits))


# --- merkle trees --------------------------------------------------------------------------


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle root of txids (or wtxids) in internal byte order, Bitcoin's odd-level rule."""
    if not hashes:
        raise ValueError("a merkle tree needs at least one hash")
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def coinbase_merkle_branch(txids: Sequence[bytes]) -> list[bytes]:
    """The branch that folds the coinbase txid up to the root, given the other txids.

    `txids` are the non-coinbase transactions in block order. The coinbase is always the
    leftmost leaf, so the branch is the right-hand sibling at every level.
    """
    branch: list[bytes] = []
    level: list[bytes | None] = [None, *txids]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        sibling = level[1]
        assert sibling is not None
        branch.append(sibling)
        nxt: list[bytes | None] = [None]
        for i in range(2, len(level), 2):
            left, right = level[i], level[i + 1]
            assert left is not None and right is not None
            nxt.append(sha256d(left + right))
        level = nxt
    return branch


def fold_branch(leaf: bytes, branch: Sequence[bytes]) -> bytes:
    """Fold a coinbase txid through its merkle branch to the merkle root."""
    root = leaf
    for sibling in branch:
        root = _sha256(_sha256(root + sibling).digest()).digest()
    return root


# --- stratum field encodings -------------------------------------------------------------


def swap_words(data: bytes) -> bytes:
    """Byte-swap every 4-byte word (how Stratum sends prevhash)."""
    if len(data) % 4:
        raise ValueError("length is not a multiple of 4")
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def stratum_prevhash_to_header(prevhash_hex: str) -> bytes:
    """Stratum's word-swapped prevhash (hex) to the 32 header bytes."""
    raw = bytes.fromhex(prevhash_hex)
    if len(raw) != 32:
        raise ValueError(f"prevhash must be 32 bytes, got {len(raw)}")
    return swap_words(raw)


def header_prevhash_to_stratum(prevhash: bytes) -> str:
    """32 header bytes of the previous block hash to Stratum's word-swapped hex."""
    return swap_words(prevhash).hex()


def u32_to_hex(value: int) -> str:
    """A 32-bit header field as Stratum sends it: 8 hex digits, big-endian."""
    return f"{value:08x}"


# --- share validation --------------------------------------------------------------------


class ShareError(ValueError):
    """A submit that cannot be hashed as given (the share is invalid)."""


@dataclass(frozen=True, slots=True)
class ShareHash:
    """What hashing one submit gives."""

    header: bytes
    hash: bytes
    value: int
    merkle_root: bytes
    coinbase: bytes | None

    @property
    def hash_hex(self) -> str:
        return hash_to_hex(self.hash)

    @property
    def difficulty(self) -> float:
        return target_to_difficulty(self.value)


class HeaderWork:
    """The hashable part of one job, built once per job and shared by every session.

    Fields are the ones a `mining.notify` carries, in binary: coinbase halves, the merkle
    branch (internal order), the job's version, the previous block hash in header order and
    nBits.
    """

    __slots__ = (
        "_branch_concat",
        "_c",
        "_midstates",
        "_roots",
        "branch",
        "coinb1",
        "coinb2",
        "nbits",
        "network_target",
        "prevhash",
        "version",
    )

    def __init__(
        self,
        coinb1: bytes,
        coinb2: bytes,
        branch: Sequence[bytes],
        version: int,
        prevhash: bytes,
        nbits: int,
        *,
        accelerated: bool = True,
    ) -> None:
        if len(prevhash) != 32:
            raise ValueError("prevhash must be 32 bytes in header order")
        for sibling in branch:
            if len(sibling) != 32:
                raise ValueError("every merkle branch hash must be 32 bytes")
        self.coinb1 = coinb1
        self.coinb2 = coinb2
        self.branch = tuple(branch)
        self.version = version
        self.prevhash = prevhash
        self.nbits = nbits
        self.network_target = bits_to_target(nbits)
        self._midstates: dict[bytes, Any] = {}
        self._roots: dict[bytes, bytes] = {}
        self._c = ACCELERATOR if accelerated else None
        self._branch_concat = b"".join(self.branch)

    @property
    def accelerated(self) -> bool:
        return self._c is not None

    @classmethod
    def from_notify(cls, params: Sequence[Any], *, accelerated: bool = True) -> HeaderWork:
        """From `mining.notify` params as a miner receives them (hex text, in NOTIFY_FIELDS
        order). Not validated: for the pool's own clients and tools; `farmpool share-check`
        checks untrusted input field by field first."""
        return cls(
            bytes.fromhex(params[2]),
            bytes.fromhex(params[3]),
            [bytes.fromhex(h) for h in params[4]],
            int(params[5], 16),
            stratum_prevhash_to_header(params[1]),
            int(params[6], 16),
            accelerated=accelerated,
        )

    def coinbase(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        """The full (stripped) coinbase transaction for one extranonce pair."""
        return self.coinb1 + extranonce1 + extranonce2 + self.coinb2

    def _midstate(self, extranonce1: bytes) -> Any:
        """SHA-256 state after coinb1 + extranonce1: hashed once per session and job."""
        state = self._midstates.get(extranonce1)
        if state is None:
            prefix = self.coinb1 + extranonce1
            state = self._c.midstate(prefix) if self._c is not None else _sha256(prefix)
            self._midstates[extranonce1] = state
        return state

    def merkle_root(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        """Merkle root for an extranonce pair, reusing the coinbase midstate and a cache."""
        key = extranonce1 + extranonce2
        root = self._roots.get(key)
        if root is not None:
            return root
        if self._c is not None:
            root = self._c.merkle_root(
                self._midstate(extranonce1), extranonce2, self.coinb2, self._branch_concat
            )
        else:
            state = self._midstate(extranonce1).copy()
            state.update(extranonce2 + self.coinb2)
            root = _sha256(state.digest()).digest()
            for sibling in self.branch:
                root = _sha256(_sha256(root + sibling).digest()).digest()
        roots = self._roots
        if len(roots) >= ROOT_CACHE_SIZE:
            roots.clear()
        roots[key] = root
        return root

    def header(self, merkle_root: bytes, ntime: int, nonce: int, version: int) -> bytes:
        """The 80-byte block header."""
        return (
            _pack_u32(version) + self.prevhash + merkle_root + _pack_tail(ntime, self.nbits, nonce)
        )

    def rolled_version(self, version_bits: int | None, mask: int) -> int:
        """BIP310: (job version & ~mask) | (bits & mask); bits outside the mask are invalid."""
        if version_bits is None:
            return self.version
        if version_bits & ~mask & 0xFFFFFFFF:
            raise ShareError(
                f"version bits {version_bits:08x} outside the negotiated mask {mask:08x}"
            )
        return (self.version & ~mask & 0xFFFFFFFF) | (version_bits & mask)

    def hash_share(
        self,
        extranonce1: bytes,
        extranonce2: bytes,
        ntime: int,
        nonce: int,
        version: int,
    ) -> tuple[bytes, int]:
        """The hot path: header hash (internal order) and its value, nothing else."""
        root = self.merkle_root(extranonce1, extranonce2)
        if self._c is not None:
            digest = self._c.header_hash(version, self.prevhash, root, ntime, self.nbits, nonce)
            return digest, int.from_bytes(digest, "little")
        digest = _sha256(
            _sha256(
                _pack_u32(version) + self.prevhash + root + _pack_tail(ntime, self.nbits, nonce)
            ).digest()
        ).digest()
        return digest, int.from_bytes(digest, "little")

    def explain_share(
        self,
        extranonce1: bytes,
        extranonce2: bytes,
        ntime: int,
        nonce: int,
        version: int,
    ) -> ShareHash:
        """Every intermediate of one share (for tools and block assembly, not the hot path)."""
        coinbase = self.coinbase(extranonce1, extranonce2)
        root = fold_branch(sha256d(coinbase), self.branch)
        header = self.header(root, ntime, nonce, version)
        digest = sha256d(header)
        return ShareHash(header, digest, hash_to_int(digest), root, coinbase)
