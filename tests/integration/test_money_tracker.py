"""The block tracker, the reward windows and PPS crediting on real SQLite and PostgreSQL,
against the chain of a real bcoin regtest node.

The shares are written straight into the ledger with chosen times and work, and the blocks
are real blocks of the node's chain recorded as if the pool had found them, so that each
split can be worked out by hand (in the comments) and compared to the satoshi.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from regtest_peers import RegtestNode
from sqlalchemy import Engine, insert, select

from pool.accounting.chainview import ChainView
from pool.accounting.pps import accrue_pps
from pool.accounting.schemes import pplns_window_work
from pool.accounting.tracker import track_blocks
from pool.chain.rpc import NodeRPC
from pool.config import DEFAULT_CONFIG, PayoutSettings
from pool.ledger import db
from pool.ledger.compaction import compact
from pool.ledger.models import Block, Contract, Credit, Node, Share, Site, Tenant, Worker

ACME, GLOBEX, INITECH = 1, 2, 3
NODE_ID = 1
REGTEST_BITS = 0x207FFFFF
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seq = 0
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(insert(Node), [{"id": NODE_ID, "name": "n1", "created_at": now}])
            conn.execute(insert(Site), [{"id": 1, "name": "north", "created_at": now}])
            conn.execute(
                insert(Tenant),
                [
                    {"id": i, "name": n, "created_at": now, "active": True}
                    for i, n in ((ACME, "acme"), (GLOBEX, "globex"), (INITECH, "initech"))
                ],
            )
            conn.execute(
                insert(Worker),
                [{"id": i, "tenant_id": i, "name": "rig", "created_at": now} for i in (1, 2, 3)],
            )

    def shares(self, *rows: tuple[int, int, datetime, int], bits: int | None = None) -> None:
        """(tenant, work, time, height) each; `bits`: the network target they were mined at
        (the column's default, 0 -- not known -- when None)."""
        values = []
        for tenant, work, when, height in rows:
            self.seq += 1
            values.append(
                {
                    "id": NODE_ID << 48 | self.seq,
                    "hash": self.seq.to_bytes(32, "big"),
                    "node_id": NODE_ID,
                    "worker_id": tenant,
                    "tenant_id": tenant,
                    "site_id": 1,
                    "job_id": "1",
                    "height": height,
                    "difficulty": work / 65536,
                    "share_difficulty": work / 65536,
                    "work": work,
                    "is_block": False,
                    "created_at": when,
                    **({} if bits is None else {"bits": bits}),
                }
            )
        with self.engine.begin() as conn:
            conn.execute(insert(Share), values)

    def block(self, block_hash: str, height: int, tenant: int, when: datetime, reward: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(Block),
                [
                    {
                        "hash": block_hash,
                        "height": height,
                        "reward_sat": reward,
                        "node_id": NODE_ID,
                        "worker_id": tenant,
                        "tenant_id": tenant,
                        "site_id": 1,
                        "accepted": True,
                        "status": "accepted",
                        "created_at": when,
                    }
                ],
            )

    def credits(self, block_hash: str | None = None) -> dict[int | None, tuple[int, int]]:
        query = select(Credit.tenant_id, Credit.amount_sat, Credit.fee_sat)
        if block_hash is not None:
            query = query.join(Block, Block.id == Credit.block_id).where(Block.hash == block_hash)
        else:
            query = query.where(Credit.block_id.is_(None))
        out: dict[int | None, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            for tenant, amount, fee in conn.execute(query):
                a, f = out.get(tenant, (0, 0))
                out[tenant] = (a + amount, f + fee)
        return out

    def status(self, block_hash: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(select(Block.status).where(Block.hash == block_hash)).scalar())


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        yield Ledger(engine)
    finally:
        engine.dispose()


@pytest.fixture
def chain(bcoin_node: RegtestNode) -> ChainView:
    return ChainView(NodeRPC(bcoin_node.rpc_url), "regtest")


def test_pplns_window_reaches_into_compacted_hours_pro_rata(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    n = Decimal(3_276_850)
    # N x D x 2^16 = 3,276,850 x 65,535 / 2,147,483,392 = 100.0000119..., rounded up.
    assert pplns_window_work(Fraction(n), REGTEST_BITS) == 101
    ledger.shares(
        (ACME, 60, T0 + timedelta(minutes=10), 1),  # hour 10:00, compacted below
        (GLOBEX, 40, T0 + timedelta(minutes=20), 1),
        (INITECH, 30, T0 + timedelta(hours=2, minutes=5), 1),
        (ACME, 20, T0 + timedelta(hours=2, minutes=10), 1),
        (GLOBEX, 25, T0 + timedelta(hours=2, minutes=15), 1),  # the block's share
    )
    assert compact(ledger.engine, T0 + timedelta(hours=1)).rows == 2
    [found] = bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    ledger.block(found, height, GLOBEX, T0 + timedelta(hours=2, minutes=15), 312_500_000)
    settings = PayoutSettings(scheme="pplns", pplns_n=n, maturity=2)
    report = track_blocks(ledger.engine, chain, settings)
    assert report.moved == {found: "immature"} and not report.errors
    # Newest first: globex 25, acme 20, initech 30 (75); 26 units of room for the 10:00 hour
    # (100 units): acme 60 x 26/100 = 15.6, globex 40 x 26/100 = 10.4.
    # Weights: acme 35.6, globex 35.4, initech 30 (of 101). Gross of 312,500,000:
    #   acme 110,148,514.85, globex 109,529,702.97, initech 92,821,782.17 -> floors leave 2
    #   satoshis: globex (.97) and acme (.85) get one each.
    # Net = floor(gross x 0.99): acme 110,148,515 -> 109,047,029 (fee 1,101,486);
    #   globex 109,529,703 -> 108,434,405 (fee 1,095,298); initech 92,821,782 -> 91,893,564
    #   (fee 928,218).
    assert ledger.credits(found) == {
        ACME: (109_047_029, 1_101_486),
        GLOBEX: (108_434_405, 1_095_298),
        INITECH: (91_893_564, 928_218),
    }
    assert sum(a + f for a, f in ledger.credits(found).values()) == 312_500_000
    bcoin_node.mine(1)
    assert track_blocks(ledger.engine, chain, settings).moved == {found: "mature"}
    assert ledger.status(found) == "mature"
    with ledger.engine.connect() as conn:
        statuses = set(conn.execute(select(Credit.status)).scalars())
    assert statuses == {"mature"}


def test_pplns_scores_each_share_by_the_network_difficulty_it_was_mined_at(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    """A share of difficulty d mined when the network difficulty was D scores d / D (Rosenfeld;
    Miningcore), not d / the found block's difficulty. Shares mined at 256 times the block's
    difficulty (bits 0x1f7fffff: the target 0x7fffff x 2^224, 1/256 of regtest's 0x7fffff x
    2^232) count 1/256 of their work, in raw shares and in compacted hours alike."""
    harder = 0x1F7FFFFF
    ledger.shares((INITECH, 99, T0 - timedelta(hours=1), 1), bits=REGTEST_BITS)  # not reached
    ledger.shares((ACME, 5120, T0 + timedelta(minutes=10), 1), bits=harder)  # hour 10:00
    ledger.shares((GLOBEX, 40, T0 + timedelta(minutes=20), 1), bits=REGTEST_BITS)
    assert compact(ledger.engine, T0 + timedelta(hours=1)).rows == 3
    ledger.shares((INITECH, 2560, T0 + timedelta(hours=2, minutes=5), 1), bits=harder)
    ledger.shares(
        (ACME, 20, T0 + timedelta(hours=2, minutes=10), 1),
        (GLOBEX, 25, T0 + timedelta(hours=2, minutes=15), 1),  # the block's share
        bits=REGTEST_BITS,
    )
    [found] = bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    ledger.block(found, height, GLOBEX, T0 + timedelta(hours=2, minutes=15), 312_500_000)
    settings = PayoutSettings(scheme="pplns", pplns_n=Decimal(3_276_850), fee_ppm=0)
    assert track_blocks(ledger.engine, chain, settings).moved == {found: "immature"}
    # Window 101 units of the block's difficulty (as in the test above). Newest first, scaled
    # to the block's difficulty: globex 25, acme 20, initech 2,560 / 256 = 10 (55 so far);
    # then the 10:00 hour, one step: acme 5,120 / 256 = 20 and globex 40 (60) for 46 units of
    # room: x 46/60 -> acme 46/3, globex 92/3. Weights: acme 20 + 46/3 = 106/3, globex 25 +
    # 92/3 = 167/3, initech 10 = 30/3 (of 303/3 = 101). Of 312,500,000: acme 33,125,000,000 /
    # 303 = 109,323,432.34, globex 52,187,500,000 / 303 = 172,235,973.60, initech
    # 3,125,000,000 / 101 = 30,940,594.06; floors leave 1 satoshi: globex (.60).
    # (Scored by the block's difficulty, initech's 2,560 alone would have filled the window.)
    assert ledger.credits(found) == {
        ACME: (109_323_432, 0),
        GLOBEX: (172_235_974, 0),
        INITECH: (30_940_594, 0),
    }


def test_prop_round_is_the_shares_since_the_previous_block(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    ledger.shares(
        (ACME, 50, T0 + timedelta(minutes=1), 1),
        (GLOBEX, 70, T0 + timedelta(minutes=2), 1),  # both in the previous round
        (ACME, 20, T0 + timedelta(minutes=4), 1),
        (GLOBEX, 25, T0 + timedelta(minutes=5), 1),  # this block's share
        (INITECH, 99, T0 + timedelta(minutes=6), 1),  # after the block: the next round
    )
    # The previous block the pool found (orphaned since: it still ended its round).
    ledger.block("ab" * 32, 1, GLOBEX, T0 + timedelta(minutes=3), 1)
    with ledger.engine.begin() as conn:
        conn.execute(Block.__table__.update().values(status="orphaned"))
    [found] = bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    ledger.block(found, height, GLOBEX, T0 + timedelta(minutes=5), 900_000_001)
    settings = PayoutSettings(scheme="prop", fee_ppm=0)
    assert track_blocks(ledger.engine, chain, settings).moved == {found: "immature"}
    # acme 20, globex 25 of 45: 900,000,001 x 20/45 = 400,000,000.44 and x 25/45 =
    # 500,000,000.56: the leftover satoshi goes to globex (.56 > .44).
    assert ledger.credits(found) == {ACME: (400_000_000, 0), GLOBEX: (500_000_001, 0)}


def test_pps_credits_shares_once_their_height_is_in_the_chain(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    tip = int(bcoin_node.rpc("getblockcount"))
    subsidy = 5_000_000_000 >> (tip // 150)  # regtest halves every 150 blocks
    ledger.shares(
        # Regtest's network difficulty (4.66e-10) is below the smallest work unit (difficulty
        # 1/65536): one unit is worth 32,768.5 blocks, so the shares here are 1 to 3 units.
        (ACME, 2, T0, tip),
        (GLOBEX, 3, T0 + timedelta(seconds=1), tip),
        (ACME, 7, T0 + timedelta(seconds=2), tip + 1),  # the chain is not there yet
    )
    settings = PayoutSettings(scheme="pps", fee_ppm=20_000)  # 2 %
    report = accrue_pps(ledger.engine, chain, settings)
    assert report.shares == 2
    # value = work / 2^16 / D x subsidy, D = 65,535 / 140,737,471,578,112:
    # work x subsidy x 140,737,471,578,112 / (65,536 x 65,535), floored, then 2 % fee.
    scale = Fraction(140_737_471_578_112, 65_536 * 65_535)
    acme_gross = int(2 * subsidy * scale)
    globex_gross = int(3 * subsidy * scale)
    acme_net = acme_gross * 98 // 100
    globex_net = globex_gross * 98 // 100
    assert ledger.credits() == {
        ACME: (acme_net, acme_gross - acme_net),
        GLOBEX: (globex_net, globex_gross - globex_net),
    }
    # Nothing twice; the waiting share is credited once its height has a block.
    assert accrue_pps(ledger.engine, chain, settings).shares == 0
    bcoin_node.mine(1)
    assert accrue_pps(ledger.engine, chain, settings).shares == 1
    subsidy_next = 5_000_000_000 >> ((tip + 1) // 150)
    late = int(7 * subsidy_next * scale)
    assert ledger.credits()[ACME][0] == acme_net + late * 98 // 100


def test_fpps_adds_the_average_fees_of_recent_blocks(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    # A mature coin in the wallet (the chain may be young when this test runs alone).
    if int(bcoin_node.rpc("getblockcount")) < 101:
        bcoin_node.mine(101)
    # Three blocks: two empty, then one with a wallet transaction whose fee we know.
    bcoin_node.mine(1)  # whatever else waits in the mempool goes here
    for empty in bcoin_node.mine(2):
        assert len(bcoin_node.rpc("getblock", empty, True)["tx"]) == 1
    sent: list[str] = []

    def send() -> bool:  # bcoin's wallet follows the chain a moment late
        sent.append(bcoin_node.wallet_rpc("sendtoaddress", bcoin_node.new_address(), 1))
        return True

    assert bcoin_node.wait_for(send, timeout=20)
    [txid] = sent
    assert bcoin_node.wait_for(lambda: txid in bcoin_node.rpc("getrawmempool"))
    fee = int(Decimal(str(bcoin_node.rpc("getmempoolentry", txid)["fee"])) * 10**8)
    assert fee > 0
    bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    block = bcoin_node.rpc("getblock", bcoin_node.rpc("getblockhash", height), True)
    assert txid in block["tx"]
    # A share mined on top of those three blocks (at the next height, once it exists).
    ledger.shares((INITECH, 1, T0, height + 1))
    bcoin_node.mine(1)
    settings = PayoutSettings(scheme="fpps", fee_ppm=0, fpps_fee_window=3)
    assert accrue_pps(ledger.engine, chain, settings).shares == 1
    subsidy = 5_000_000_000 >> ((height + 1) // 150)
    scale = Fraction(140_737_471_578_112, 65_536 * 65_535)  # one work unit over D
    assert ledger.credits() == {INITECH: (int(scale * (subsidy + Fraction(fee, 3))), 0)}


def test_switching_to_pps_does_not_pay_shares_a_block_already_paid(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    tip = int(bcoin_node.rpc("getblockcount"))
    ledger.shares((ACME, 100, T0, tip), (GLOBEX, 100, T0 + timedelta(minutes=1), tip))
    [found] = bcoin_node.mine(1)
    ledger.block(found, tip + 1, GLOBEX, T0 + timedelta(minutes=1), 1_000)
    track_blocks(ledger.engine, chain, PayoutSettings(scheme="pplns", pplns_n=Decimal(10**9)))
    assert set(ledger.credits(found)) == {ACME, GLOBEX}
    # Then the pool goes PPS: only the shares after that block are credited per share.
    ledger.shares((INITECH, 1, T0 + timedelta(minutes=2), tip))
    assert accrue_pps(ledger.engine, chain, PayoutSettings(scheme="pps")).shares == 1
    assert set(ledger.credits()) == {INITECH}
    # And back to PPLNS: a window does not reach into shares PPS paid.
    ledger.shares((ACME, 100, T0 + timedelta(minutes=3), tip + 1))
    [later] = bcoin_node.mine(1)
    ledger.block(later, tip + 2, ACME, T0 + timedelta(minutes=3), 1_000)
    track_blocks(ledger.engine, chain, PayoutSettings(scheme="pplns", pplns_n=Decimal(10**9)))
    assert ledger.credits(later) == {ACME: (990, 10)}


def test_credits_are_split_by_site_and_pay_the_contract_fee_of_each(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    now = datetime.now(UTC)
    with ledger.engine.begin() as conn:
        conn.execute(insert(Site), [{"id": 2, "name": "south", "created_at": now}])
        conn.execute(
            insert(Contract),
            [
                {
                    "tenant_id": ACME,
                    "site_id": 2,
                    "fee_ppm": 100_000,  # 10 % at south; the pool's 1 % elsewhere
                    "hosting_fee_micro": 0,
                    "fleet": "[]",
                    "fleet_watts": 0,
                    "valid_from": now,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
    ledger.shares((ACME, 60, T0, 1))
    with ledger.engine.begin() as conn:
        conn.execute(
            Share.__table__.insert(),
            [
                {
                    "id": NODE_ID << 48 | 999,
                    "hash": b"\x01" * 32,
                    "node_id": NODE_ID,
                    "worker_id": ACME,
                    "tenant_id": ACME,
                    "site_id": 2,
                    "job_id": "1",
                    "height": 1,
                    "difficulty": 1.0,
                    "share_difficulty": 1.0,
                    "work": 40,
                    "is_block": False,
                    "created_at": T0 + timedelta(seconds=1),
                }
            ],
        )
    [found] = bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    ledger.block(found, height, ACME, T0 + timedelta(seconds=1), 1_000)
    track_blocks(ledger.engine, chain, PayoutSettings(scheme="prop"))
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(Credit.tenant_id, Credit.site_id, Credit.amount_sat, Credit.fee_sat).order_by(
                Credit.site_id
            )
        ).all()
    # 60 and 40 of 100 units: gross 600 at north (1 %: 594 + 6) and 400 at south (10 %: 360
    # + 40).
    assert [tuple(r) for r in rows] == [(ACME, 1, 594, 6), (ACME, 2, 360, 40)]


def break_hosting_accounting(ledger: Ledger) -> None:
    """A tenant's contract at north, whose stored tariff no longer loads: the energy hours of
    the contract cannot be priced (update_energy raises TariffError)."""
    now = datetime.now(UTC)
    with ledger.engine.begin() as conn:
        conn.execute(Site.__table__.update().values(tariff='{"price": "free"}'))
        conn.execute(
            insert(Contract),
            [
                {
                    "tenant_id": ACME,
                    "site_id": 1,
                    "hosting_fee_micro": 0,
                    "fleet": "[]",
                    "fleet_watts": 0,
                    "valid_from": T0,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )


def test_a_hosting_accounting_failure_does_not_stop_block_crediting(
    ledger: Ledger,
    bcoin_node: RegtestNode,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`farmpool blocks update` (the money loop's pass): the energy step fails, the block
    tracker still credits the block, and the command reports the failure."""
    from pool import cli

    break_hosting_accounting(ledger)
    ledger.shares((ACME, 60, T0, 1), (GLOBEX, 40, T0 + timedelta(seconds=1), 1))
    [found] = bcoin_node.mine(1)
    height = int(bcoin_node.rpc("getblockcount"))
    ledger.block(found, height, ACME, T0 + timedelta(seconds=1), 1_000)
    config = tmp_path / "farmpool.yaml"
    config.write_text(
        json.dumps(
            {
                **DEFAULT_CONFIG,
                "database_url": ledger.engine.url.render_as_string(hide_password=False),
                "node": {"url": bcoin_node.rpc_url},
                "log_level": "warning",
            }
        )
    )
    capsys.readouterr()
    code = cli.main(["-c", str(config), "blocks", "update"])
    out, err = capsys.readouterr()
    assert ledger.status(found) == "immature", out + err
    assert sum(amount + fee for amount, fee in ledger.credits(found).values()) == 1_000
    assert "1 immature" in out, out
    assert code == 2 and "farmpool: price: 'free' is not a number" in err, (code, err)


def test_the_money_loop_runs_every_step_whatever_one_before_it_raised(
    ledger: Ledger, chain: ChainView, bcoin_node: RegtestNode
) -> None:
    """serve's money loop (pool/accounting/money_loop.py): a step that raises is reported by
    name, and the steps after it run (the block tracker, then PPS)."""
    from pool.accounting.energy import TariffError
    from pool.accounting.money_loop import run_pass
    from pool.config import load_settings

    break_hosting_accounting(ledger)
    tip = int(bcoin_node.rpc("getblockcount"))
    ledger.shares((ACME, 2, T0, tip))  # a unit of work is worth many regtest blocks
    [found] = bcoin_node.mine(1)
    ledger.block(found, tip + 1, ACME, T0 + timedelta(seconds=1), 1_000)
    settings = replace(load_settings(None), payout=PayoutSettings(scheme="pps", fee_ppm=0))
    done = run_pass(ledger.engine, settings, chain)
    assert [(f.step, type(f.error)) for f in done.failures] == [("energy", TariffError)]
    assert ledger.status(found) == "immature"
    assert set(ledger.credits()) == {ACME}  # PPS credited the share
    assert "1 immature" in done.text and "pps: 1 shares credited" in done.text, done.text
