"""Work from real regtest nodes: templates -> jobs -> CPU-mined blocks the node accepts.

Runs against bcoin (segwit, long-poll) and the Bitcoin SV node pair (no segwit, ZMQ).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest
from regtest_peers import RegtestNode

from pool.chain.addresses import address_to_script
from pool.chain.cpuminer import mine
from pool.chain.job import Job, JobFactory
from pool.chain.rpc import NodeAuthError, NodeRPC, NodeUnreachable, WrongNetwork
from pool.chain.serialize import parse_block
from pool.chain.template import detect_segwit, fetch_template
from pool.config import Settings, settings_from_mapping

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["bcoin", "svnode"])
def node(request: pytest.FixtureRequest) -> RegtestNode:
    if request.param == "bcoin":
        return request.getfixturevalue("bcoin_node")  # type: ignore[no-any-return]
    pool_node, _ = request.getfixturevalue("svnode_pair")
    return pool_node  # type: ignore[no-any-return]


def settings_for(node: RegtestNode, address: str, **node_keys: Any) -> Settings:
    return settings_from_mapping(
        {
            "network": "regtest",
            "node": {"url": node.rpc_url, **node_keys},
            "pool": {"payout_address": address, "tag": "/farmpool-test/"},
        }
    )


def mine_through_pool(node: RegtestNode, settings: Settings) -> tuple[Job, str]:
    """Template -> job -> CPU loop -> assembled block -> submitblock; returns the block hash."""
    rpc = NodeRPC(settings.node.url)
    segwit = detect_segwit(rpc)
    assert segwit is node.segwit
    job = JobFactory(settings.coinbase).build(fetch_template(rpc, segwit), clean=True)
    solution = mine(job, b"\x00\x00\x00\x01", b"\x00\x00\x00\x2a")
    assert solution is not None
    result = rpc.submit_block(solution.block(job).hex())
    assert result.accepted, result.reason
    return job, solution.hash[::-1].hex()


def node_block(node: RegtestNode, block_hash: str) -> Any:
    raw = node.rpc("getblock", block_hash, False)
    return parse_block(bytes.fromhex(raw))


def test_block_mined_through_pool_is_accepted_and_pays_the_pool(node: RegtestNode) -> None:
    address = node.new_address()
    settings = settings_for(node, address)
    height = node.rpc("getblockcount")
    job, block_hash = mine_through_pool(node, settings)
    assert node.rpc("getbestblockhash") == block_hash
    assert node.rpc("getblockcount") == height + 1 == job.height
    block = node_block(node, block_hash)
    coinbase = block.txs[0]
    pool_script = address_to_script(address, "regtest")
    # The node's own wallet agrees on the script of its address.
    assert node.rpc("validateaddress", address)["scriptPubKey"] == pool_script.hex()
    assert coinbase.outputs[0].script == pool_script
    assert sum(o.value for o in coinbase.outputs) == job.template.coinbasevalue
    assert coinbase.outputs[0].value == job.template.coinbasevalue
    assert coinbase.inputs[0][2].endswith(b"/farmpool-test/")
    if node.segwit:
        # bcoin offers the commitment before activation too; the witness only once active.
        assert coinbase.outputs[-1].script == job.template.witness_commitment
        assert coinbase.has_witness is job.template.segwit_active is job.segwit
    else:
        assert job.template.witness_commitment is None
        assert not coinbase.has_witness


def test_bad_block_is_rejected_with_reason(node: RegtestNode) -> None:
    settings = settings_for(node, node.new_address())
    rpc = NodeRPC(settings.node.url)
    job = JobFactory(settings.coinbase).build(fetch_template(rpc, node.segwit), clean=True)
    solution = mine(job, b"\x00\x00\x00\x02", b"\x00\x00\x00\x01")
    assert solution is not None
    block = bytearray(solution.block(job))
    block[36] ^= 0xFF  # corrupt the merkle root: the header no longer matches the txs
    result = rpc.submit_block(bytes(block).hex())
    assert not result.accepted
    assert result.reason and not result.reason.startswith("rejected")


def test_node_errors_are_clear(node: RegtestNode) -> None:
    bad_password = node.rpc_url.replace(f":{node.rpc_password}@", ":wrong-password@")
    with pytest.raises(NodeAuthError, match="refused the RPC credentials"):
        NodeRPC(bad_password, timeout_s=5).call("getblockcount")
    closed = f"http://u:p@127.0.0.1:{_closed_port()}"
    with pytest.raises(NodeUnreachable, match="cannot reach node"):
        NodeRPC(closed, timeout_s=2).call("getblockcount")
    with pytest.raises(WrongNetwork, match="config says network 'main'"):
        NodeRPC(node.rpc_url).check_network("main")
    assert NodeRPC(node.rpc_url).check_network("regtest") == "regtest"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- segwit-spending transactions in the template (bcoin) --------------------------------


def _bcoin_wallet(node: RegtestNode, method: str, path: str, body: dict[str, Any]) -> Any:
    conn = http.client.HTTPConnection(node.rpc_host, node.wallet_rpc_port, timeout=60)
    auth = base64.b64encode(f"x:{node.rpc_password}".encode()).decode()
    conn.request(
        method,
        path,
        json.dumps(body),
        {"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, data
    return json.loads(data)


def test_bcoin_segwit_spend_in_template_after_activation(bcoin_node: RegtestNode) -> None:
    node = bcoin_node
    _bcoin_wallet(node, "PUT", "/wallet/segwit", {"witness": True})
    witness_address = _bcoin_wallet(node, "POST", "/wallet/segwit/address", {"account": "default"})[
        "address"
    ]
    assert witness_address.startswith("rb1q")
    # Past segwit activation (height 432 on regtest) with mature witness coinbases.
    height = node.rpc("getblockcount")
    node.mine(max(0, 440 - height) + 101, witness_address)
    other = node.new_address()
    sends: list[Any] = []

    def send() -> bool:  # bcoin's wallet sees the new coinbases a moment after the chain
        try:
            sends.append(
                _bcoin_wallet(
                    node,
                    "POST",
                    "/wallet/segwit/send",
                    {"outputs": [{"address": other, "value": 100_000_000}]},
                )
            )
        except AssertionError as exc:
            if "Not enough funds" not in str(exc):
                raise
            return False
        return True

    assert node.wait_for(send, timeout=20, interval=0.2), "the segwit wallet has no mature coin"
    [sent] = sends
    spend = bytes.fromhex(sent["tx"])
    assert spend[4:6] == b"\x00\x01", "the wallet's spend carries a witness"

    rpc = NodeRPC(node.rpc_url)
    deadline = time.monotonic() + 30  # bcoin refreshes its template for new txs after ~10 s
    template = fetch_template(rpc, True)
    while not template.transactions and time.monotonic() < deadline:
        time.sleep(0.5)
        template = fetch_template(rpc, True)
    assert [tx.txid[::-1].hex() for tx in template.transactions] == [sent["hash"]]
    assert template.transactions[0].wtxid != template.transactions[0].txid

    settings = settings_for(node, witness_address)
    job = JobFactory(settings.coinbase).build(template, clean=True)
    solution = mine(job, b"\x00\x00\x00\x03", b"\x00\x00\x00\x07")
    assert solution is not None
    result = rpc.submit_block(solution.block(job).hex())
    assert result.accepted, result.reason
    block_hash = solution.hash[::-1].hex()
    assert node.rpc("getbestblockhash") == block_hash
    block = node_block(node, block_hash)
    assert len(block.txs) == 2 and block.txs[1].has_witness
    assert block.txs[1].txid[::-1].hex() == sent["hash"]
    assert block.txs[0].outputs[0].script == address_to_script(witness_address, "regtest")


# --- block change detection through `farmpool work` ----------------------------------------


DETECTION = [
    ("bcoin", "poll", {"longpoll": False, "poll_interval_ms": 500}),
    ("bcoin", "longpoll", {"longpoll": True, "poll_interval_ms": 60000}),
    ("svnode", "poll", {"longpoll": False, "poll_interval_ms": 500}),
    ("svnode", "zmq", {"longpoll": False, "poll_interval_ms": 60000}),
]


@pytest.mark.parametrize(
    ("kind", "mechanism", "node_keys"), DETECTION, ids=[f"{k}-{m}" for k, m, _ in DETECTION]
)
def test_block_from_elsewhere_gives_clean_job_within_1s(
    request: pytest.FixtureRequest,
    work_process: Any,
    kind: str,
    mechanism: str,
    node_keys: dict[str, Any],
) -> None:
    if kind == "bcoin":
        pool_node = miner = request.getfixturevalue("bcoin_node")
    else:
        pool_node, miner = request.getfixturevalue("svnode_pair")
    if mechanism == "zmq":
        node_keys = {**node_keys, "zmq_hashblock": pool_node.zmq_hashblock}
    address = pool_node.new_address()
    config = {
        "network": "regtest",
        "log_level": "debug",
        "node": {"url": pool_node.rpc_url, **node_keys},
        "pool": {"payout_address": address},
    }
    work = work_process(config)
    first = work.next_event()
    assert first["event"] == "job" and first["clean"] is True
    time.sleep(1.0)  # let long-poll / ZMQ subscriptions settle
    for _ in range(2):
        [new_tip] = miner.mine(1, miner.new_address())
        mined_at = time.monotonic()
        event = work.next_event(timeout=10)
        latency = time.monotonic() - mined_at
        assert event["event"] == "job"
        assert event["prevhash"] == new_tip, f"{mechanism}: job on the wrong tip"
        assert event["clean"] is True
        assert latency < 1.0, f"{mechanism}: clean job {latency:.3f} s after the block"


def test_refresh_on_the_same_tip_gives_a_job_that_is_not_clean(
    bcoin_node: RegtestNode, work_process: Any
) -> None:
    config = {
        "network": "regtest",
        "node": {"url": bcoin_node.rpc_url, "refresh_interval_s": 1},
        "pool": {"payout_address": bcoin_node.new_address()},
    }
    work = work_process(config)
    first = work.next_event()
    assert first["clean"] is True
    refreshed = work.next_event(timeout=5)
    assert refreshed["prevhash"] == first["prevhash"]
    assert refreshed["clean"] is False
    assert refreshed["job_id"] != first["job_id"]
