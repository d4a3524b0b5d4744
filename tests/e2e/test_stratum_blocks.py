"""End to end with both real regtest nodes: blocks found through `farmpool serve` and blocks
found elsewhere.

For each node (bcoin: segwit, long-poll; the Bitcoin SV pair: no segwit, ZMQ hashblock) a
server process is started against it and the test miner finds shares that meet the network
target: the node must accept the block and its coinbase must pay the pool. Then a block
mined elsewhere (bcoin: generatetoaddress on the same node; SV: on the second node of the
pair) must reach every connected session as a clean job within 2 s, and a share for the old
job must be stale (21).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from regtest_peers import RegtestNode
from sqlalchemy import select

from pool.chain.addresses import address_to_script
from pool.chain.serialize import parse_block
from pool.ledger.db import make_engine
from pool.ledger.models import Block, Tenant, Worker
from tests.e2e.farmpool_serve import ServeProcess, base_config
from tests.e2e.stratum_client import StratumClient, stratum_prevhash, wait_pushes

SESSIONS = 5
FANOUT_LIMIT_S = 2.0
WITNESS_COMMITMENT = bytes.fromhex("6a24aa21a9ed")


@dataclass
class Pool:
    kind: str
    node: RegtestNode
    elsewhere: RegtestNode
    server: ServeProcess
    address: str
    data_dir: Path

    def connect(self) -> StratumClient:
        return StratumClient(self.server.port("main"), log=self.server.log_tail)


@pytest.fixture(scope="module", params=["bcoin", "svnode"])
def pool(
    request: pytest.FixtureRequest,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pool]:
    if request.param == "bcoin":
        node = elsewhere = request.getfixturevalue("bcoin_node")
    else:
        node, elsewhere = request.getfixturevalue("svnode_pair")
    address = node.new_address()
    workdir = tmp_path_factory.mktemp(f"pool-{request.param}")
    config = base_config(node.rpc_url, address, workdir)
    if node.zmq_hashblock:
        config["node"]["zmq_hashblock"] = node.zmq_hashblock
    config["listeners"] = [
        {
            "name": "main",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": {"start": 3e-10, "min": 1e-11, "max": 16},
            "vardiff": {"enabled": False},
        }
    ]
    # No grace window: the last test must not be rescued by the start difficulty's target.
    config["stratum"] = {"difficulty_grace_s": 0}
    server = serve_factory(config)
    yield Pool(request.param, node, elsewhere, server, address, Path(config["data_dir"]))
    code = server.terminate()
    assert code == 0, f"farmpool serve exit {code} on SIGTERM:\n{server.log_tail()}"


def clean_on(block_hash: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a mining.notify of a clean job on top of `block_hash`."""
    want = stratum_prevhash(block_hash)
    return lambda m: m["params"][8] is True and m["params"][1] == want


@pytest.fixture
def clients(pool: Pool) -> Iterator[list[StratumClient]]:
    opened: list[StratumClient] = []
    yield opened
    for client in opened:
        client.close()


def test_shares_meeting_the_network_target_are_blocks_the_node_accepts(
    pool: Pool, clients: list[StratumClient]
) -> None:
    client = pool.connect()
    clients.append(client)
    client.start("acme.rig1")
    pool_script = address_to_script(pool.address, "regtest")
    for _ in range(2):
        job = client.job
        assert job is not None
        height = int(pool.node.rpc("getblockcount"))
        share = client.find_block()
        reply = client.submit(share)
        assert reply == {"id": reply["id"], "result": True, "error": None}, reply
        # The block went to submitblock before the share's reply.
        best = pool.node.rpc("getbestblockhash")
        assert best == share.block_hash, f"node tip {best}\n{pool.server.log_tail()}"
        assert int(pool.node.rpc("getblockcount")) == height + 1
        block = parse_block(bytes.fromhex(pool.node.rpc("getblock", best, False)))
        coinbase = block.txs[0]
        assert coinbase.outputs[0].script == pool_script
        assert coinbase.outputs[0].value > 0
        script_sig = coinbase.inputs[0][2]
        assert client.extranonce1 + bytes.fromhex(share.extranonce2) in script_sig
        assert script_sig.endswith(b"/farmpool-e2e/")
        commitments = [o for o in coinbase.outputs if o.script.startswith(WITNESS_COMMITMENT)]
        assert len(commitments) == (1 if pool.node.segwit else 0), coinbase.outputs
        # The server moves to its own block: a clean job on the new tip.
        client.push("mining.notify", timeout=5.0, predicate=clean_on(share.block_hash))
        assert client.job is not None and client.job.job_id != job.job_id
    # The blocks are in the ledger, with the node's answer, before the shares' replies.
    engine = make_engine(pool.server.config["database_url"])
    try:
        with engine.connect() as conn:
            records = conn.execute(
                select(Tenant.name, Worker.name, Block.accepted, Block.hash, Block.reward_sat)
                .join(Tenant, Block.tenant_id == Tenant.id)
                .join(Worker, Block.worker_id == Worker.id)
                .order_by(Block.id)
            ).all()
    finally:
        engine.dispose()
    ours = [r for r in records if r[0] == "acme" and r[1] == "rig1"]
    assert len(ours) >= 2 and all(r[2] for r in ours[-2:]), records
    assert all(r[4] > 0 for r in ours)


def test_block_from_elsewhere_gives_every_session_a_clean_job_within_2s(
    pool: Pool, clients: list[StratumClient]
) -> None:
    for i in range(SESSIONS):
        client = pool.connect()
        clients.append(client)
        client.start(f"globex.rig{i}")
    tip = clients[0].job
    assert tip is not None
    assert all(c.job is not None and c.job.job_id == tip.job_id for c in clients)
    stale = [c.find_accepted() for c in clients]
    # The other node must build on the pool node's tip (blocks found through the pool reach
    # it over P2P), else its block only competes at the same height and is not the tip.
    best = pool.node.rpc("getbestblockhash")
    assert pool.elsewhere.wait_for(
        lambda: pool.elsewhere.rpc("getbestblockhash") == best, timeout=15
    ), "the other node did not get the pool node's tip"
    address = pool.elsewhere.new_address()
    [new_tip] = pool.elsewhere.mine(1, address)
    mined_at = time.monotonic()
    found = wait_pushes(clients, "mining.notify", clean_on(new_tip), mined_at + FANOUT_LIMIT_S)
    late = [i for i in range(SESSIONS) if i not in found]
    assert not late, (
        f"sessions {late} got no clean job on {new_tip} within {FANOUT_LIMIT_S} s; "
        f"events: {pool.server.jobs()[-3:]}\n{pool.server.log_tail()}"
    )
    latencies = [at - mined_at for _, at in found.values()]
    assert max(latencies) < FANOUT_LIMIT_S, latencies
    # Every session got the same job (the same bytes).
    assert len({json.dumps(message) for message, _ in found.values()}) == 1
    event = pool.server.wait_event(
        lambda e: e.get("event") == "job" and e.get("clean") is True and e["prevhash"] == new_tip
    )
    assert event["sessions"] >= SESSIONS
    for key in ("job_id", "height", "tip_detected_at", "elapsed_ms", "sent_at"):
        assert event.get(key) is not None, event
    assert event["tip_detected_at"] <= event["sent_at"]
    assert event["job_id"] == next(iter(found.values()))[0]["params"][0]
    for client, share in zip(clients, stale, strict=True):
        reply = client.submit(share)
        assert reply["error"] is not None and reply["error"][0] == 21, reply
        reply = client.submit(client.find_accepted())
        assert reply["result"] is True, reply


def test_block_hash_below_the_session_difficulty_is_still_a_block(
    pool: Pool, clients: list[StratumClient]
) -> None:
    client = pool.connect()
    clients.append(client)
    client.start("acme.rig1", "x,d=1")
    assert client.difficulty == 1.0
    share = client.find_block()
    if share.value <= client.share_target():
        raise RuntimeError("precondition: the block hash also meets difficulty 1")
    reply = client.submit(share)
    assert reply["result"] is True, f"a valid block was rejected: {reply}"
    assert pool.node.rpc("getbestblockhash") == share.block_hash
