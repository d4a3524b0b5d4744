"""The hashing core against real blocks and published Stratum sessions (../shared/vectors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pool.chain.coinbase import witness_commitment_script
from pool.chain.serialize import parse_block, parse_tx
from pool.hashing import (
    ACCELERATOR,
    BIP320_VERSION_MASK,
    NOTIFY_FIELDS,
    HeaderWork,
    ShareError,
    bits_to_target,
    coinbase_merkle_branch,
    fold_branch,
    hash_to_hex,
    merkle_root,
    sha256d,
    target_to_difficulty,
)
from pool.sharecheck import check_share, parse_notify, parse_submit
from pool.stratum.judge import judge
from pool.stratum.judge import parse_submit as parse_submit_params

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
BLOCKS: list[dict[str, Any]] = json.loads((VECTORS / "blocks.json").read_text())
EXAMPLES: list[dict[str, Any]] = json.loads((VECTORS / "stratum_examples.json").read_text())


def block_id(vector: dict[str, Any]) -> str:
    return f"{vector['network']}-{vector['height']}"


@pytest.fixture(params=[True, False], ids=["accelerated", "pure-python"])
def accelerated(request: pytest.FixtureRequest) -> bool:
    if request.param and ACCELERATOR is None:
        pytest.fail("the C accelerator is not built (scripts/bootstrap builds it)")
    return bool(request.param)


def work_of(notify: dict[str, Any], accelerated: bool = True) -> HeaderWork:
    return HeaderWork.from_notify([notify[f] for f in NOTIFY_FIELDS], accelerated=accelerated)


@pytest.fixture(scope="module", params=BLOCKS, ids=block_id)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)


@pytest.fixture(scope="module")
def block(vector: dict[str, Any]) -> Any:
    return parse_block((VECTORS / vector["file"]).read_bytes())


def test_synthetic_job_rebuilds_the_real_block_hash(
    vector: dict[str, Any], accelerated: bool
) -> None:
    job, submit = vector["synthetic_stratum"]["notify"], vector["synthetic_stratum"]["submit"]
    work = work_of(job, accelerated)
    assert work.accelerated is accelerated
    version = work.rolled_version(int(submit["version_bits"], 16), BIP320_VERSION_MASK)
    args = (
        bytes.fromhex(submit["extranonce1"]),
        bytes.fromhex(submit["extranonce2"]),
        int(submit["ntime"], 16),
        int(submit["nonce"], 16),
        version,
    )
    digest, value = work.hash_share(*args)
    assert hash_to_hex(digest) == vector["hash"]
    assert value <= work.network_target == int(vector["target"], 16)
    explained = work.explain_share(*args)
    assert explained.header.hex() == vector["header_hex"]
    assert hash_to_hex(explained.merkle_root) == vector["merkle_root"]
    assert explained.coinbase is not None
    assert explained.coinbase.hex() == vector["coinbase_hex_stripped"]
    # The cached merkle root (repeated extranonce2) gives the same header hash.
    assert work.hash_share(*args) == (digest, value)
    # The server's path from the submit's params (parse, judge) agrees.
    params = ["w", "job", submit["extranonce2"], submit["ntime"], submit["nonce"]]
    if version != work.version:
        params.append(submit["version_bits"])
    parsed = parse_submit_params(params, len(bytes.fromhex(submit["extranonce2"])))
    for target in (value, value - 1):
        verdict = judge(
            work,
            bytes.fromhex(submit["extranonce1"]),
            parsed,
            version_mask=BIP320_VERSION_MASK,
            difficulty=1.0,
            share_target=target,
            grace=None,
            ntime_range=(0, 0xFFFFFFFF),
        )
        assert (verdict.digest, verdict.value, verdict.version) == (digest, value, version)
        # A real block: accepted even below the session's target, never thrown away, and
        # credited at the session's difficulty or its own, whichever is lower.
        assert verdict.accepted and verdict.is_block
        assert verdict.credited == min(1.0, target_to_difficulty(value))


def test_header_fields_match_the_block(vector: dict[str, Any], block: Any) -> None:
    assert block.header.hex() == vector["header_hex"]
    assert hash_to_hex(sha256d(block.header)) == vector["hash"]
    assert len(block.txs) == vector["n_tx"]
    assert bits_to_target(int(vector["bits"], 16)) == int(vector["target"], 16)


def test_coinbase_txid_folds_through_branch_to_root(vector: dict[str, Any], block: Any) -> None:
    coinbase = block.txs[0]
    assert coinbase.stripped.hex() == vector["coinbase_hex_stripped"]
    assert coinbase.raw.hex() == vector["coinbase_hex_full"]
    assert hash_to_hex(coinbase.txid) == vector["coinbase_txid"]
    branch = coinbase_merkle_branch([tx.txid for tx in block.txs[1:]])
    assert [h.hex() for h in branch] == vector["coinbase_merkle_branch"]
    root = fold_branch(coinbase.txid, branch)
    assert hash_to_hex(root) == vector["merkle_root"]
    assert root == merkle_root([tx.txid for tx in block.txs]) == block.header[36:68]


def test_witness_commitment(vector: dict[str, Any], block: Any) -> None:
    commitment = vector["witness_commitment"]
    coinbase = block.txs[0]
    if commitment is None:
        assert not coinbase.has_witness
        assert not any(o.script.startswith(bytes.fromhex("6a24aa21a9ed")) for o in coinbase.outputs)
        return
    # The coinbase's wtxid counts as zero in the witness tree (BIP141).
    wtxids = [b"\x00" * 32] + [tx.wtxid for tx in block.txs[1:]]
    root = merkle_root(wtxids)
    assert root.hex() == commitment["witness_root"]
    reserved = coinbase.witnesses[0][0]
    assert reserved.hex() == commitment["reserved"]
    script = witness_commitment_script(root, reserved)
    assert script.hex() == commitment["script"]
    assert coinbase.outputs[commitment["output_index"]].script == script
    assert hash_to_hex(coinbase.wtxid) == vector["coinbase_wtxid"]


def test_version_rolled_block_702861() -> None:
    vector = next(v for v in BLOCKS if v["height"] == 702861)
    work = work_of(vector["synthetic_stratum"]["notify"])
    submit = vector["synthetic_stratum"]["submit"]
    bits = int(submit["version_bits"], 16)
    version = work.rolled_version(bits, BIP320_VERSION_MASK)
    assert f"{version:08x}" == vector["version"] == "3fffe004"
    # Without the rolled bits the header is a different one, and not the block.
    plain = work.explain_share(
        bytes.fromhex(submit["extranonce1"]),
        bytes.fromhex(submit["extranonce2"]),
        int(submit["ntime"], 16),
        int(submit["nonce"], 16),
        work.version,
    )
    assert plain.hash_hex != vector["hash"]
    # Bits outside a narrower negotiated mask are an invalid share.
    with pytest.raises(ShareError, match="outside the negotiated mask"):
        work.rolled_version(bits, 0x00FFE000)


def test_slush_example_share_difficulty() -> None:
    example = EXAMPLES[0]
    result = check_share(
        parse_notify(example["notify"]),
        bytes.fromhex(example["extranonce1"]),
        parse_submit(example["submit"], example["extranonce2_size"]),
        difficulty=example["stated"]["min_share_diff"],
        version_mask=BIP320_VERSION_MASK,
    )
    assert result["hash"] == "000000002076870fe65a2b6eeed84fa892c0db924f1482243a6247d931dcab32"
    assert result["share_difficulty"] == pytest.approx(7.8857809)
    assert result["verdict"] == "accepted" and result["reason"] is None
    assert result["meets_difficulty"] is True
    # The network difficulty of this testnet job is 5.99: the share is a block. At pool
    # difficulty 8 it is below the session's target, and still accepted, as the server does
    # (a block is never thrown away).
    assert result["meets_network"] is True
    block = check_share(
        parse_notify(example["notify"]),
        bytes.fromhex(example["extranonce1"]),
        parse_submit(example["submit"], 4),
        difficulty=64,
        version_mask=BIP320_VERSION_MASK,
    )
    assert (block["verdict"], block["reason"], block["meets_difficulty"]) == (
        "accepted",
        None,
        False,
    )
    # Another nonce is no block, and low at difficulty 1: rejected with the reason.
    submit = json.loads(example["submit"])
    submit["params"][4] = "00000000"
    low = check_share(
        parse_notify(example["notify"]),
        bytes.fromhex(example["extranonce1"]),
        parse_submit(json.dumps(submit), 4),
        difficulty=1,
        version_mask=BIP320_VERSION_MASK,
    )
    assert low["verdict"] == "rejected" and low["reason"].startswith("Low difficulty share")


@pytest.mark.parametrize("example", EXAMPLES[1:], ids=lambda e: e["name"][:30])
def test_stated_merkle_roots_and_header_prefix(example: dict[str, Any], accelerated: bool) -> None:
    notify = parse_notify(example["notify"])
    work = HeaderWork(
        notify.coinb1,
        notify.coinb2,
        notify.branch,
        notify.version,
        notify.prevhash,
        notify.nbits,
        accelerated=accelerated,
    )
    en1 = bytes.fromhex(example["extranonce1"])
    en2 = bytes.fromhex(example["extranonce2"])
    assert len(en2) == example["extranonce2_size"]
    root = work.merkle_root(en1, en2)
    stated = example["stated"]
    # Stratum examples state the root in header (internal) byte order.
    assert root.hex() == stated["merkle_root"]
    if "header_prefix" in stated:
        header = work.header(root, notify.ntime, int(example["nonce"], 16), notify.version)
        assert header[:76].hex() == stated["header_prefix"]


def test_share_check_cli_json_on_first_example() -> None:
    example = EXAMPLES[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pool",
            "share-check",
            "--notify",
            example["notify"],
            "--extranonce1",
            example["extranonce1"],
            "--extranonce2-size",
            "4",
            "--submit",
            example["submit"],
            "--difficulty",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["hash"] == "000000002076870fe65a2b6eeed84fa892c0db924f1482243a6247d931dcab32"
    assert result["verdict"] == "accepted"
    assert result["reason"] is None
    assert len(bytes.fromhex(result["header"])) == 80
    assert result["meets_difficulty"] is True
    assert isinstance(result["meets_network"], bool)
    value = int(result["hash"], 16)
    assert target_to_difficulty(value) == pytest.approx(result["share_difficulty"])
    parse_tx(bytes.fromhex(result["coinbase"]))  # the coinbase it shows is a real transaction
