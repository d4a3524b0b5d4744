"""Smoke tests for the regtest peer machinery (scripts/regtest_peers.py).

They prove that the real nodes install, start, answer what the pool needs and stop cleanly:
bcoin on the segwit path, the Bitcoin SV pair on the non-segwit path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import regtest_peers
from bitcoinrpc.authproxy import JSONRPCException
from regtest_peers import RegtestNode

WITNESS_COMMITMENT_PREFIX = "6a24aa21a9ed"  # OP_RETURN PUSH36 0xaa21a9ed


def _process_gone(node: RegtestNode) -> bool:
    assert node.process is not None
    if node.process.poll() is None:
        return False
    try:
        os.kill(node.process.pid, 0)
    except ProcessLookupError:
        return True
    return False


# --------------------------------------------------------------------------------------------
# bcoin (segwit)
# --------------------------------------------------------------------------------------------


@pytest.mark.bcoin
def test_bcoin_template_has_segwit_commitment(bcoin_node: RegtestNode) -> None:
    assert bcoin_node.kind == "bcoin"
    assert bcoin_node.segwit is True
    assert bcoin_node.zmq_hashblock is None
    assert bcoin_node.rpc_url.startswith("http://")
    assert f"@127.0.0.1:{bcoin_node.rpc_port}" in bcoin_node.rpc_url

    template = bcoin_node.rpc("getblocktemplate", {"rules": ["segwit"]})
    assert template["height"] == bcoin_node.rpc("getblockcount") + 1
    assert template["default_witness_commitment"].startswith(WITNESS_COMMITMENT_PREFIX)
    assert template["bits"] == "207fffff"
    assert "longpollid" in template
    # The response's own "rules" list is [] until segwit activates (regtest height 432).
    assert isinstance(template["rules"], list)
    # bcoin adds the commitment only when the request names the segwit rule; once segwit is
    # active (regtest height 432: the session's other tests may have mined past it) it
    # refuses a request without the rule.
    if template["height"] < 432:
        assert "default_witness_commitment" not in bcoin_node.rpc("getblocktemplate", {})
    else:
        with pytest.raises(JSONRPCException, match="must support segwit"):
            bcoin_node.rpc("getblocktemplate", {})


@pytest.mark.bcoin
def test_bcoin_new_address_and_mine(bcoin_node: RegtestNode) -> None:
    addr = bcoin_node.new_address()
    assert addr.startswith(("R", "rb1")), addr
    assert bcoin_node.rpc("validateaddress", addr)["isvalid"] is True
    assert bcoin_node.new_address() != addr  # fresh each time

    height = bcoin_node.rpc("getblockcount")
    hashes = bcoin_node.mine(1, addr)
    assert len(hashes) == 1
    assert bcoin_node.rpc("getblockcount") == height + 1
    assert bcoin_node.rpc("getbestblockhash") == hashes[0]

    # Default address comes from the node's wallet too.
    assert len(bcoin_node.mine(2)) == 2
    assert bcoin_node.rpc("getblockcount") == height + 3


# --------------------------------------------------------------------------------------------
# Bitcoin SV pair (no segwit)
# --------------------------------------------------------------------------------------------


@pytest.mark.svnode
def test_svnode_template_without_segwit(svnode_pair: tuple[RegtestNode, RegtestNode]) -> None:
    pool_node, elsewhere = svnode_pair
    assert pool_node.kind == elsewhere.kind == "svnode"
    assert pool_node.segwit is False
    assert pool_node.zmq_hashblock is not None
    assert pool_node.zmq_hashblock.startswith("tcp://127.0.0.1:")
    assert elsewhere.zmq_hashblock is None

    height = pool_node.rpc("getblockcount")
    for params in ({}, {"rules": []}):
        template = pool_node.rpc("getblocktemplate", params)
        assert template["height"] == height + 1
        assert "default_witness_commitment" not in template
        assert "segwit" not in template.get("rules", [])
        assert template["bits"] == "207fffff"
    # No-argument form works too.
    assert "default_witness_commitment" not in pool_node.rpc("getblocktemplate")

    notifications = pool_node.rpc("activezmqnotifications")
    assert {"notification": "pubhashblock", "address": pool_node.zmq_hashblock} in notifications


@pytest.mark.svnode
def test_svnode_block_mined_elsewhere_propagates(
    svnode_pair: tuple[RegtestNode, RegtestNode],
) -> None:
    pool_node, elsewhere = svnode_pair
    addr = elsewhere.new_address()
    assert addr[0] in "mn2", addr  # Core-style regtest base58
    (block_hash,) = elsewhere.mine(1, addr)
    assert pool_node.wait_for(lambda: pool_node.rpc("getbestblockhash") == block_hash, 10.0)
    assert pool_node.rpc("getblockcount") == elsewhere.rpc("getblockcount")


@pytest.mark.svnode
def test_svnode_zmq_hashblock_published(svnode_pair: tuple[RegtestNode, RegtestNode]) -> None:
    zmq = pytest.importorskip("zmq")
    pool_node, elsewhere = svnode_pair
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        sub.setsockopt(zmq.RCVTIMEO, 10_000)
        sub.connect(pool_node.zmq_hashblock)
        time.sleep(0.5)  # slow-joiner: let the subscription reach the publisher
        (block_hash,) = elsewhere.mine(1)
        topic, body, _seq = sub.recv_multipart()
        assert topic == b"hashblock"
        assert body.hex() == block_hash
    finally:
        sub.close(linger=0)
        ctx.term()


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------


@pytest.mark.bcoin
def test_bcoin_stops_cleanly(tmp_path: Path) -> None:
    with regtest_peers.start_bcoin(tmp_path) as node:
        assert node.running
        assert (tmp_path / "bcoin.log").exists()
    assert _process_gone(node)
    node.stop()  # idempotent
    assert _process_gone(node)


@pytest.mark.svnode
def test_svnode_pair_stops_cleanly(tmp_path: Path) -> None:
    pool_node, elsewhere = regtest_peers.start_svnode_pair(tmp_path)
    assert pool_node.running and elsewhere.running
    pool_node.stop()
    elsewhere.stop()
    assert _process_gone(pool_node)
    assert _process_gone(elsewhere)
    pool_node.stop()  # idempotent
    assert "Shutdown: done" in pool_node.log_tail()  # graceful, not killed
