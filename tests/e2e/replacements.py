"""What an operator, a miner or a third party can do to a payout transaction on a real regtest
node: bump its fee (the same inputs and tenant outputs, less change, signed again by the
wallet), or malleate it (its signatures pushed another way: another txid, the same inputs
and outputs, no key needed); and mine a block that holds such a transaction instead
of the original.

Neither node replaces a transaction in its mempool (bcoin 1.0.2 refuses a double spend and
has no bumpfee; the SV node has no RBF), so the replacement reaches the chain the way a
miner who took it would put it there: in a block built here with the pool's own template,
coinbase and CPU miner (pool/chain), submitted with submitblock. The node then drops the
original from its mempool, and its wallet sees the replacement confirmed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bitcoinrpc.authproxy import JSONRPCException
from regtest_peers import RegtestNode

from pool.chain.addresses import address_to_script
from pool.chain.coinbase import witness_commitment_script
from pool.chain.cpuminer import mine
from pool.chain.job import JobFactory
from pool.chain.serialize import parse_tx, push_data, varint
from pool.chain.template import TemplateTx, parse_template, template_request
from pool.config import CoinbaseSettings, PayoutOutput
from pool.hashing import hash_to_hex, merkle_root


def txid_of(raw_hex: str) -> str:
    return hash_to_hex(parse_tx(bytes.fromhex(raw_hex)).txid)


def bump_fee(node: RegtestNode, raw_hex: str, tenant_scripts: set[bytes], extra_sat: int) -> str:
    """The payout with `extra_sat` more fee taken from its change (every other output the
    same), signed again by the node's wallet: what bumpfee does."""
    decoded = node.rpc("decoderawtransaction", raw_hex)
    inputs = [{"txid": i["txid"], "vout": i["vout"]} for i in decoded["vin"]]
    outputs: dict[str, Decimal] = {}
    bumped = False
    for out in decoded["vout"]:
        address = out["scriptPubKey"]["addresses"][0]
        value = Decimal(str(out["value"]))
        if bytes.fromhex(out["scriptPubKey"]["hex"]) not in tenant_scripts and not bumped:
            value -= Decimal(extra_sat) / 100_000_000
            bumped = True
        outputs[address] = value
    assert bumped, "the payout has no change output to take the fee from"
    unsigned = node.rpc("createrawtransaction", inputs, outputs)
    if node.kind == "bcoin":
        signed = _sign_bcoin(node, unsigned, decoded["vin"])
    else:
        signed = node.wallet_rpc("signrawtransaction", unsigned)
    assert signed.get("complete"), signed
    return str(signed["hex"])


def _sign_bcoin(node: RegtestNode, unsigned: str, vin: list[dict[str, Any]]) -> Any:
    """bcoin's wallet cannot sign a raw transaction: its node can, given the coins and keys
    (the wallet's own, from dumpprivkey)."""
    prevouts, keys = [], []
    for i in vin:
        funding = node.rpc(
            "decoderawtransaction", node.wallet_rpc("gettransaction", i["txid"])["hex"]
        )
        out = funding["vout"][i["vout"]]
        prevouts.append(
            {
                "txid": i["txid"],
                "vout": i["vout"],
                "scriptPubKey": out["scriptPubKey"]["hex"],
                "amount": out["value"],
            }
        )
        keys.append(node.wallet_rpc("dumpprivkey", out["scriptPubKey"]["addresses"][0]))
    return node.rpc("signrawtransaction", unsigned, prevouts, keys)


def malleate(raw_hex: str) -> str:
    """The same transaction with every input's signature pushed by OP_PUSHDATA1 instead of a
    direct push: the classic scriptSig malleation, valid in a block on both nodes (a minimal
    push is only their mempool's policy; the SV node enforces low S in blocks, so S cannot be
    flipped there), another txid, the same inputs and outputs, no key needed."""
    tx = parse_tx(bytes.fromhex(raw_hex))
    assert not tx.has_witness, "a witness input cannot be malleated this way"
    ins = b""
    for prev, vout, script, sequence in tx.inputs:
        sig, pubkey = _pushes(script)
        new_script = b"\x4c" + bytes([len(sig)]) + sig + push_data(pubkey)
        ins += prev + vout.to_bytes(4, "little")
        ins += varint(len(new_script)) + new_script + sequence.to_bytes(4, "little")
    outs = b"".join(
        o.value.to_bytes(8, "little") + varint(len(o.script)) + o.script for o in tx.outputs
    )
    raw = (
        tx.version.to_bytes(4, "little")
        + varint(len(tx.inputs))
        + ins
        + varint(len(tx.outputs))
        + outs
        + tx.locktime.to_bytes(4, "little")
    )
    return raw.hex()


def _pushes(script: bytes) -> list[bytes]:
    items, pos = [], 0
    while pos < len(script):
        size = script[pos]
        assert 1 <= size <= 75, f"a P2PKH scriptSig has direct pushes only, got {script.hex()}"
        items.append(script[pos + 1 : pos + 1 + size])
        pos += 1 + size
    assert len(items) == 2, f"not a P2PKH scriptSig: {script.hex()}"
    return items


def _with_ancestors(node: RegtestNode, raws: list[str]) -> list[str]:
    """The transactions, each after the unconfirmed ones (in the node's mempool) it spends."""
    out: list[str] = []

    def add(raw_hex: str) -> None:
        if raw_hex in out:
            return
        for prev, _, _, _ in parse_tx(bytes.fromhex(raw_hex)).inputs:
            parent = hash_to_hex(prev)
            if parent in node.rpc("getrawmempool"):
                add(str(node.rpc("getrawtransaction", parent)))
        out.append(raw_hex)

    for raw_hex in raws:
        add(raw_hex)
    return out


def mine_with(node: RegtestNode, raws: list[str]) -> str:
    """Mine a block on the node's tip holding these transactions (after the unconfirmed ones
    they spend) and the coinbase, which forgoes their fees; returns its hash once the node's
    wallet has seen it."""
    template = parse_template(node.rpc("getblocktemplate", template_request(node.segwit)))
    txs = []
    for raw_hex in _with_ancestors(node, raws):
        tx = parse_tx(bytes.fromhex(raw_hex))
        txs.append(TemplateTx(tx.raw, tx.txid, tx.wtxid, 0))
    commitment = template.witness_commitment
    if commitment is not None:
        commitment = witness_commitment_script(merkle_root([b"\x00" * 32] + [t.wtxid for t in txs]))
    template = replace(
        template,
        transactions=tuple(txs),
        witness_commitment=commitment,
        coinbasevalue=template.coinbasevalue - template.fees,
    )
    address = node.new_address()
    settings = CoinbaseSettings(
        outputs=(PayoutOutput(address, address_to_script(address, "regtest"), 100),)
    )
    job = JobFactory(settings).build(template, True)
    solution = mine(job, b"\x00" * 4, b"\x00" * 4)
    assert solution is not None
    answer = node.rpc("submitblock", solution.block(job).hex())
    assert answer is None, f"the node refused the block: {answer}"
    block_hash = hash_to_hex(solution.hash)
    assert node.rpc("getbestblockhash") == block_hash
    last = txid_of(raws[-1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # bcoin's wallet follows the chain a little late
        try:
            if node.wallet_rpc("gettransaction", last).get("blockhash") == block_hash:
                return block_hash
        except JSONRPCException:  # not known to it yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"the node's wallet did not see {last} in block {block_hash}")
