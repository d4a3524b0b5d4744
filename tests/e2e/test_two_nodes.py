"""Two stratum nodes, one PostgreSQL ledger (architecture invariant 6): each node leases its
own extranonce1 prefix in the database, both nodes' shares reach the same ledger, and one
block's PPLNS split and payout cover the miners of both nodes.

Two `farmpool serve` processes (node names north-1 and north-2) share the config but for the
node name and data directory, against the session's bcoin node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from regtest_peers import RegtestNode
from sqlalchemy import insert, select

from pool.ledger.models import Node, Share
from tests.conftest import new_postgres_database
from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.money import MoneyPool
from tests.e2e.stratum_client import StratumClient, stratum_prevhash


@pytest.fixture(scope="module")
def nodes(
    bcoin_node: RegtestNode,
    postgres_server: str,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MoneyPool, list[ServeProcess]]]:
    workdir = tmp_path_factory.mktemp("two-nodes")
    with new_postgres_database(postgres_server) as url:
        pool = MoneyPool.create(
            bcoin_node,
            workdir,
            url,
            {"scheme": "pplns", "pplns_n": 10**9, "fee_percent": 1, "threshold_sat": 546},
        )
        servers = []
        for name in ("north-1", "north-2"):
            config: dict[str, Any] = json.loads(json.dumps(pool.config))
            config["node_name"] = name
            config["data_dir"] = str(workdir / name)
            config["listeners"] = [fixed_listener()]
            servers.append(serve_factory(config))
        yield pool, servers
        for server in servers:
            assert server.terminate() == 0, server.log_tail()


def test_two_nodes_lease_distinct_prefixes_and_share_one_ledger_and_payout(
    nodes: tuple[MoneyPool, list[ServeProcess]],
) -> None:
    pool, servers = nodes
    engine = pool.engine()
    try:
        with engine.connect() as conn:
            prefixes = dict(conn.execute(select(Node.name, Node.extranonce_prefix)).all())
        assert set(prefixes) == {"north-1", "north-2"}
        assert prefixes["north-1"] != prefixes["north-2"]
        clients = []
        for server, (name, worker) in zip(
            servers, (("north-1", "acme.rig1"), ("north-2", "globex.rig1")), strict=True
        ):
            client = StratumClient(server.port("main"), log=server.log_tail)
            client.start(worker)
            # Every extranonce1 this node hands out begins with its leased byte.
            assert client.extranonce1[0] == prefixes[name], (client.extranonce1, prefixes)
            clients.append(client)
        acme, globex = clients
        for client in (acme, globex, globex):
            reply = client.submit(client.find_accepted())
            assert reply["result"] is True, reply
        block = acme.find_block()
        assert acme.submit(block)["result"] is True
        assert pool.node.rpc("getbestblockhash") == block.block_hash
        tip = stratum_prevhash(block.block_hash)
        globex.push("mining.notify", timeout=15, predicate=lambda m: m["params"][1] == tip)
        with engine.connect() as conn:
            by_node = conn.execute(
                select(Node.name, Share.tenant_id).join(Node, Node.id == Share.node_id)
            ).all()
        assert sorted({(n, t) for n, t in by_node}) == [("north-1", 1), ("north-2", 2)]
        # The block matures; its PPLNS window (all four shares) pays the miners of both nodes.
        pool.mine_to_wallet(101)
        update = pool.farmpool("blocks", "update")
        assert update.returncode == 0 and "1 mature" in update.stdout, update.stdout
        owed = {name: b["owed_sat"] for name, b in pool.balances().items() if b["owed_sat"]}
        # acme 2 of 4 units (its share and the block's), globex 2: 50 BTC x 99 % / 2 each.
        assert set(owed) == {"acme", "globex"} and owed["acme"] == owed["globex"] > 0
        before = pool.received()
        run = pool.farmpool("payout", "--execute")
        assert run.returncode == 0, run.stdout + run.stderr
        pool.mine_to_wallet(1)
        want = {t: before[t] + owed.get(t, 0) for t in before}
        assert pool.wait_received(want) == want
        for client in clients:
            client.close()
    finally:
        engine.dispose()


def test_a_prefix_is_kept_across_restarts_and_released_only_on_request(
    nodes: tuple[MoneyPool, list[ServeProcess]],
) -> None:
    from pool.ledger.leases import LeaseError, lease_prefix, release_prefix

    pool, _ = nodes
    engine = pool.engine()
    try:
        with engine.connect() as conn:
            ids = dict(conn.execute(select(Node.name, Node.id)).all())
            held = dict(conn.execute(select(Node.name, Node.extranonce_prefix)).all())
        # Leasing again (a restart) gives the same byte.
        assert lease_prefix(engine, ids["north-1"]) == held["north-1"]
        with pytest.raises(LeaseError, match="no node with id"):
            lease_prefix(engine, 999_999)
        with pytest.raises(LeaseError, match="no node named"):
            release_prefix(engine, "south-9")
        # A third node takes the lowest free byte; released, the byte is free again.
        with engine.begin() as conn:
            conn.execute(insert(Node), [{"name": "south-9", "created_at": datetime.now(UTC)}])
            third = conn.execute(select(Node.id).where(Node.name == "south-9")).scalar_one()
        byte = lease_prefix(engine, third)
        assert byte not in held.values() and byte == min(set(range(256)) - set(held.values()))
        run = pool.farmpool("node", "release", "south-9")
        assert run.returncode == 0 and f"prefix {byte:02x} released" in run.stdout, run.stderr
        run = pool.farmpool("node", "release", "south-9")
        assert run.returncode == 0 and "held no extranonce1 prefix" in run.stdout
        run = pool.farmpool("node", "release", "nowhere")
        assert run.returncode == 2 and "no node named 'nowhere'" in run.stderr
    finally:
        engine.dispose()
