"""pool.hashing: targets and difficulty, compact nBits, merkle branches, Stratum encodings and
the HeaderWork hot path (version rolling, merkle root cache)."""

from __future__ import annotations

import hashlib
import random
import struct
from fractions import Fraction

import pytest

from pool import hashing
from pool.hashing import (
    BIP320_VERSION_MASK,
    DIFF1_TARGET,
    MAX_TARGET,
    HeaderWork,
    ShareError,
    bits_to_difficulty,
    bits_to_target,
    coinbase_merkle_branch,
    difficulty_to_target,
    fold_branch,
    hash_from_hex,
    hash_to_hex,
    hash_to_int,
    header_prevhash_to_stratum,
    merkle_root,
    sha256d,
    stratum_prevhash_to_header,
    swap_words,
    target_to_bits,
    target_to_difficulty,
    u32_to_hex,
)


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# --- sha256d and hash byte order ------------------------------------------------------------


def test_sha256d_known_values() -> None:
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
    assert sha256d(b"hello").hex() == (
        "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
    )


def test_hash_hex_is_reversed_internal_order() -> None:
    internal = bytes(range(32))
    shown = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
    assert hash_to_hex(internal) == shown
    assert hash_from_hex(shown) == internal
    assert hash_to_int(internal) == int(shown, 16)


@pytest.mark.parametrize("text", ["00" * 31, "00" * 33, ""])
def test_hash_from_hex_needs_32_bytes(text: str) -> None:
    with pytest.raises(ValueError, match="expected a 32-byte hash"):
        hash_from_hex(text)


# --- difficulty and targets -----------------------------------------------------------------


def test_difficulty_1_target() -> None:
    assert DIFF1_TARGET == 0x00000000FFFF << 208
    assert difficulty_to_target(1) == 0x00000000FFFF << 208
    assert f"{difficulty_to_target(1):064x}" == "00000000ffff" + "0" * 52
    assert target_to_difficulty(0xFFFF << 208) == 1.0


@pytest.mark.parametrize(
    ("difficulty", "target"),
    [
        (2, 0xFFFF << 207),
        (0.5, 0xFFFF << 209),
        (Fraction(1, 65536), 0xFFFF << 224),
        (65536, 0xFFFF << 192),
        (3, (0xFFFF << 208) // 3),
        (Fraction(3, 2), (0xFFFF << 209) // 3),
    ],
)
def test_difficulty_to_target_exact(difficulty: float | Fraction, target: int) -> None:
    assert difficulty_to_target(difficulty) == target


def test_tiny_difficulty_is_capped_at_the_largest_target() -> None:
    assert difficulty_to_target(1e-12) == MAX_TARGET == (1 << 256) - 1
    # 2**-32 is the smallest difficulty whose target still fits: 0xffff << 240.
    assert difficulty_to_target(2**-32) == 0xFFFF << 240


@pytest.mark.parametrize(
    "difficulty",
    [1, 2, 1.5, 0.001, 1 / 65536, 1e-4, 7.8857809, 123456.789, 2**40, 1e15, 5.5e20, 1e30],
)
def test_target_to_difficulty_inverts_difficulty_to_target(difficulty: float) -> None:
    target = difficulty_to_target(difficulty)
    assert target_to_difficulty(target) == pytest.approx(difficulty, rel=1e-12)
    # A harder difficulty is a smaller target.
    assert difficulty_to_target(difficulty * 2) < target


@pytest.mark.parametrize("difficulty", [0, 0.0, -1, -0.5, Fraction(-1, 3)])
def test_difficulty_must_be_positive(difficulty: float | Fraction) -> None:
    with pytest.raises(ValueError, match="difficulty must be positive"):
        difficulty_to_target(difficulty)


def test_target_to_difficulty_of_zero_is_infinite() -> None:
    assert target_to_difficulty(0) == float("inf")


# --- compact nBits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "target"),
    [
        (0x1D00FFFF, 0xFFFF << 208),  # genesis / difficulty 1
        (0x1B04864C, 0x04864C << 192),  # mainnet block 100000
        (0x1B0404CB, 0x0404CB << 192),  # the Bitcoin wiki's example
        (0x170ED0EB, 0x0ED0EB << 160),
        (0x17034219, 0x034219 << 160),  # mainnet block 840000
        (0x207FFFFF, 0x7FFFFF << 232),  # regtest
    ],
)
def test_real_nbits_round_trip(bits: int, target: int) -> None:
    assert bits_to_target(bits) == target
    assert target_to_bits(target) == bits


@pytest.mark.parametrize(
    ("bits", "difficulty"),
    [
        (0x1D00FFFF, 1.0),
        (0x1B04864C, 14484.1623612254),
        (0x1B0404CB, 16307.420938523983),
        (0x207FFFFF, 4.656542373906925e-10),
    ],
)
def test_bits_to_difficulty(bits: int, difficulty: float) -> None:
    assert bits_to_difficulty(bits) == pytest.approx(difficulty, rel=1e-12)


# Bitcoin Core's arith_uint256_tests (bignum_SetCompact): nBits, target, GetCompact() back.
@pytest.mark.parametrize(
    ("bits", "target", "back"),
    [
        (0x00000000, 0, 0),
        (0x00123456, 0, 0),
        (0x01003456, 0, 0),
        (0x02000056, 0, 0),
        (0x03000000, 0, 0),
        (0x04000000, 0, 0),
        (0x01123456, 0x12, 0x01120000),
        (0x02123456, 0x1234, 0x02123400),
        (0x03123456, 0x123456, 0x03123456),
        (0x04123456, 0x12345600, 0x04123456),
        (0x05009234, 0x92340000, 0x05009234),
        (0x20123456, 0x123456 << 232, 0x20123456),
        (0x02008000, 0x80, 0x02008000),
    ],
)
def test_core_compact_vectors(bits: int, target: int, back: int) -> None:
    assert bits_to_target(bits) == target
    assert target_to_bits(target) == back


def test_target_to_bits_rounds_down() -> None:
    # 0x123456789 keeps its top three bytes: 0x012345 << 16.
    assert target_to_bits(0x123456789) == 0x05012345
    assert bits_to_target(0x05012345) == 0x123450000 < 0x123456789
    assert target_to_bits(0) == 0
    assert target_to_bits(-5) == 0


@pytest.mark.parametrize("bits", [0x04923456, 0x1D80FFFF, 0x01FEDCBA])
def test_negative_nbits_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="is negative"):
        bits_to_target(bits)


# --- merkle trees ---------------------------------------------------------------------------


def test_merkle_root_small_trees_by_hand() -> None:
    a, b, c, d, e = (bytes([i]) * 32 for i in range(1, 6))
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == dsha(a + b)
    # Odd levels repeat their last hash.
    assert merkle_root([a, b, c]) == dsha(dsha(a + b) + dsha(c + c))
    ee = dsha(e + e)
    assert merkle_root([a, b, c, d, e]) == dsha(dsha(dsha(a + b) + dsha(c + d)) + dsha(ee + ee))
    assert coinbase_merkle_branch([]) == []
    assert coinbase_merkle_branch([b]) == [b]
    assert coinbase_merkle_branch([b, c]) == [b, dsha(c + c)]
    assert coinbase_merkle_branch([b, c, d, e]) == [b, dsha(c + d), dsha(ee + ee)]


def test_merkle_root_of_nothing() -> None:
    with pytest.raises(ValueError, match="at least one hash"):
        merkle_root([])


@pytest.mark.parametrize("n", range(1, 18))
def test_branch_folds_to_the_merkle_root(n: int) -> None:
    rng = random.Random(20240420 + n)
    txids = [rng.randbytes(32) for _ in range(n)]
    branch = coinbase_merkle_branch(txids[1:])
    assert len(branch) == (n - 1).bit_length()
    assert fold_branch(txids[0], branch) == merkle_root(txids)
    # The branch does not depend on the coinbase: any other coinbase folds to its own root.
    other = rng.randbytes(32)
    assert fold_branch(other, branch) == merkle_root([other, *txids[1:]])


def test_fold_branch_without_siblings_is_the_leaf() -> None:
    leaf = bytes(range(32))
    assert fold_branch(leaf, []) == leaf


# --- stratum encodings ----------------------------------------------------------------------


def test_swap_words() -> None:
    assert swap_words(bytes(range(8))) == bytes([3, 2, 1, 0, 7, 6, 5, 4])
    assert swap_words(b"") == b""
    with pytest.raises(ValueError, match="multiple of 4"):
        swap_words(b"abcde")


def test_stratum_prevhash_example() -> None:
    # The prevhash of the Stratum protocol's published mining.notify example.
    stratum = "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000"
    header = stratum_prevhash_to_header(stratum)
    assert header.hex() == "f8b6164d19e2f65a2aae448f787fe66d61e57a48c0c6771b1e920b4400000000"
    # Shown as an explorer shows it, the words come in reverse order.
    assert hash_to_hex(header) == (
        "00000000440b921e1b77c6c0487ae5616de67f788f44ae2a5af6e2194d16b6f8"
    )
    assert header_prevhash_to_stratum(header) == stratum


def test_stratum_prevhash_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(20):
        prev = rng.randbytes(32)
        assert stratum_prevhash_to_header(header_prevhash_to_stratum(prev)) == prev
    assert header_prevhash_to_stratum(bytes(range(32)))[:16] == "0302010007060504"


@pytest.mark.parametrize("text", ["00" * 31, "00" * 33])
def test_stratum_prevhash_needs_32_bytes(text: str) -> None:
    with pytest.raises(ValueError, match="prevhash must be 32 bytes"):
        stratum_prevhash_to_header(text)


def test_u32_to_hex() -> None:
    assert u32_to_hex(1) == "00000001"
    assert u32_to_hex(0x20000000) == "20000000"
    assert u32_to_hex(0x1D00FFFF) == "1d00ffff"
    assert u32_to_hex(0xFFFFFFFF) == "ffffffff"


# --- HeaderWork ------------------------------------------------------------------------------

PREV = bytes(range(32))
COINB1 = bytes.fromhex("02000000010000000000000000000000000000000000000000000000000000000000")
COINB2 = bytes.fromhex("0a2f6661726d706f6f6c2fffffffff0100f2052a0100000000000000000000")


def make_work(branch: list[bytes] | None = None, version: int = 0x20000000) -> HeaderWork:
    return HeaderWork(COINB1, COINB2, branch or [], version, PREV, 0x1D00FFFF)


def test_header_layout() -> None:
    work = make_work()
    root = b"\xaa" * 32
    header = work.header(root, 0x5F5E1000, 0x12345678, 0x20000000)
    assert header.hex() == (
        "00000020" + PREV.hex() + "aa" * 32 + "00105e5f" + "ffff001d" + "78563412"
    )
    assert work.network_target == 0xFFFF << 208


def test_header_work_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="prevhash must be 32 bytes"):
        HeaderWork(COINB1, COINB2, [], 1, PREV[:31], 0x1D00FFFF)
    with pytest.raises(ValueError, match="every merkle branch hash must be 32 bytes"):
        HeaderWork(COINB1, COINB2, [b"\x00" * 32, b"\x00" * 31], 1, PREV, 0x1D00FFFF)


@pytest.mark.parametrize(
    ("version", "bits", "mask", "rolled"),
    [
        (0x20000000, None, BIP320_VERSION_MASK, 0x20000000),
        (0x20000000, 0x00002000, BIP320_VERSION_MASK, 0x20002000),
        (0x20000000, 0x1FFFE000, BIP320_VERSION_MASK, 0x3FFFE000),
        (0x20000000, 0x00000000, BIP320_VERSION_MASK, 0x20000000),
        # Job bits inside the mask are replaced by the miner's.
        (0x3FFFE004, 0x00004000, BIP320_VERSION_MASK, 0x20004004),
        (0x20000000, 0x00000000, 0x00000000, 0x20000000),
        (0x20000000, 0x12345678, 0xFFFFFFFF, 0x12345678),
        (0x20000004, 0x00FF0000, 0x00FFE000, 0x20FF0004),
    ],
)
def test_rolled_version(version: int, bits: int | None, mask: int, rolled: int) -> None:
    assert make_work(version=version).rolled_version(bits, mask) == rolled


@pytest.mark.parametrize(
    ("bits", "mask"),
    [(0x00001000, BIP320_VERSION_MASK), (0x20000000, BIP320_VERSION_MASK), (0x1, 0x0)],
)
def test_version_bits_outside_the_mask(bits: int, mask: int) -> None:
    with pytest.raises(ShareError) as info:
        make_work().rolled_version(bits, mask)
    assert str(info.value) == (f"version bits {bits:08x} outside the negotiated mask {mask:08x}")


def test_hash_share_is_the_sha256d_of_the_header() -> None:
    rng = random.Random(99)
    branch = [rng.randbytes(32) for _ in range(3)]
    work = make_work(branch)
    en1, en2 = bytes.fromhex("f000000f"), bytes.fromhex("00000001")
    root = fold_branch(dsha(COINB1 + en1 + en2 + COINB2), branch)
    header = (
        struct.pack("<I", 0x20002000)
        + PREV
        + root
        + struct.pack("<III", 1713571767, 0x1D00FFFF, 42)
    )
    digest, value = work.hash_share(en1, en2, 1713571767, 42, 0x20002000)
    assert digest == dsha(header)
    assert value == int.from_bytes(dsha(header), "little")
    explained = work.explain_share(en1, en2, 1713571767, 42, 0x20002000)
    assert (explained.header, explained.hash, explained.merkle_root) == (header, digest, root)
    assert explained.coinbase == COINB1 + en1 + en2 + COINB2
    assert explained.hash_hex == dsha(header)[::-1].hex()
    assert explained.difficulty == pytest.approx(DIFF1_TARGET / value)


def test_merkle_root_cache_survives_eviction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "ROOT_CACHE_SIZE", 4)
    rng = random.Random(5)
    branch = [rng.randbytes(32) for _ in range(4)]
    work = make_work(branch)
    en1s = [bytes.fromhex("00000001"), bytes.fromhex("abcdef01")]
    pairs = [(en1, i.to_bytes(4, "big")) for i in range(10) for en1 in en1s]

    def expected(en1: bytes, en2: bytes) -> bytes:
        return fold_branch(dsha(COINB1 + en1 + en2 + COINB2), branch)

    first = {}
    for en1, en2 in pairs:
        root = work.merkle_root(en1, en2)
        assert root == expected(en1, en2)
        # Asked again at once, the cached root is the same.
        assert work.merkle_root(en1, en2) == root
        first[en1 + en2] = root
        assert len(work._roots) <= 4
    assert len(set(first.values())) == len(pairs) == 20
    # After many evictions every pair still gives its own root, in any order.
    for en1, en2 in reversed(pairs):
        assert work.merkle_root(en1, en2) == first[en1 + en2]
        assert len(work._roots) <= 4


def test_merkle_root_cache_default_size_is_bounded() -> None:
    work = make_work([b"\x01" * 32])
    en1 = b"\x00\x00\x00\x07"
    size = hashing.ROOT_CACHE_SIZE
    for i in range(size + 3):
        work.merkle_root(en1, i.to_bytes(4, "big"))
    assert len(work._roots) <= size
    en2 = (size + 2).to_bytes(4, "big")
    assert work.merkle_root(en1, en2) == fold_branch(dsha(COINB1 + en1 + en2 + COINB2), work.branch)
