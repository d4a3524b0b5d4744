"""pool.chain.coinbase, the script/varint encoders of pool.chain.serialize and pool.chain.job:
the coinbase the pool writes, the jobs miners get and the blocks a found share becomes."""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest

from pool.chain.coinbase import (
    CoinbaseError,
    build_coinbase,
    split_reward,
    witness_commitment_script,
)
from pool.chain.job import Job, JobFactory
from pool.chain.serialize import parse_block, parse_tx, push_data, push_int, script_num, varint
from pool.chain.template import parse_template
from pool.config import CoinbaseSettings, PayoutOutput
from tests.unit.sample_txs import (
    LEGACY_TX,
    LEGACY_TXID,
    SEGWIT_TX,
    SEGWIT_TXID,
    SEGWIT_WTXID,
    WITNESS_COMMITMENT,
    dsha,
)

P2WPKH = bytes.fromhex("0014377c0b8f5768a0179cd6d94711a4fa8c0f6bd605")
P2PKH = bytes.fromhex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac")
P2SH = bytes.fromhex("a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1887")
COMMITMENT = bytes.fromhex("6a24aa21a9ed") + bytes(range(32))


# --- script numbers and pushes --------------------------------------------------------------


# How Bitcoin Core's `CScript() << nHeight` writes BIP34 heights.
@pytest.mark.parametrize(
    ("n", "script_hex"),
    [
        (0, "00"),  # OP_0
        (1, "51"),  # OP_1
        (2, "52"),
        (16, "60"),  # OP_16
        (17, "0111"),
        (127, "017f"),
        (128, "028000"),
        (255, "02ff00"),
        (256, "020001"),
        (32767, "02ff7f"),
        (32768, "03008000"),
        (65535, "03ffff00"),
        (227_836, "03fc7903"),  # mainnet block 227836, the first v2 (BIP34) era
        (840_000, "0340d10c"),  # mainnet block 840000's scriptSig starts 0340d10c
        (8_388_607, "03ffff7f"),
        (8_388_608, "0400008000"),
        (2**31 - 1, "04ffffff7f"),
        (-1, "4f"),  # OP_1NEGATE
    ],
)
def test_push_int(n: int, script_hex: str) -> None:
    assert push_int(n).hex() == script_hex


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, ""),
        (1, "01"),
        (-1, "81"),
        (127, "7f"),
        (-127, "ff"),
        (128, "8000"),
        (-128, "8080"),
        (255, "ff00"),
        (-255, "ff80"),
        (256, "0001"),
        (-32768, "008080"),
    ],
)
def test_script_num(n: int, encoded: str) -> None:
    assert script_num(n).hex() == encoded


@pytest.mark.parametrize(
    ("size", "prefix"),
    [(0, "00"), (1, "01"), (75, "4b"), (76, "4c4c"), (255, "4cff"), (256, "4d0001"),
     (65535, "4dffff"), (65536, "4e00000100")],
)  # fmt: skip
def test_push_data(size: int, prefix: str) -> None:
    data = b"\xab" * size
    assert push_data(data) == bytes.fromhex(prefix) + data


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (0xFFFFFFFF, "feffffffff"),
        (0x100000000, "ff0000000001000000"),
    ],
)
def test_varint(n: int, encoded: str) -> None:
    assert varint(n).hex() == encoded


def test_varint_of_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        varint(-1)


# --- reward split ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "percents", "parts"),
    [
        (5_000_000_001, [33, 33, 34], [1_650_000_001, 1_650_000_000, 1_700_000_000]),
        (312_517_345, [50, 50], [156_258_673, 156_258_672]),
        (312_517_345, [60, 40], [187_510_407, 125_006_938]),
        (1, [50, 50], [1, 0]),
        (99, [1] * 100, [99] + [0] * 99),
        (0, [100], [0]),
        (625_000_000, [100], [625_000_000]),
    ],
)
def test_split_reward(total: int, percents: list[int], parts: list[int]) -> None:
    result = split_reward(total, percents)
    assert result == parts
    assert sum(result) == total


@pytest.mark.parametrize("percents", [[50, 49], [60, 60], []])
def test_split_reward_needs_100_percent(percents: list[int]) -> None:
    with pytest.raises(CoinbaseError, match=f"add up to {sum(percents)}, not 100"):
        split_reward(1000, percents)


# --- build_coinbase -------------------------------------------------------------------------

EXTRANONCE = bytes.fromhex("0badf00d12345678")


def three_way(witness_commitment: bytes | None = COMMITMENT, tag: bytes = b"/farmpool/") -> Any:
    return build_coinbase(
        height=840_000,
        coinbasevalue=5_000_000_001,
        outputs=[(P2WPKH, 33), (P2PKH, 33), (P2SH, 34)],
        witness_commitment=witness_commitment,
        tag=tag,
        extranonce_size=8,
    )


def test_coinbase_parses_with_height_extranonce_and_tag() -> None:
    parts = three_way()
    raw = parts.coinb1 + EXTRANONCE + parts.coinb2
    assert parts.stripped(EXTRANONCE) == raw
    tx = parse_tx(raw)
    assert tx.version == 2
    assert tx.locktime == 0
    assert not tx.has_witness
    assert len(tx.inputs) == 1
    prev, vout, script_sig, sequence = tx.inputs[0]
    assert (prev, vout, sequence) == (b"\x00" * 32, 0xFFFFFFFF, 0xFFFFFFFF)
    assert script_sig == bytes.fromhex("0340d10c") + b"\x08" + EXTRANONCE + b"\x0a/farmpool/"
    assert script_sig.startswith(push_int(840_000))
    assert push_data(EXTRANONCE) in script_sig
    assert script_sig.endswith(push_data(b"/farmpool/"))
    # coinb1 ends right where the extranonce starts.
    assert parts.coinb1.endswith(bytes.fromhex("0340d10c08"))
    assert parts.coinb2.startswith(b"\x0a/farmpool/\xff\xff\xff\xff")


def test_coinbase_outputs_share_the_value_exactly() -> None:
    tx = parse_tx(three_way().stripped(EXTRANONCE))
    values = [(o.value, o.script) for o in tx.outputs]
    assert values == [
        (1_650_000_001, P2WPKH),
        (1_650_000_000, P2PKH),
        (1_700_000_000, P2SH),
        (0, COMMITMENT),
    ]
    assert sum(v for v, _ in values) == 5_000_000_001


def test_coinbase_without_witness_commitment() -> None:
    tx = parse_tx(three_way(witness_commitment=None).stripped(EXTRANONCE))
    assert [o.script for o in tx.outputs] == [P2WPKH, P2PKH, P2SH]


def test_coinbase_without_tag() -> None:
    parts = build_coinbase(
        height=1,
        coinbasevalue=5_000_000_000,
        outputs=[(P2WPKH, 100)],
        witness_commitment=None,
        tag=b"",
        extranonce_size=1,
        tx_version=1,
    )
    tx = parse_tx(parts.stripped(b"\x07"))
    assert tx.version == 1
    assert tx.inputs[0][2] == bytes.fromhex("510107")
    assert [(o.value, o.script) for o in tx.outputs] == [(5_000_000_000, P2WPKH)]


def test_with_witness_is_a_segwit_coinbase_with_the_same_txid() -> None:
    parts = three_way()
    full = parts.with_witness(EXTRANONCE)
    tx = parse_tx(full)
    assert tx.has_witness
    assert tx.witnesses == ((b"\x00" * 32,),)
    assert tx.raw == full
    assert tx.stripped == parts.stripped(EXTRANONCE)
    assert tx.txid == dsha(parts.stripped(EXTRANONCE))
    assert tx.wtxid == dsha(full) != tx.txid
    # version | marker 00 | flag 01 | ... | witness: 1 item of 32 bytes | locktime
    assert full[:6] == bytes.fromhex("020000000001")
    assert full[-4 - 34 :] == b"\x01\x20" + b"\x00" * 32 + b"\x00" * 4


def test_wrong_extranonce_size() -> None:
    parts = three_way()
    with pytest.raises(CoinbaseError, match="extranonce must be 8 bytes"):
        parts.stripped(EXTRANONCE[:7])
    with pytest.raises(CoinbaseError, match="extranonce must be 8 bytes"):
        parts.with_witness(EXTRANONCE + b"\x00")


def test_scriptsig_length_limit() -> None:
    # 4 (height push) + 1 + 8 (extranonce push) + 2 + 85 (PUSHDATA1 tag) = 100 bytes: allowed.
    parts = three_way(tag=b"t" * 85)
    script_sig = parse_tx(parts.stripped(EXTRANONCE)).inputs[0][2]
    assert len(script_sig) == 100
    assert script_sig.endswith(b"\x4c\x55" + b"t" * 85)
    with pytest.raises(CoinbaseError, match=r"scriptSig would be 101 bytes; must be 2\.\.100"):
        three_way(tag=b"t" * 86)


def test_coinbase_needs_an_output() -> None:
    with pytest.raises(CoinbaseError, match="at least one reward output"):
        build_coinbase(
            height=1,
            coinbasevalue=1,
            outputs=[],
            witness_commitment=None,
            tag=b"x",
            extranonce_size=8,
        )


def test_coinbase_percents_must_add_to_100() -> None:
    with pytest.raises(CoinbaseError, match="add up to 90, not 100"):
        build_coinbase(
            height=1,
            coinbasevalue=1,
            outputs=[(P2WPKH, 50), (P2PKH, 40)],
            witness_commitment=None,
            tag=b"x",
            extranonce_size=8,
        )


def test_witness_commitment_script() -> None:
    root = bytes(range(32))
    script = witness_commitment_script(root)
    assert script == bytes.fromhex("6a24aa21a9ed") + dsha(root + b"\x00" * 32)
    assert len(script) == 38
    reserved = b"\x01" * 32
    assert witness_commitment_script(root, reserved)[6:] == dsha(root + reserved)


# --- jobs -----------------------------------------------------------------------------------

TEMPLATE_COMMITMENT = WITNESS_COMMITMENT

PREV = "0000000000000000000172014ba58d66455762add0512355ad651207918494ab"
# Stratum sends the explorer hex's eight 4-byte words in reverse order.
PREV_STRATUM = "".join(reversed([PREV[i : i + 8] for i in range(0, 64, 8)]))


def template_answer(segwit: bool = True) -> dict[str, Any]:
    txs: list[dict[str, Any]] = [
        {"data": LEGACY_TX.hex(), "txid": LEGACY_TXID[::-1].hex(), "fee": 15_000},
    ]
    answer: dict[str, Any] = {
        "version": 0x20000000,
        "rules": ["csv"],
        "previousblockhash": PREV,
        "transactions": txs,
        "coinbasevalue": 312_517_345,
        "longpollid": PREV + "7",
        "target": "0000000000000000000342190000000000000000000000000000000000000000",
        "mintime": 1713569941,
        "curtime": 1713571767,
        "bits": "17034219",
        "height": 840_000,
    }
    if segwit:
        answer["rules"] = ["csv", "!segwit", "taproot"]
        txs.append(
            {
                "data": SEGWIT_TX.hex(),
                "txid": SEGWIT_TXID[::-1].hex(),
                "hash": SEGWIT_WTXID[::-1].hex(),
                "fee": 2_345,
            }
        )
        answer["default_witness_commitment"] = TEMPLATE_COMMITMENT.hex()
    return answer


def settings(**kw: Any) -> CoinbaseSettings:
    outputs = (
        PayoutOutput("bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup", P2WPKH, 60),
        PayoutOutput("mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt", P2PKH, 40),
    )
    return CoinbaseSettings(outputs=outputs, **kw)


def job_for(segwit: bool = True, clean: bool = True) -> Job:
    return JobFactory(settings()).build(parse_template(template_answer(segwit)), clean)


def test_notify_params() -> None:
    job = job_for(segwit=True, clean=True)
    params = job.notify_params()
    assert len(params) == 9
    job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean = params
    assert job_id == job.job_id
    assert prevhash == PREV_STRATUM
    assert prevhash.startswith("918494ab") and prevhash.endswith("00000000")
    assert coinb1 == job.coinbase.coinb1.hex()
    assert coinb2 == job.coinbase.coinb2.hex()
    assert branch == [LEGACY_TXID.hex(), dsha(SEGWIT_TXID + SEGWIT_TXID).hex()]
    assert (version, nbits, ntime) == ("20000000", "17034219", "662307b7")
    for field in (version, nbits, ntime):
        assert re.fullmatch(r"[0-9a-f]{8}", field)
    assert clean is True
    assert job.notify_params(clean=False)[8] is False
    assert job_for(clean=False).notify_params()[8] is False


def test_job_properties() -> None:
    job = job_for()
    assert job.height == 840_000
    assert job.prevhash_hex == PREV
    assert job.network_target == 0x034219 << 160
    assert job.ntime == 1713571767
    assert job.segwit is True
    assert job.coinbase.extranonce_size == 8
    assert job_for(segwit=False).segwit is False


def test_job_ids_are_short_and_unique() -> None:
    factory = JobFactory(settings())
    template = parse_template(template_answer())
    ids = [factory.build(template, False).job_id for _ in range(3)]
    ids += [factory.next_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        assert re.fullmatch(r"[0-9a-f]{1,8}", job_id)
    # Two factories (a restart) start at different points.
    assert JobFactory(settings()).next_id() != JobFactory(settings()).next_id()


def test_extranonce_size_is_both_halves() -> None:
    factory = JobFactory(settings(extranonce1_size=3, extranonce2_size=6))
    job = factory.build(parse_template(template_answer()), True)
    assert factory.extranonce_size == 9
    assert job.coinbase.extranonce_size == 9
    assert job.coinbase.coinb1.endswith(b"\x09")


def found_block(job: Job, en1: bytes, en2: bytes, nonce: int = 0x1234ABCD) -> Any:
    work = job.work
    header = work.header(work.merkle_root(en1, en2), job.ntime + 5, nonce, work.version)
    return header, parse_block(job.block(en1 + en2, header))


@pytest.mark.parametrize("segwit", [True, False])
def test_block_parses_and_its_merkle_root_is_the_headers(segwit: bool) -> None:
    job = job_for(segwit=segwit)
    en1, en2 = bytes.fromhex("deadbeef"), bytes.fromhex("00000003")
    header, block = found_block(job, en1, en2)
    assert block.header == header
    assert len(header) == 80
    assert header[4:36] == bytes.fromhex(PREV)[::-1]
    assert header[72:76] == struct.pack("<I", 0x17034219)
    coinbase, *rest = block.txs
    assert [tx.raw for tx in rest] == ([LEGACY_TX, SEGWIT_TX] if segwit else [LEGACY_TX])
    assert coinbase.stripped == job.coinbase.coinb1 + en1 + en2 + job.coinbase.coinb2
    assert coinbase.inputs[0][2].startswith(bytes.fromhex("0340d10c08") + en1 + en2)
    txids = [tx.txid for tx in block.txs]
    if segwit:
        root = dsha(dsha(txids[0] + txids[1]) + dsha(txids[2] + txids[2]))
    else:
        root = dsha(txids[0] + txids[1])
    assert txids[1:] == ([LEGACY_TXID, SEGWIT_TXID] if segwit else [LEGACY_TXID])
    assert header[36:68] == root


def test_segwit_block_carries_the_templates_commitment() -> None:
    job = job_for(segwit=True)
    _, block = found_block(job, bytes.fromhex("00000001"), bytes.fromhex("ffffffff"))
    coinbase = block.txs[0]
    assert coinbase.has_witness
    assert coinbase.witnesses == ((b"\x00" * 32,),)
    assert [(o.value, o.script) for o in coinbase.outputs] == [
        (187_510_407, P2WPKH),
        (125_006_938, P2PKH),
        (0, TEMPLATE_COMMITMENT),
    ]
    # The commitment is right for the block as assembled (BIP141).
    wtxids = [b"\x00" * 32] + [tx.wtxid for tx in block.txs[1:]]
    witness_root = dsha(dsha(wtxids[0] + wtxids[1]) + dsha(wtxids[2] + wtxids[2]))
    assert TEMPLATE_COMMITMENT[6:] == dsha(witness_root + coinbase.witnesses[0][0])


def test_non_segwit_block_has_no_witness() -> None:
    job = job_for(segwit=False)
    _, block = found_block(job, bytes.fromhex("00000001"), bytes.fromhex("00000002"))
    coinbase = block.txs[0]
    assert not coinbase.has_witness
    assert [(o.value, o.script) for o in coinbase.outputs] == [
        (187_510_407, P2WPKH),
        (125_006_938, P2PKH),
    ]


def test_commitment_before_segwit_activation_gives_no_coinbase_witness() -> None:
    # bcoin offers default_witness_commitment before segwit is active (no rule listed).
    answer = template_answer(segwit=False)
    answer["default_witness_commitment"] = TEMPLATE_COMMITMENT.hex()
    job = JobFactory(settings()).build(parse_template(answer), True)
    assert job.segwit is False
    _, block = found_block(job, bytes.fromhex("00000001"), bytes.fromhex("00000002"))
    assert not block.txs[0].has_witness


def test_block_refuses_a_wrong_extranonce() -> None:
    job = job_for()
    with pytest.raises(CoinbaseError, match="extranonce must be 8 bytes"):
        job.block(b"\x00" * 7, b"\x00" * 80)
