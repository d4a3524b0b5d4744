"""pool.chain.template (getblocktemplate answers) and the pure parts of pool.chain.rpc.

The template dicts are written by hand in the shape Bitcoin Core and bcoin answer, with two
real serialized transactions whose txid/wtxid are computed here with hashlib.
"""

from __future__ import annotations

import http.client
from decimal import Decimal
from typing import Any

import pytest
from bitcoinrpc.authproxy import JSONRPCException

from pool.chain.rpc import (
    BadNodeAnswer,
    NodeAuthError,
    NodeError,
    NodeRPC,
    NodeRPCError,
    NodeUnreachable,
    SubmitResult,
    WrongNetwork,
    to_satoshis,
)
from pool.chain.serialize import parse_tx
from pool.chain.template import (
    BlockTemplate,
    TemplateError,
    detect_segwit,
    fetch_template,
    parse_template,
    template_request,
)
from tests.unit.sample_txs import (
    LEGACY_TX,
    LEGACY_TXID,
    SEGWIT_TX,
    SEGWIT_TX_STRIPPED,
    SEGWIT_TXID,
    SEGWIT_WTXID,
    WITNESS_COMMITMENT,
)


def explorer(digest: bytes) -> str:
    return digest[::-1].hex()


PREV_840000 = "0000000000000000000172014ba58d66455762add0512355ad651207918494ab"


def core_template() -> dict[str, Any]:
    """A Bitcoin Core 26-style answer at mainnet height 840000."""
    return {
        "capabilities": ["proposal"],
        "version": 0x20000000,
        "rules": ["csv", "!segwit", "taproot"],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": PREV_840000,
        "transactions": [
            {
                "data": LEGACY_TX.hex(),
                "txid": explorer(LEGACY_TXID),
                "hash": explorer(LEGACY_TXID),
                "depends": [],
                "fee": 15_000,
                "sigops": 4,
                "weight": 4 * len(LEGACY_TX),
            },
            {
                "data": SEGWIT_TX.hex(),
                "txid": explorer(SEGWIT_TXID),
                "hash": explorer(SEGWIT_WTXID),
                "depends": [],
                "fee": 2_345,
                "sigops": 1,
                "weight": 561,
            },
        ],
        "coinbaseaux": {},
        "coinbasevalue": 312_500_000 + 17_345,
        "longpollid": PREV_840000 + "12345",
        "target": "0000000000000000000342190000000000000000000000000000000000000000",
        "mintime": 1713569941,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 80000,
        "sizelimit": 4000000,
        "weightlimit": 4000000,
        "curtime": 1713571767,
        "bits": "17034219",
        "height": 840000,
        "default_witness_commitment": WITNESS_COMMITMENT.hex(),
    }


REGTEST_PREV = "3b0e1ab2f0cdb0d6bd9aa5e4ff2f2e8f6e1c0c5a1d7e4f2a9b8c7d6e5f4a3b2c"


def bcoin_template() -> dict[str, Any]:
    """A bcoin 2.x-style regtest answer without segwit (no rule, no commitment)."""
    return {
        "capabilities": ["proposal"],
        "mutable": ["time", "transactions", "prevblock"],
        "version": 536870912,
        "rules": ["csv"],
        "vbavailable": {},
        "vbrequired": 0,
        "height": 101,
        "previousblockhash": REGTEST_PREV,
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "bits": "207fffff",
        "noncerange": "00000000ffffffff",
        "curtime": 1700000000,
        "mintime": 1699998001,
        "maxtime": 1700007200,
        "expires": 1700007200,
        "sigoplimit": 80000,
        "sizelimit": 4000000,
        "weightlimit": 4000000,
        "longpollid": REGTEST_PREV + "00000001",
        "submitold": False,
        "coinbaseaux": {"flags": "6d696e65642062792062636f696e"},
        "coinbasevalue": 5_000_015_000,
        "transactions": [
            {
                "data": LEGACY_TX.hex(),
                "txid": explorer(LEGACY_TXID),
                "hash": explorer(LEGACY_TXID),
                "depends": [],
                "fee": 15_000,
                "sigops": 4,
                "weight": 4 * len(LEGACY_TX),
            }
        ],
    }


# --- parse_template: good answers ---------------------------------------------------------


def test_core_template_is_typed() -> None:
    t = parse_template(core_template())
    assert isinstance(t, BlockTemplate)
    assert t.height == 840_000
    assert t.version == 0x20000000
    # Internal order is the explorer hex reversed: the leading zeros come last.
    assert t.prevhash.hex() == ("ab948491071265ad552351d0ad625745668da54b017201000000000000000000")
    assert t.prevhash_hex == PREV_840000
    assert t.bits == 0x17034219
    assert t.target == 0x034219 << 160
    assert (t.curtime, t.mintime) == (1713571767, 1713569941)
    assert t.coinbasevalue == 312_517_345
    assert t.fees == 17_345
    assert t.longpollid == PREV_840000 + "12345"
    assert t.rules == ("csv", "!segwit", "taproot")
    assert t.witness_commitment == WITNESS_COMMITMENT
    assert len(t.witness_commitment) == 38
    legacy, segwit = t.transactions
    assert (legacy.data, legacy.txid, legacy.wtxid, legacy.fee) == (
        LEGACY_TX,
        LEGACY_TXID,
        LEGACY_TXID,
        15_000,
    )
    assert (segwit.data, segwit.txid, segwit.wtxid, segwit.fee) == (
        SEGWIT_TX,
        SEGWIT_TXID,
        SEGWIT_WTXID,
        2_345,
    )
    assert segwit.txid != segwit.wtxid
    # The hand-made transactions are well formed.
    assert parse_tx(LEGACY_TX).txid == LEGACY_TXID
    assert parse_tx(SEGWIT_TX).wtxid == SEGWIT_WTXID
    assert parse_tx(SEGWIT_TX).stripped == SEGWIT_TX_STRIPPED


def test_bcoin_template_is_typed() -> None:
    t = parse_template(bcoin_template())
    assert t.height == 101
    assert t.version == 0x20000000
    assert t.prevhash == bytes.fromhex(REGTEST_PREV)[::-1]
    assert t.prevhash[0] == 0x2C and t.prevhash[-1] == 0x3B
    assert t.bits == 0x207FFFFF
    assert t.target == 0x7FFFFF << 232
    assert (t.curtime, t.mintime) == (1700000000, 1699998001)
    assert t.coinbasevalue == 5_000_015_000
    assert t.fees == 15_000
    assert t.witness_commitment is None
    assert t.longpollid == REGTEST_PREV + "00000001"
    assert t.rules == ("csv",)
    assert [tx.txid for tx in t.transactions] == [LEGACY_TXID]


def test_optional_fields_default() -> None:
    answer = bcoin_template()
    for name in ("mintime", "longpollid", "rules"):
        del answer[name]
    del answer["transactions"][0]["hash"]
    del answer["transactions"][0]["fee"]
    t = parse_template(answer)
    assert t.mintime == t.curtime == 1700000000
    assert t.longpollid is None
    assert t.rules == ()
    assert t.transactions[0].wtxid == t.transactions[0].txid == LEGACY_TXID
    assert t.transactions[0].fee == 0
    assert t.fees == 0


def test_empty_block_and_non_text_longpollid() -> None:
    answer = bcoin_template()
    answer["transactions"] = []
    answer["longpollid"] = 7
    t = parse_template(answer)
    assert t.transactions == ()
    assert t.fees == 0
    assert t.longpollid is None


# --- parse_template: refused answers ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "height",
        "version",
        "previousblockhash",
        "bits",
        "target",
        "curtime",
        "coinbasevalue",
        "transactions",
    ],
)
def test_missing_field(name: str) -> None:
    answer = core_template()
    del answer[name]
    with pytest.raises(TemplateError) as info:
        parse_template(answer)
    assert str(info.value) == f"getblocktemplate answer has no {name!r}"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("height", "840000", "field 'height' is '840000'; wrong type"),
        ("height", True, "field 'height' is True; wrong type"),
        ("version", 536870912.0, "field 'version' is 536870912.0; wrong type"),
        ("previousblockhash", 12, "field 'previousblockhash' is 12; wrong type"),
        (
            "previousblockhash",
            "00" * 31,
            "field 'previousblockhash': expected 32 bytes (64 hex digits), got 31",
        ),
        ("previousblockhash", "zz" * 32, "field 'previousblockhash': not hex"),
        ("bits", 0x17034219, "field 'bits' is 386089497; wrong type"),
        ("bits", "0017034219", "field 'bits': expected 4 bytes (8 hex digits), got 5"),
        ("target", "034219", "field 'target': expected 32 bytes (64 hex digits), got 3"),
        ("curtime", "1713571767", "field 'curtime' is '1713571767'; wrong type"),
        ("mintime", 1.5, "field 'mintime' is 1.5; wrong type"),
        ("mintime", None, "field 'mintime' is None; wrong type"),
        ("mintime", False, "field 'mintime' is False; wrong type"),
        ("coinbasevalue", Decimal("3.125"), "field 'coinbasevalue' is Decimal('3.125')"),
        ("coinbasevalue", -1, "negative height or coinbasevalue"),
        ("height", -1, "negative height or coinbasevalue"),
        ("transactions", {}, "field 'transactions' is {}; wrong type"),
        ("rules", "segwit", "field 'rules' is 'segwit'; expected a list"),
        (
            "default_witness_commitment",
            "6a24aa21a9ed",
            "default_witness_commitment '6a24aa21a9ed' is not an OP_RETURN commitment",
        ),
        (
            "default_witness_commitment",
            "0014" + "00" * 36,
            "is not an OP_RETURN commitment",
        ),
        ("default_witness_commitment", "6a24aa21a9edzz", "'default_witness_commitment': not hex"),
    ],
)
def test_wrong_field(name: str, value: Any, fragment: str) -> None:
    answer = core_template()
    answer[name] = value
    with pytest.raises(TemplateError) as info:
        parse_template(answer)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("index", "key", "value", "fragment"),
    [
        (0, "data", None, "field 'transactions[0].data': expected hex text, got null"),
        (1, "data", "0x00", "field 'transactions[1].data': not hex"),
        (0, "txid", None, "field 'transactions[0].txid': expected hex text, got null"),
        (
            1,
            "txid",
            "ab" * 31,
            "field 'transactions[1].txid': expected 32 bytes (64 hex digits), got 31",
        ),
        (
            1,
            "hash",
            "ab" * 33,
            "field 'transactions[1].hash': expected 32 bytes (64 hex digits), got 33",
        ),
        (0, "fee", "15000", "transactions[0].fee is '15000'"),
        (1, "fee", True, "transactions[1].fee is True"),
        (1, "fee", 0.5, "transactions[1].fee is 0.5"),
    ],
)
def test_wrong_transaction_field(index: int, key: str, value: Any, fragment: str) -> None:
    answer = core_template()
    answer["transactions"][index][key] = value
    with pytest.raises(TemplateError) as info:
        parse_template(answer)
    assert fragment in str(info.value)


def test_transaction_not_an_object() -> None:
    answer = core_template()
    answer["transactions"].append("00")
    with pytest.raises(TemplateError, match=r"transactions\[2\] is not an object"):
        parse_template(answer)


@pytest.mark.parametrize(("answer", "kind"), [([], "list"), (None, "NoneType"), ("x", "str")])
def test_answer_not_an_object(answer: Any, kind: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(answer)
    assert str(info.value) == f"getblocktemplate answered {kind}, not an object"


def test_template_error_is_a_bad_node_answer() -> None:
    assert issubclass(TemplateError, BadNodeAnswer)
    assert issubclass(TemplateError, NodeError)


# --- requests -------------------------------------------------------------------------------


def test_template_request() -> None:
    assert template_request(True) == {"rules": ["segwit"]}
    assert template_request(False) == {"rules": []}
    assert template_request(True, "abc123") == {"rules": ["segwit"], "longpollid": "abc123"}
    assert template_request(False, "abc123") == {"rules": [], "longpollid": "abc123"}


class FakeRPC:
    """Answers calls in order from a list; an exception in the list is raised."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, tuple[Any, ...], float | None]] = []

    def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        self.calls.append((method, params, timeout_s))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_fetch_template_sends_the_request_and_parses() -> None:
    rpc = FakeRPC(core_template())
    t = fetch_template(rpc, True, "lp-1", timeout_s=5.0)  # type: ignore[arg-type]
    assert rpc.calls == [("getblocktemplate", ({"rules": ["segwit"], "longpollid": "lp-1"},), 5.0)]
    assert t.height == 840_000


def test_fetch_template_refuses_a_bad_answer() -> None:
    with pytest.raises(TemplateError, match="answer has no 'height'"):
        fetch_template(FakeRPC({"version": 1}), False)  # type: ignore[arg-type]


def test_detect_segwit_on_a_segwit_node() -> None:
    rpc = FakeRPC(core_template())
    assert detect_segwit(rpc) is True  # type: ignore[arg-type]
    assert [c[1] for c in rpc.calls] == [({"rules": ["segwit"]},)]


def test_detect_segwit_on_a_node_that_refuses_the_rule() -> None:
    refused = NodeRPCError("getblocktemplate", -8, "Unknown rule")
    rpc = FakeRPC(refused, bcoin_template())
    assert detect_segwit(rpc) is False  # type: ignore[arg-type]
    assert [c[1] for c in rpc.calls] == [({"rules": ["segwit"]},), ({"rules": []},)]


def test_detect_segwit_on_a_node_that_ignores_the_rule() -> None:
    # Bitcoin SV answers the segwit request with a plain template: no rule, no commitment.
    assert detect_segwit(FakeRPC(bcoin_template())) is False  # type: ignore[arg-type]


def test_detect_segwit_raises_the_first_error_when_both_fail() -> None:
    first = NodeRPCError("getblocktemplate", -8, "Unknown rule")
    second = NodeRPCError("getblocktemplate", -10, "Bitcoin is downloading blocks...")
    with pytest.raises(NodeRPCError) as info:
        detect_segwit(FakeRPC(first, second))  # type: ignore[arg-type]
    assert info.value is first


# --- SubmitResult and amounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "accepted", "reason"),
    [
        (None, True, None),
        ("", True, None),
        ("rejected: bad-txnmrklroot", False, "bad-txnmrklroot"),
        ("bad-txnmrklroot", False, "bad-txnmrklroot"),
        ("Rejected: high-hash", False, "high-hash"),
        ("  bad-cb-amount\n", False, "bad-cb-amount"),
    ],
)
def test_submit_result(answer: Any, accepted: bool, reason: str | None) -> None:
    assert SubmitResult.from_answer(answer) == SubmitResult(accepted, reason)


@pytest.mark.parametrize("answer", [0, 1, True, {"result": None}, ["bad"]])
def test_submit_result_of_a_non_text_answer(answer: Any) -> None:
    with pytest.raises(BadNodeAnswer, match="expected null or a reason"):
        SubmitResult.from_answer(answer)


@pytest.mark.parametrize("answer", ["rejected:", "rejected: "])
def test_bare_rejected_is_a_rejection(answer: str) -> None:
    assert SubmitResult.from_answer(answer).accepted is False


@pytest.mark.parametrize(
    ("amount", "satoshis"),
    [
        (Decimal("50.00000000"), 5_000_000_000),
        (Decimal("3.125"), 312_500_000),
        (Decimal("0.00000001"), 1),
        (Decimal("20999999.97690000"), 2_099_999_997_690_000),
        (Decimal("0"), 0),
        (21, 2_100_000_000),
        ("0.1", 10_000_000),
    ],
)
def test_to_satoshis(amount: Decimal | int | str, satoshis: int) -> None:
    result = to_satoshis(amount)
    assert result == satoshis
    assert type(result) is int


@pytest.mark.parametrize("amount", [Decimal("0.000000001"), Decimal("1.123456789"), "0.1234567891"])
def test_to_satoshis_refuses_fractions(amount: Decimal | str) -> None:
    with pytest.raises(BadNodeAnswer, match="not a whole number of satoshis"):
        to_satoshis(amount)


@pytest.mark.parametrize("amount", ["abc", "Infinity"])
def test_to_satoshis_refuses_non_numbers(amount: str) -> None:
    with pytest.raises(BadNodeAnswer):
        to_satoshis(amount)


# --- NodeRPC error mapping (no network: the proxy is replaced) ------------------------------

URL = "http://alice:s3cret@127.0.0.1:18443"


class FakeProxy:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        def call(*params: Any) -> Any:
            self.calls.append((method, params))
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return call


def rpc_with(outcome: Any) -> tuple[NodeRPC, FakeProxy]:
    rpc = NodeRPC(URL, timeout_s=30.0)
    proxy = FakeProxy(outcome)
    rpc._proxy = lambda: proxy  # type: ignore[method-assign]
    return rpc, proxy


def test_rpc_passes_the_answer_through() -> None:
    rpc, proxy = rpc_with({"chain": "regtest"})
    assert rpc.call("getblockchaininfo") == {"chain": "regtest"}
    assert rpc.where == "127.0.0.1:18443"
    assert rpc.redacted_url == "http://alice:***@127.0.0.1:18443"
    rpc.call("getblockhash", 0)
    assert proxy.calls == [("getblockchaininfo", ()), ("getblockhash", (0,))]


def test_rpc_error_keeps_method_code_and_message() -> None:
    rpc, _ = rpc_with(JSONRPCException({"code": -8, "message": "Block height out of range"}))
    with pytest.raises(NodeRPCError) as info:
        rpc.call("getblockhash", 10**6)
    error = info.value
    assert (error.method, error.code, error.message) == (
        "getblockhash",
        -8,
        "Block height out of range",
    )
    assert str(error) == "node answered getblockhash with error -8: Block height out of range"


def test_http_401_is_an_auth_error_without_the_password() -> None:
    rpc, _ = rpc_with(
        JSONRPCException(
            {"code": -342, "message": "non-JSON HTTP response with '401 Unauthorized' from server"}
        )
    )
    with pytest.raises(NodeAuthError) as info:
        rpc.call("getblockchaininfo")
    message = str(info.value)
    assert "s3cret" not in message
    assert "http://alice:***@127.0.0.1:18443" in message
    assert "node 127.0.0.1:18443 refused the RPC credentials" in message


def test_other_http_error_page_is_a_bad_answer() -> None:
    rpc, _ = rpc_with(
        JSONRPCException(
            {
                "code": -342,
                "message": "non-JSON HTTP response with '500 Internal Server Error' from server",
            }
        )
    )
    with pytest.raises(BadNodeAnswer, match="500 Internal Server Error") as info:
        rpc.call("getblocktemplate")
    assert not isinstance(info.value, NodeAuthError)


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (TimeoutError("timed out"), "did not answer getblocktemplate within 30 s (timed out)"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "cannot reach node 127.0.0.1:18443 (http://alice:***@127.0.0.1:18443) for "
            "getblocktemplate: ConnectionRefusedError",
        ),
        (
            http.client.RemoteDisconnected("Remote end closed connection without response"),
            "for getblocktemplate: RemoteDisconnected",
        ),
    ],
)
def test_transport_failures_are_unreachable(exc: BaseException, fragment: str) -> None:
    rpc, _ = rpc_with(exc)
    with pytest.raises(NodeUnreachable) as info:
        rpc.call("getblocktemplate")
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def test_bad_json_is_a_bad_answer() -> None:
    rpc, _ = rpc_with(ValueError("Expecting value: line 1 column 1 (char 0)"))
    with pytest.raises(BadNodeAnswer, match="answered getblockcount with bad JSON"):
        rpc.call("getblockcount")


@pytest.mark.parametrize(
    ("network", "chain"), [("main", "main"), ("test", "testnet4"), ("test", "signet")]
)
def test_check_network_accepts(network: str, chain: str) -> None:
    rpc, _ = rpc_with({"chain": chain, "blocks": 1})
    assert rpc.check_network(network) == chain


def test_check_network_refuses_another_chain() -> None:
    rpc, _ = rpc_with({"chain": "main"})
    with pytest.raises(WrongNetwork) as info:
        rpc.check_network("regtest")
    assert str(info.value) == (
        "node 127.0.0.1:18443 runs chain 'main' but the config says network 'regtest'"
    )


@pytest.mark.parametrize("info", [{"blocks": 1}, ["regtest"], {"chain": 1}])
def test_chain_name_needs_a_chain(info: Any) -> None:
    rpc, _ = rpc_with(info)
    with pytest.raises(BadNodeAnswer, match="has no 'chain'"):
        rpc.chain_name()


def test_submit_block_normalises_the_answer() -> None:
    rpc, proxy = rpc_with("rejected: bad-cb-amount")
    assert rpc.submit_block("00" * 81) == SubmitResult(False, "bad-cb-amount")
    assert proxy.calls == [("submitblock", ("00" * 81,))]
