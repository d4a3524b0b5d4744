"""Building one payout batch against a real wallet (bcoin's): an output the wallet refuses is
left out with the wallet's reason and the others are paid; when the wallet runs short, the
largest payments wait. Nothing here is broadcast: building never moves money.

The dust floor keeps dust out of a planned batch (tests/e2e/test_payout_faults.py); here a
batch is handed a 300-sat payment directly, as a wallet with a stricter dust rule (Bitcoin
Core's -dustrelayfee) would see a planned one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from regtest_peers import RegtestNode

from pool.accounting.payout import Payment, RunSummary, build_batch
from pool.accounting.wallet import InsufficientFunds, Wallet, WalletError
from pool.chain.addresses import address_to_script
from pool.chain.rpc import NodeRPC, to_satoshis
from pool.config import PayoutSettings


@pytest.fixture
def wallet(bcoin_node: RegtestNode) -> Iterator[Wallet]:
    settings = PayoutSettings(wallet_url=bcoin_node.wallet_rpc_url)
    wallet = Wallet(NodeRPC(bcoin_node.rpc_url), settings, "regtest")
    target = bcoin_node.new_address()

    def can_fund() -> bool:  # bcoin's wallet follows the chain a little late
        try:
            wallet.build([(target, 100_000)])
            return True
        except InsufficientFunds:
            return False

    if not can_fund():
        bcoin_node.mine(101, bcoin_node.new_address())
        assert bcoin_node.wait_for(can_fund, timeout=20)
    yield wallet


def pays(wallet: Wallet, raw_hex: str) -> Counter[tuple[bytes, int]]:
    decoded = wallet.node.call("decoderawtransaction", raw_hex)
    return Counter(
        (bytes.fromhex(o["scriptPubKey"]["hex"]), to_satoshis(o["value"])) for o in decoded["vout"]
    )


def payment(bcoin_node: RegtestNode, n: int, amount: int) -> Payment:
    return Payment(n, f"tenant{n}", bcoin_node.new_address(), amount)


def test_an_output_the_wallet_refuses_is_left_out_and_the_others_are_paid(
    wallet: Wallet, bcoin_node: RegtestNode
) -> None:
    dust, fine, other = (
        payment(bcoin_node, 1, 300),
        payment(bcoin_node, 2, 5_000),
        payment(bcoin_node, 3, 7_000),
    )
    summary, lines = RunSummary(), []
    batch = [dust, fine, other]
    signed, short = build_batch(wallet, batch, summary, lines.append, "batch 1/1")
    assert signed is not None and not short, (summary.skipped, lines)
    outputs = pays(wallet, signed.hex)
    for p in (fine, other):
        assert outputs[(address_to_script(p.address, "regtest"), p.amount_sat)] == 1
    assert not any(script == address_to_script(dust.address, "regtest") for script, _ in outputs)
    assert batch == [fine, other]  # what is recorded is what the transaction pays
    [skipped] = summary.skipped
    assert (skipped["tenant"], skipped["owed_sat"]) == ("tenant1", 300)
    assert "the wallet refuses its output" in skipped["reason"] and "dust" in skipped["reason"]
    assert any("tenant1" in line and "paying the others" in line for line in lines), lines


def test_when_the_wallet_runs_short_the_largest_payments_wait(
    wallet: Wallet, bcoin_node: RegtestNode
) -> None:
    huge = 20_000_000 * 100_000_000
    small, large = payment(bcoin_node, 1, 6_000), payment(bcoin_node, 2, huge)
    summary = RunSummary()
    batch = [small, large]  # in payment order: smallest first
    signed, short = build_batch(wallet, batch, summary, lambda _: None, "batch 1/1")
    assert signed is not None and short
    assert pays(wallet, signed.hex)[(address_to_script(small.address, "regtest"), 6_000)] == 1
    assert batch == [small]
    [waits] = summary.skipped
    assert waits["tenant"] == "tenant2" and "not enough spendable funds" in waits["reason"]


def test_a_batch_the_wallet_refuses_whole_stops_the_run(
    wallet: Wallet, bcoin_node: RegtestNode
) -> None:
    """Every output refused: that is the wallet refusing the batch, not an output of it."""
    batch = [payment(bcoin_node, 1, 300), payment(bcoin_node, 2, 400)]
    with pytest.raises(WalletError, match="dust"):
        build_batch(wallet, batch, RunSummary(), lambda _: None, "batch 1/1")
