"""Blocks found through `farmpool serve` become money on both real regtest nodes: the tracker
follows them to maturity (or orphans them), splits them by PPLNS and SOLO, and the payout run
lands each tenant's exact share in its address, checked through the node's wallet.

Shares are mined by the e2e miner at difficulty 3e-10 (every share is 1 work unit), so the
PPLNS window of N = 100,000 x the regtest network difficulty (4.66e-10) is ceil(3.05) = 4
shares, and the expected split can be worked out by hand in each test. The tests of a
module run in order and build on each other's chain and ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select

from pool.ledger.models import Block, Credit, Share, Tenant
from tests.conftest import new_postgres_database
from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.money import MoneyPool
from tests.e2e.stratum_client import StratumClient, stratum_prevhash

FEES_PPM = {"acme": 10_000, "globex": 5_000, "initech": 10_000}  # 1 %, 0.5 %, 1 %


class Farm:
    def __init__(self, pool: MoneyPool, server: ServeProcess, elsewhere: Any) -> None:
        self.pool = pool
        self.server = server
        self.elsewhere = elsewhere
        self.clients: dict[str, StratumClient] = {}

    def client(self, tenant: str) -> StratumClient:
        if tenant not in self.clients:
            c = StratumClient(self.server.port("main"), log=self.server.log_tail)
            c.start(f"{tenant}.rig1")
            self.clients[tenant] = c
        return self.clients[tenant]

    def sync(self) -> None:
        """Every miner on a job on the node's tip (after blocks, wherever they came from)."""
        tip = stratum_prevhash(self.pool.node.rpc("getbestblockhash"))
        for c in self.clients.values():
            if c.job is None or c.job.prevhash != tip:
                c.push("mining.notify", timeout=15, predicate=lambda m: m["params"][1] == tip)

    def share(self, tenant: str) -> None:
        c = self.client(tenant)
        reply = c.submit(c.find_accepted())
        assert reply["result"] is True, reply

    def block(self, tenant: str) -> str:
        c = self.client(tenant)
        share = c.find_block()
        reply = c.submit(share)
        assert reply["result"] is True, reply
        assert self.pool.node.rpc("getbestblockhash") == share.block_hash
        self.sync()
        return share.block_hash

    def update(self) -> str:
        run = self.pool.farmpool("blocks", "update")
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def mature_all(self) -> None:
        """100 more blocks, then a tracker pass: every block found so far is mature."""
        self.pool.mine_to_wallet(100)
        self.sync()
        self.update()

    def block_row(self, block_hash: str) -> Any:
        engine = self.pool.engine()
        try:
            with engine.connect() as conn:
                return conn.execute(select(Block).where(Block.hash == block_hash)).one()
        finally:
            engine.dispose()

    def share_bits(self) -> set[int]:
        engine = self.pool.engine()
        try:
            with engine.connect() as conn:
                return set(conn.execute(select(Share.bits).distinct()).scalars())
        finally:
            engine.dispose()

    def credits(self, block_hash: str) -> dict[str | None, tuple[int, int, str]]:
        """tenant -> (amount, fee, status) of a block's credits."""
        engine = self.pool.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(Tenant.name, Credit.amount_sat, Credit.fee_sat, Credit.status)
                    .select_from(Credit)
                    .join(Block, Block.id == Credit.block_id)
                    .outerjoin(Tenant, Tenant.id == Credit.tenant_id)
                    .where(Block.hash == block_hash)
                ).all()
        finally:
            engine.dispose()
        return {name: (amount, fee, status) for name, amount, fee, status in rows}


def expected_split(reward: int, weights: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The split worked out independently: floor shares, then the leftover satoshis one
    each to the largest remainders (ties: the tenant added first, as ids go); fees last."""
    order = ["acme", "globex", "initech"]
    total = sum(weights.values())
    exact = {t: Fraction(reward * w, total) for t, w in weights.items()}
    gross = {t: int(v) for t, v in exact.items()}
    left = reward - sum(gross.values())
    for t in sorted(exact, key=lambda t: (-(exact[t] - gross[t]), order.index(t)))[:left]:
        gross[t] += 1
    out = {}
    for t, g in gross.items():
        net = g * (1_000_000 - FEES_PPM[t]) // 1_000_000
        out[t] = (net, g - net)
    return out


@pytest.fixture(scope="module", params=["bcoin", "svnode"])
def farm(
    request: pytest.FixtureRequest,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Farm]:
    workdir = tmp_path_factory.mktemp(f"payouts-{request.param}")
    payout = {"scheme": "pplns", "pplns_n": 100_000, "fee_percent": 1, "threshold_sat": 546}

    def start(node: Any, elsewhere: Any, url: str) -> Farm:
        pool = MoneyPool.create(node, workdir, url, payout)
        # The pool's coinbase pays the node's wallet: the payouts are paid from the pool's
        # own blocks (and whatever else the regtest wallet holds).
        for tenant in ("globex",):
            fee = pool.farmpool("tenant", "set", tenant, "--fee-percent", "0.5")
            assert fee.returncode == 0, fee.stderr
        config = dict(pool.config)
        config["listeners"] = [fixed_listener()]
        if node.zmq_hashblock:
            config["node"] = {**config["node"], "zmq_hashblock": node.zmq_hashblock}
        server = serve_factory(config)
        return Farm(pool, server, elsewhere)

    if request.param == "bcoin":
        node = request.getfixturevalue("bcoin_node")
        farm = start(node, node, f"sqlite:///{workdir / 'ledger.sqlite3'}")
        yield farm
    else:
        node, elsewhere = request.getfixturevalue("svnode_pair")
        with new_postgres_database(request.getfixturevalue("postgres_server")) as url:
            farm = start(node, elsewhere, url)
            yield farm
    for c in farm.clients.values():
        c.close()


def _payout_lands(farm: Farm, owed: dict[str, int]) -> None:
    before = farm.pool.received()
    run = farm.pool.farmpool("payout", "--execute", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    paid = {p["tenant"]: p["amount_sat"] for b in summary["sent"] for p in b["payments"]}
    assert paid == {t: a for t, a in owed.items() if a}, summary
    farm.pool.mine_to_wallet(1)
    want = {t: before[t] + owed.get(t, 0) for t in before}
    assert farm.pool.wait_received(want) == want
    farm.sync()
    assert all(b["owed_sat"] == 0 for b in farm.pool.balances().values())


def test_pplns_block_matures_and_the_payout_lands_in_the_tenants_addresses(farm: Farm) -> None:
    farm.sync()
    for tenant in ("acme", "globex", "initech", "globex", "initech"):
        farm.share(tenant)
    block = farm.block("acme")
    # The window: 4 shares, newest first: acme (the block), initech, globex, initech.
    assert "1 immature" in farm.update()
    row = farm.block_row(block)
    assert row.status == "immature" and row.scheme == "pplns" and row.confirmations == 1
    # Each share keeps the network target of the job it was mined on (PPLNS scores by it):
    # regtest's never changes, so it is the found block's.
    assert farm.share_bits() == {row.bits}
    want = expected_split(row.reward_sat, {"acme": 1, "initech": 2, "globex": 1})
    credits = farm.credits(block)
    assert {t: (a, f) for t, (a, f, _) in credits.items()} == want
    assert {s for _, _, s in credits.values()} == {"immature"}
    assert sum(a + f for a, f, _ in credits.values()) == row.reward_sat
    balances = farm.pool.balances()
    assert {t: balances[t]["immature_sat"] for t in want} == {t: a for t, (a, _) in want.items()}
    # Not payable before maturity.
    early = farm.pool.farmpool("payout", "--execute", "--json")
    assert early.returncode == 0 and json.loads(early.stdout)["sent"] == [], early.stdout
    farm.pool.mine_to_wallet(99)  # 100 confirmations
    farm.sync()
    assert "1 mature" in farm.update()
    assert farm.block_row(block).status == "mature"
    listed = farm.pool.farmpool("blocks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [b for b in json.loads(listed.stdout) if b["hash"] == block]
    assert (entry["status"], entry["scheme"], entry["tenant"]) == ("mature", "pplns", "acme")
    table = farm.pool.farmpool("blocks", "list")
    assert table.returncode == 0 and block in table.stdout and "mature" in table.stdout
    assert {s for _, _, s in farm.credits(block).values()} == {"mature"}
    # Bitcoin Core's wallet (and the SV node's) spends a coinbase one block later than
    # consensus allows; on a fresh chain the pool's block is the wallet's only mature coin.
    farm.pool.mine_to_wallet(1)
    _payout_lands(farm, {t: a for t, (a, _) in want.items()})


def test_solo_tenant_takes_its_blocks_and_its_shares_count_for_no_one_else(farm: Farm) -> None:
    set_solo = farm.pool.farmpool("tenant", "set", "initech", "--solo")
    assert set_solo.returncode == 0, set_solo.stderr
    farm.share("acme")
    solo_block = farm.block("initech")
    farm.share("initech")
    farm.share("globex")
    farm.share("initech")
    pooled_block = farm.block("acme")
    farm.mature_all()
    solo = farm.block_row(solo_block)
    assert solo.status == "mature" and solo.scheme == "solo"
    net = solo.reward_sat * 990_000 // 1_000_000
    assert farm.credits(solo_block) == {"initech": (net, solo.reward_sat - net, "mature")}
    pooled = farm.block_row(pooled_block)
    # The window skips initech's shares. Newest first: acme (the block), globex, acme (the
    # share before the solo block), then acme's block share of the first test: 4 units.
    assert pooled.scheme == "pplns"
    want = expected_split(pooled.reward_sat, {"acme": 3, "globex": 1})
    assert {t: (a, f) for t, (a, f, _) in farm.credits(pooled_block).items()} == want
    back = farm.pool.farmpool("tenant", "set", "initech", "--pooled")
    assert back.returncode == 0, back.stderr
    # The pool-wide SOLO scheme: the finder's tenant takes the block.
    farm.pool.set_payout(scheme="solo")
    farm.share("acme")
    solo_scheme_block = farm.block("globex")
    farm.mature_all()
    row = farm.block_row(solo_scheme_block)
    net = row.reward_sat * 995_000 // 1_000_000
    assert farm.credits(solo_scheme_block) == {"globex": (net, row.reward_sat - net, "mature")}
    farm.pool.set_payout(scheme="pplns")
    _payout_lands(
        farm,
        {
            "initech": farm.credits(solo_block)["initech"][0],
            "acme": want["acme"][0],
            "globex": want["globex"][0] + net,
        },
    )


def orphan_events(farm: Farm, block: str) -> dict[str | None, int]:
    """The block_orphaned events written for a block: voided satoshis by tenant."""
    from pool.alerts.store import list_events

    engine = farm.pool.engine()
    try:
        events = list_events(engine, None, limit=1000)
    finally:
        engine.dispose()
    found = [e for e in events if e["kind"] == "block_orphaned" and e["subject"] == block]
    assert len(found) == len({e["tenant"] for e in found}), found  # one per tenant
    return {e["tenant"]: e["data"]["voided_sat"] for e in found}


def test_an_orphaned_block_voids_its_credits(farm: Farm) -> None:
    node = farm.pool.node
    farm.share("globex")
    block = farm.block("globex")
    farm.update()
    row = farm.block_row(block)
    assert row.status == "immature"
    credited = farm.credits(block)
    assert farm.pool.balances()["globex"]["immature_sat"] == credited["globex"][0] > 0
    # Another block takes its height: the node drops it and mines two others instead.
    node.rpc("invalidateblock", block)
    farm.pool.mine_to_wallet(2)
    competitor = node.rpc("getblockhash", row.height)
    assert competitor != block
    farm.sync()
    assert "1 orphaned" in farm.update()
    assert farm.block_row(block).status == "orphaned"
    assert {t: s for t, (_, _, s) in farm.credits(block).items()} == {t: "void" for t in credited}
    assert farm.pool.balances()["globex"]["immature_sat"] == 0
    # Each tenant whose credits it voided is told once (an event, written with the move).
    told = orphan_events(farm, block)
    assert told == {t: amount for t, (amount, _, _) in credited.items() if t is not None}
    if node.kind != "svnode":
        return  # bcoin's reconsiderblock does not reconnect a block: no way back to test
    # A reorg back: the competitor is dropped and the pool's block is the tip again; the
    # same credits come back, immature.
    node.rpc("reconsiderblock", block)
    node.rpc("invalidateblock", competitor)
    assert node.rpc("getbestblockhash") == block
    assert "1 immature" in farm.update()
    assert farm.credits(block) == {t: (a, f, "immature") for t, (a, f, _) in credited.items()}
    # And away again (the longer branch wins): orphaned, void.
    node.rpc("reconsiderblock", competitor)
    assert node.rpc("getbestblockhash") != block
    farm.sync()
    assert "1 orphaned" in farm.update()
    assert farm.pool.balances()["globex"]["immature_sat"] == 0
