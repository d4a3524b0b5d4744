"""pool.accounting.conflicts: reading what another transaction that spends a payout's inputs
pays (the node's decoded transactions, checked), and whether it is the payout itself."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from pool.accounting.conflicts import parse_tx, pays
from pool.chain.rpc import BadNodeAnswer

A, B, CHANGE = (
    b"\x76\xa9\x14" + b"\x01" * 20,
    b"\x76\xa9\x14" + b"\x02" * 20,
    b"\x00\x14" + b"\x03" * 20,
)
TXID = "ab" * 32


def decoded(outputs: list[tuple[bytes, str]], vin: list[dict[str, Any]] | None = None) -> Any:
    return {
        "txid": TXID,
        "vin": vin if vin is not None else [{"txid": "cd" * 32, "vout": 1}],
        "vout": [
            {"value": Decimal(v), "n": n, "scriptPubKey": {"hex": s.hex()}}
            for n, (s, v) in enumerate(outputs)
        ],
    }


def test_parse_tx_reads_inputs_and_outputs_in_satoshis() -> None:
    txid, inputs, outputs = parse_tx(
        decoded([(A, "0.0005"), (B, "1.23456789"), (CHANGE, "3")]), "here"
    )
    assert txid == TXID and inputs == [("cd" * 32, 1)]
    assert outputs == Counter({(A, 50_000): 1, (B, 123_456_789): 1, (CHANGE, 300_000_000): 1})


def test_a_coinbase_has_no_inputs() -> None:
    assert parse_tx(decoded([(A, "50")], [{"coinbase": "0101"}]), "here")[1] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"txid": "xyz", "vin": [], "vout": []},
        {"txid": TXID, "vin": [{"txid": "cd" * 32, "vout": -1}], "vout": []},
        {"txid": TXID, "vin": [{"txid": "cd" * 31, "vout": 0}], "vout": []},
        {
            "txid": TXID,
            "vin": [],
            "vout": [{"value": Decimal("0.000000001"), "scriptPubKey": {"hex": "00"}}],
        },
        {"txid": TXID, "vin": [], "vout": [{"value": Decimal(1), "scriptPubKey": {"hex": "zz"}}]},
        {"txid": TXID, "vin": [], "vout": [{"value": Decimal(1)}]},
        "not a transaction",
    ],
)
def test_a_decoded_transaction_that_makes_no_sense_is_refused(bad: Any) -> None:
    with pytest.raises(BadNodeAnswer, match="here"):
        parse_tx(bad, "here")


WANTED = Counter({(A, 50_000): 1, (B, 70_000): 1})


@pytest.mark.parametrize(
    ("outputs", "verdict"),
    [
        # A fee bump: less change, the same tenant outputs.
        (Counter({(A, 50_000): 1, (B, 70_000): 1, (CHANGE, 9_000): 1}), "all"),
        # A malleated copy: exactly the same outputs.
        (Counter({(A, 50_000): 1, (B, 70_000): 1, (CHANGE, 10_000): 1}), "all"),
        # The fee taken from the tenants' amounts: it pays them, but not what was recorded.
        (Counter({(A, 49_000): 1, (B, 70_000): 1}), "some"),
        (Counter({(A, 50_000): 1, (CHANGE, 80_000): 1}), "some"),
        # Something else altogether (the wallet spent the coins elsewhere).
        (Counter({(CHANGE, 119_000): 1}), "none"),
    ],
)
def test_what_a_conflicting_transaction_pays(
    outputs: Counter[tuple[bytes, int]], verdict: str
) -> None:
    assert pays(outputs, WANTED) == verdict


def test_two_tenants_paid_at_one_script_need_the_output_twice() -> None:
    wanted = Counter({(A, 1_000): 2})
    assert pays(Counter({(A, 1_000): 1}), wanted) == "some"
    assert pays(Counter({(A, 1_000): 2}), wanted) == "all"
