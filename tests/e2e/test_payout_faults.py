"""`farmpool payout --execute` killed at every step against a real regtest wallet, then run
again: every tenant receives exactly what it is owed, once (architecture invariant 4) -- even
when the payout transaction was fee-bumped or malleated meanwhile, and with a dust balance
in the ledger.

Both nodes: bcoin (its wallet's REST create; the ledger on SQLite, so the run lock is a flock)
and the Bitcoin SV node (Core's raw-transaction calls; the ledger on PostgreSQL, the run lock
an advisory lock). One output per transaction, so that a run has three batches and can be
killed between them. The run is killed with SIGKILL by its failpoint (FARMPOOL_FAILPOINT);
then the first payout it recorded is replaced by a fee-bumped copy that a miner confirms
(tests/e2e/replacements.py), before the run is started again. A fourth tenant, `dust`, is
owed 300 sat with a threshold of 1 stored before the dust floor existed: it is never paid.
Also: a wallet that cannot fund everyone pays the smallest balances and says who waits; an
address the node rejects, a run already going and a locked wallet record nothing as paid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import regtest_peers
from sqlalchemy import func, select, update

from pool.accounting.runlock import run_lock
from pool.chain.addresses import address_to_script
from pool.ledger.models import Credit, Payout, PayoutItem, Tenant
from tests.conftest import new_postgres_database
from tests.e2e.money import TENANTS, MoneyPool
from tests.e2e.replacements import bump_fee, malleate, mine_with, txid_of

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
    payout = {"outputs_per_tx": 1, "threshold_sat": 546, "fee_rate_sat_vb": 2}
    tenants = (*TENANTS, DUST)
    if request.param == "bcoin":
        node = request.getfixturevalue("bcoin_node")
        url = f"sqlite:///{workdir / 'ledger.sqlite3'}"
        pool = MoneyPool.create(node, workdir, url, payout, tenants)
        yield _with_dust(pool)
        return
    node, _ = request.getfixturevalue("svnode_pair")
    server = request.getfixturevalue("postgres_server")
    with new_postgres_database(server) as url:
        pool = MoneyPool.create(node, workdir, url, payout, tenants)
        yield _with_dust(pool)


#: A tenant owed less than the dust limit, whose threshold (1 sat) was stored before the
#: floor existed; `farmpool tenant set` refuses that value now.
DUST = "dust"
DUST_OWED = 300


def _with_dust(pool: MoneyPool) -> MoneyPool:
    pool.mine_to_wallet(101)  # spendable coins for the wallet
    engine = pool.engine()
    try:
        with engine.begin() as conn:
            conn.execute(update(Tenant).where(Tenant.name == DUST).values(payout_threshold_sat=1))
    finally:
        engine.dispose()
    pool.credit({DUST: DUST_OWED})
    return pool


def _dust_untouched(pool: MoneyPool, balances: dict[str, dict[str, Any]]) -> None:
    assert balances[DUST]["owed_sat"] == DUST_OWED, balances[DUST]
    assert balances[DUST]["threshold_sat"] == 546  # the floor, whatever was stored
    assert pool.received()[DUST] == 0


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


def _payout_rows(pool: MoneyPool, since: int = 0) -> list[Any]:
    """id, txid, raw_hex, status, paid_by_txid of every payout after id `since`."""
    engine = pool.engine()
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(
                        Payout.id, Payout.txid, Payout.raw_hex, Payout.status, Payout.paid_by_txid
                    )
                    .where(Payout.id > since)
                    .order_by(Payout.id)
                )
            )
    finally:
        engine.dispose()


def _last_payout_id(pool: MoneyPool) -> int:
    rows = _payout_rows(pool)
    return rows[-1].id if rows else 0


def _tenant_scripts(pool: MoneyPool) -> set[bytes]:
    return {address_to_script(a, "regtest") for a in pool.addresses.values()}


def _replace(pool: MoneyPool, raw_hex: str, how: str) -> str:
    """A miner confirms a fee-bumped or malleated copy of a payout in place of it."""
    if how == "fee bump":
        replacement = bump_fee(pool.node, raw_hex, _tenant_scripts(pool), extra_sat=1_000)
    else:
        replacement = malleate(raw_hex)
    assert txid_of(replacement) != txid_of(raw_hex)
    mine_with(pool.node, [replacement])
    return txid_of(replacement)


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_run_killed_anywhere_pays_everyone_exactly_once_when_run_again(
    pool: MoneyPool, failpoint: str
) -> None:
    before = pool.received()
    start = _last_payout_id(pool)
    n = FAILPOINTS.index(failpoint)
    # Amounts that differ per tenant and per test, down to the satoshi.
    owed = {"acme": 123_456_789 + n, "globex": 50_000_001 + 7 * n, "initech": 12_345 + 11 * n}
    pool.credit(owed)
    killed = pool.farmpool("payout", "--execute", env={"FARMPOOL_FAILPOINT": failpoint})
    assert killed.returncode == -9, f"not killed at {failpoint}: {killed.stdout}{killed.stderr}"
    # The last payout the killed run recorded (if it got that far) is fee-bumped, and a
    # miner confirms the bumped copy: signed and never sent, or in the mempool already. (The
    # last: a payout recorded after it could spend its change, and would wait for the
    # replacement to be 6 blocks deep; test_a_payout_spending_the_change_of_a_replaced_one.)
    recorded = _payout_rows(pool, start)
    bumped = _replace(pool, recorded[-1].raw_hex, "fee bump") if recorded else None
    again = pool.farmpool("payout", "--execute")
    assert again.returncode == 0, again.stdout + again.stderr
    pool.mine_to_wallet(1)
    want = {name: before[name] + owed[name] for name in owed}
    assert pool.wait_received(want) == {**before, **want}, again.stdout
    balances = pool.balances()
    assert all(balances[name]["owed_sat"] == 0 for name in owed), balances
    _dust_untouched(pool, balances)
    # One live payout per tenant for this round: nothing recorded twice, nothing void.
    assert not [p for p in _payouts(pool) if p[1] in ("signed", "void")]
    if bumped is not None:
        last = _payout_rows(pool, start)[len(recorded) - 1]
        assert (last.status, last.paid_by_txid) == ("confirmed", bumped), again.stdout
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


@pytest.mark.parametrize("how", ["fee bump", "malleated copy"])
def test_a_payout_replaced_by_a_bumped_or_malleated_copy_is_not_paid_again(
    pool: MoneyPool, how: str
) -> None:
    """The payout was sent; the operator bumped its fee (or a third party malleated it), and a
    miner confirmed that copy. The next run finds the copy, which pays the same outputs, and
    takes it for the payout: confirmed, nobody paid again."""
    before = pool.received()
    start = _last_payout_id(pool)
    owed = {"acme": 31_000_017}
    pool.credit(owed)
    sent = pool.farmpool("payout", "--execute")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [first] = _payout_rows(pool, start)
    assert first.status == "sent"
    replacement = _replace(pool, first.raw_hex, how)
    again = pool.farmpool("payout", "--execute", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads(again.stdout)
    assert summary["sent"] == [], summary  # nobody paid a second time
    [recovered] = [r for r in summary["recovered"] if r["payout"] == first.id]
    assert (recovered["status"], recovered["paid_by"]) == ("confirmed", replacement)
    pool.mine_to_wallet(1)
    want = {name: before[name] + owed[name] for name in owed}
    assert pool.wait_received(want) == {**before, **want}
    [row] = _payout_rows(pool, start)
    assert (row.status, row.paid_by_txid) == ("confirmed", replacement)
    balances = pool.balances()
    assert all(balances[name]["owed_sat"] == 0 for name in owed), balances
    # A third run has nothing to recover or pay.
    idle = pool.farmpool("payout", "--execute", "--json")
    assert idle.returncode == 0 and json.loads(idle.stdout)["sent"] == [], idle.stdout


def test_a_payout_spending_the_change_of_a_replaced_one_is_void_once_that_is_deep(
    pool: MoneyPool,
) -> None:
    """globex's payout spends the change of acme's (the wallet has one coin to spend); acme's
    is malleated and the copy confirmed: globex's can never confirm now. It is not void while
    the copy could still be undone by a reorg (1 confirmation); at 6 it is, and globex is paid
    again, in a new transaction: once in all."""
    before = pool.received()
    start = _last_payout_id(pool)
    owed = {"acme": 30_011, "globex": 40_013}  # acme first: smallest first
    pool.credit(owed)
    coins = pool.node.wallet_rpc("listunspent", 1)
    mature = [c for c in coins if int(c["confirmations"]) > 100]  # bcoin lists young coinbases
    biggest = max(mature, key=lambda c: Decimal(str(c["amount"])))
    locked = [{"txid": c["txid"], "vout": c["vout"]} for c in coins if c is not biggest]
    assert pool.node.wallet_rpc("lockunspent", False, locked)
    try:
        sent = pool.farmpool("payout", "--execute")
    finally:
        pool.node.wallet_rpc("lockunspent", True, locked)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    first, second = _payout_rows(pool, start)
    parents = {vin["txid"] for vin in pool.node.rpc("decoderawtransaction", second.raw_hex)["vin"]}
    assert first.txid in parents, "the second payout does not spend the first one's change"
    copy = _replace(pool, first.raw_hex, "malleated copy")

    waits = pool.farmpool("payout", "--execute", "--json")
    assert waits.returncode == 0, waits.stdout + waits.stderr
    summary = json.loads(waits.stdout)
    assert summary["sent"] == [], summary
    recovered = {r["payout"]: r for r in summary["recovered"]}
    assert (recovered[first.id]["status"], recovered[first.id]["paid_by"]) == ("confirmed", copy)
    assert recovered[second.id]["status"] == "sent"
    assert first.txid in recovered[second.id]["waiting"], recovered[second.id]

    pool.mine_to_wallet(5)  # the copy is 6 blocks deep
    repaid = pool.farmpool("payout", "--execute", "--json")
    assert repaid.returncode == 0, repaid.stdout + repaid.stderr
    summary = json.loads(repaid.stdout)
    assert {r["payout"]: r["status"] for r in summary["recovered"]}[second.id] == "void"
    paid = {p["tenant"]: p["amount_sat"] for b in summary["sent"] for p in b["payments"]}
    assert paid == {"globex": 40_013}
    pool.mine_to_wallet(1)
    want = {name: before[name] + owed[name] for name in owed}
    assert pool.wait_received(want) == {**before, **want}
    assert [r.status for r in _payout_rows(pool, start)] == ["confirmed", "void", "sent"]


def test_a_dust_balance_is_held_back_and_everyone_else_is_paid(pool: MoneyPool) -> None:
    """`dust` is owed 300 sat with a stored threshold of 1: a payout output of 300 sat is dust
    (bcoin's wallet refuses the whole transaction: "Output is dust"). It is held back at the
    floor of 546 sat; the others are paid."""
    before = pool.received()
    pool.credit({"globex": 7_000, "initech": 9_000})
    run = pool.farmpool("payout", "--execute", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    paid = {p["tenant"]: p["amount_sat"] for b in summary["sent"] for p in b["payments"]}
    assert paid == {"globex": 7_000, "initech": 9_000}
    [held] = [b for b in summary["owed_below_threshold"] if b["tenant"] == DUST]
    assert (held["owed_sat"], held["threshold_sat"]) == (DUST_OWED, 546)
    pool.mine_to_wallet(1)
    want = {"globex": before["globex"] + 7_000, "initech": before["initech"] + 9_000}
    assert pool.wait_received(want) == {**before, **want}
    _dust_untouched(pool, pool.balances())


def test_a_wallet_short_of_funds_pays_the_smallest_balances_and_says_who_waits(
    pool: MoneyPool,
) -> None:
    """acme is owed more than the wallet holds: the dry run shows owed against spendable and
    who waits; the run pays globex and initech (smallest first) and reports acme NOT PAID,
    recording nothing for it, instead of stopping at acme's batch."""
    payouts = _payouts(pool)
    before = pool.received()
    huge = 20_000_000 * 100_000_000  # 20 million BTC: more than any regtest wallet holds
    pool.credit({"acme": huge, "globex": 60_000, "initech": 50_000})
    dry = pool.farmpool("payout", "--dry-run", "--json")
    assert dry.returncode == 1, dry.stdout + dry.stderr  # a tenant is not paid
    plan = json.loads(dry.stdout)
    money = plan["solvency"]
    assert money["due_sat"] == huge + 110_000
    assert money["owed_sat"] == huge + 110_000 + DUST_OWED
    assert 110_000 < money["spendable_sat"] < huge
    assert money["unfunded_sat"] == huge
    assert [p["tenant"] for b in plan["sent"] for p in b["payments"]] == ["initech", "globex"]
    [waits] = plan["skipped"]
    assert waits["tenant"] == "acme" and "not enough spendable funds" in waits["reason"]
    table = pool.farmpool("payout", "--dry-run")
    assert "the wallet can spend" in table.stdout and "SHORT:" in table.stdout, table.stdout
    run = pool.farmpool("payout", "--execute")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "NOT PAID acme" in run.stdout and "not enough spendable funds" in run.stdout
    assert "STOPPED" not in run.stdout, run.stdout
    assert len(_payouts(pool)) == len(payouts) + 2  # globex and initech; nothing for acme
    pool.mine_to_wallet(1)
    want = {"globex": before["globex"] + 60_000, "initech": before["initech"] + 50_000}
    assert pool.wait_received(want) == {**before, **want}
    assert pool.balances()["acme"]["owed_sat"] == huge
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
            node, tmp_path, f"sqlite:///{tmp_path / 'ledger.sqlite3'}", {"threshold_sat": 546}
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
