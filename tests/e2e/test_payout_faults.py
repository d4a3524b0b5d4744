"""`farmpool payout --execute` killed at every step against a real regtest wallet, then run
again: every tenant receives exactly what it is owed, once (architecture invariant 4).

Both nodes: bcoin (its wallet's REST create; the ledger on SQLite, so the run lock is a flock)
and the Bitcoin SV node (Core's raw-transaction calls; the ledger on PostgreSQL, the run lock
an advisory lock). One output per transaction, so that a run has three batches and can be
killed between them. The run is killed with SIGKILL by its failpoint (FARMPOOL_FAILPOINT).
Also: the clear errors (insufficient funds, an address the node rejects, a run already
going, a locked wallet) record nothing as paid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import regtest_peers
from sqlalchemy import func, select, update

from pool.accounting.runlock import run_lock
from pool.ledger.models import Credit, Payout, PayoutItem
from tests.conftest import new_postgres_database
from tests.e2e.money import MoneyPool

FAILPOINTS = [
    "before-build",
    "after-sign",
    "after-record",
    "after-broadcast",
    "after-mark-sent",  # between the first and the second batch
    "after-record:2",
    "after-broadcast:3",
]


@pytest.fixture(scope="module", params=["bcoin", "svnode"])
def pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoneyPool]:
    workdir = tmp_path_factory.mktemp(f"payout-faults-{request.param}")
    payout = {"outputs_per_tx": 1, "threshold_sat": 1, "fee_rate_sat_vb": 2}
    if request.param == "bcoin":
        node = request.getfixturevalue("bcoin_node")
        pool = MoneyPool.create(node, workdir, f"sqlite:///{workdir / 'ledger.sqlite3'}", payout)
        pool.mine_to_wallet(101)  # spendable coins for the wallet
        yield pool
        return
    node, _ = request.getfixturevalue("svnode_pair")
    server = request.getfixturevalue("postgres_server")
    with new_postgres_database(server) as url:
        pool = MoneyPool.create(node, workdir, url, payout)
        pool.mine_to_wallet(101)
        yield pool


def _payouts(pool: MoneyPool) -> list[tuple[str, str, int]]:
    engine = pool.engine()
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(  # type: ignore[misc]
                    select(Payout.txid, Payout.status, Payout.total_sat).order_by(Payout.id)
                )
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_run_killed_anywhere_pays_everyone_exactly_once_when_run_again(
    pool: MoneyPool, failpoint: str
) -> None:
    before = pool.received()
    n = FAILPOINTS.index(failpoint)
    # Amounts that differ per tenant and per test, down to the satoshi.
    owed = {"acme": 123_456_789 + n, "globex": 50_000_001 + 7 * n, "initech": 12_345 + 11 * n}
    pool.credit(owed)
    killed = pool.farmpool("payout", "--execute", env={"FARMPOOL_FAILPOINT": failpoint})
    assert killed.returncode == -9, f"not killed at {failpoint}: {killed.stdout}{killed.stderr}"
    again = pool.farmpool("payout", "--execute")
    assert again.returncode == 0, again.stdout + again.stderr
    pool.mine_to_wallet(1)
    want = {name: before[name] + owed[name] for name in owed}
    assert pool.wait_received(want) == want, again.stdout
    balances = pool.balances()
    assert all(balances[name]["owed_sat"] == 0 for name in owed), balances
    # One live payout per tenant for this round: nothing recorded twice, nothing void.
    assert not [p for p in _payouts(pool) if p[1] in ("signed", "void")]
    # A third run finds nothing to do and sends nothing.
    idle = pool.farmpool("payout", "--execute", "--json")
    assert idle.returncode == 0, idle.stderr
    assert json.loads(idle.stdout)["sent"] == []


def test_dry_run_writes_and_sends_nothing(pool: MoneyPool) -> None:
    pool.credit({"acme": 1_000})
    payouts = _payouts(pool)
    run = pool.farmpool("payout", "--dry-run", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["dry_run"] is True
    assert [p["amount_sat"] for b in summary["sent"] for p in b["payments"]] == [1_000]
    assert _payouts(pool) == payouts  # a dry run changes nothing, not even a status
    assert pool.balances()["acme"]["owed_sat"] == 1_000
    done = pool.farmpool("payout", "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    pool.mine_to_wallet(1)


def test_insufficient_funds_is_a_clear_error_and_nothing_is_recorded(pool: MoneyPool) -> None:
    payouts = _payouts(pool)
    huge = 20_000_000 * 100_000_000  # 20 million BTC: more than any regtest wallet holds
    pool.credit({"globex": huge})
    run = pool.farmpool("payout", "--execute")
    assert run.returncode == 1
    assert "not enough spendable funds" in run.stdout, run.stdout + run.stderr
    assert [p[0] for p in _payouts(pool)] == [p[0] for p in payouts]  # no new transaction
    assert pool.balances()["globex"]["owed_sat"] == huge
    engine = pool.engine()
    try:
        with engine.begin() as conn:  # take the test's credit back out of the ledger
            conn.execute(update(Credit).where(Credit.amount_sat == huge).values(status="void"))
    finally:
        engine.dispose()


def test_an_address_the_node_rejects_is_reported_and_the_others_are_paid(
    pool: MoneyPool,
) -> None:
    # Valid for regtest in Bitcoin Core's encoding (bech32 "bcrt1"), which neither bcoin
    # (its regtest uses "rb1") nor the SV node (no segwit) accepts.
    foreign = "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"
    set_address = pool.farmpool("tenant", "set", "initech", "--payout-address", foreign)
    assert set_address.returncode == 0, set_address.stderr
    try:
        before = pool.received()
        pool.credit({"acme": 777, "initech": 888})
        run = pool.farmpool("payout", "--execute")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "NOT PAID initech" in run.stdout and foreign in run.stdout, run.stdout
        pool.mine_to_wallet(1)
        assert pool.wait_received({"acme": before["acme"] + 777})["acme"] == before["acme"] + 777
        assert pool.balances()["initech"]["owed_sat"] == 888
        engine = pool.engine()
        try:
            with engine.connect() as conn:
                paid_to_foreign = conn.execute(
                    select(func.count())
                    .select_from(PayoutItem)
                    .where(PayoutItem.address == foreign)
                ).scalar()
        finally:
            engine.dispose()
        assert paid_to_foreign == 0
    finally:
        pool.farmpool("tenant", "set", "initech", "--payout-address", pool.addresses["initech"])
    done = pool.farmpool("payout", "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    pool.mine_to_wallet(1)


def test_a_second_run_at_the_same_time_is_refused(pool: MoneyPool) -> None:
    engine = pool.engine()
    try:
        with run_lock(engine, "payout"):
            run = pool.farmpool("payout", "--execute")
    finally:
        engine.dispose()
    assert run.returncode == 1
    assert "another process is running payout" in run.stderr, run.stderr


def test_a_locked_wallet_is_a_clear_error_and_nothing_is_recorded(tmp_path: Path) -> None:
    node = regtest_peers.start_bcoin(tmp_path / "bcoin")
    try:
        pool = MoneyPool.create(
            node, tmp_path, f"sqlite:///{tmp_path / 'ledger.sqlite3'}", {"threshold_sat": 1}
        )
        pool.mine_to_wallet(101)
        node.wallet_rpc("encryptwallet", "a passphrase")  # bcoin locks it at once
        pool.credit({"acme": 5_000})
        run = pool.farmpool("payout", "--execute")
        assert run.returncode == 1
        assert "locked" in run.stdout, run.stdout + run.stderr
        assert _payouts(pool) == []
        assert pool.balances()["acme"]["owed_sat"] == 5_000
        node.wallet_rpc("walletpassphrase", "a passphrase", 60)
        run = pool.farmpool("payout", "--execute")
        assert run.returncode == 0, run.stdout + run.stderr
        pool.mine_to_wallet(1)
        assert pool.wait_received({"acme": 5_000})["acme"] == 5_000
    finally:
        node.stop()
