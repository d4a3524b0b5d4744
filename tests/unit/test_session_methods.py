"""The Stratum methods of one session, in memory (docs/stratum.md): subscribe, authorize,
configure, suggest_difficulty, extranonce.subscribe, ids and reply shapes, session resume.

Each miner is a StringTransport on a StratumServer with a Clock (tests/unit/stratum_harness.py);
the listener's difficulties are the end-to-end tests' (3e-10 in [1e-11, 16]).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import TEST_DIFFICULTY, assert_accepted, assert_rejected, error_code
from tests.unit.stratum_harness import Miner, Pool, settings

START = TEST_DIFFICULTY["start"]
MIN = TEST_DIFFICULTY["min"]
MAX = TEST_DIFFICULTY["max"]


def pool(**stratum: Any) -> Pool:
    return Pool(
        settings(
            listener={"difficulty": dict(TEST_DIFFICULTY)},
            stratum={"version_mask": "1fffe000", **stratum},
            tenants=("acme", "globex"),
        )
    )


@pytest.fixture
def miner() -> Miner:
    return pool().connect()


# --- mining.subscribe ----------------------------------------------------------------------


@pytest.mark.parametrize("params", [[], ["cgminer/4.11.1"], ["cgminer/4.11.1", "0badc0de"]])
def test_subscribe_param_shapes_and_result(miner: Miner, params: list[str]) -> None:
    reply = miner.request("mining.subscribe", params)
    assert reply["error"] is None, reply
    subscriptions, extranonce1, extranonce2_size = reply["result"]
    assert isinstance(extranonce1, str) and len(extranonce1) == 8
    assert bytes.fromhex(extranonce1) and extranonce1 == extranonce1.lower()
    assert subscriptions == [
        ["mining.set_difficulty", extranonce1],
        ["mining.notify", extranonce1],
    ]
    assert extranonce2_size == 4
    # Subscribing again gives the same answer (no second extranonce1).
    assert miner.request("mining.subscribe", params)["result"] == reply["result"]


def test_extranonce1_is_unique_per_connection() -> None:
    farm = pool()
    values = {farm.connect().subscribe("t/1")[1] for _ in range(6)}
    assert len(values) == 6


def test_resume_with_old_session_id_gets_the_same_extranonce1() -> None:
    farm = pool()
    first = farm.connect()
    session_id = first.subscribe("cgminer/4.11.1")[1]
    assert session_id == first.extranonce1.hex()
    first.hang_up()
    again = farm.connect()
    again.subscribe("cgminer/4.11.1", session_id)
    assert again.extranonce1 == first.extranonce1
    # While that connection holds it, another one asking for it gets a different one.
    third = farm.connect()
    third.subscribe("cgminer/4.11.1", session_id)
    assert third.extranonce1 != first.extranonce1
    # Not hex, or not one of ours in size: a new extranonce1, no error.
    for bogus in ("not-hex", "00"):
        other = farm.connect()
        other.subscribe("cgminer/4.11.1", bogus)
        assert len(other.extranonce1) == 4 and other.extranonce1 != first.extranonce1


# --- mining.authorize and the start of work ----------------------------------------------


def test_authorize_known_tenant_true_unknown_false_with_24(miner: Miner) -> None:
    miner.subscribe("t/1")
    bad = miner.request("mining.authorize", ["nobody.rig1", "x"])
    assert bad["result"] is False and error_code(bad) == 24, bad
    assert miner.pushes == [], "an unknown tenant must not start work"
    good = miner.request("mining.authorize", ["acme.rig1", "x"])
    assert good == {"id": good["id"], "result": True, "error": None}
    # A worker name without a dot is the tenant's default worker.
    other = miner.pool.connect()
    other.subscribe()
    assert other.request("mining.authorize", ["globex", "x"])["result"] is True
    assert other.session.workers["globex"].worker == "default"


def test_subscribe_then_authorize_gives_difficulty_then_clean_job(miner: Miner) -> None:
    miner.start()
    assert [m["method"] for m in miner.pushes] == ["mining.set_difficulty", "mining.notify"]
    assert miner.difficulties == [START]
    [notify] = [m for m in miner.pushes if m["method"] == "mining.notify"]
    params = notify["params"]
    assert notify["id"] is None and len(params) == 9 and params[8] is True, notify
    for index in (5, 6, 7):
        assert len(params[index]) == 8 and int(params[index], 16) >= 0
    assert params == miner.pool.job.notify_params(clean=True)


def test_authorize_before_subscribe_starts_work_on_subscribe(miner: Miner) -> None:
    assert miner.request("mining.authorize", ["acme.rig1", "x"])["result"] is True
    assert miner.pushes == [], "no work before subscribe"
    miner.subscribe("t/1")
    assert [m["method"] for m in miner.pushes] == ["mining.set_difficulty", "mining.notify"]
    assert miner.notifies[0][8] is True


def test_several_workers_on_one_session(miner: Miner) -> None:
    miner.start("acme.rig1")
    assert miner.request("mining.authorize", ["globex.proxy7", "x"])["result"] is True
    share = miner.find_share(miner.accepted)
    assert_accepted(miner.submit(["acme.rig1", *share[1:]]))
    assert_accepted(miner.submit(["globex.proxy7", *miner.find_share(miner.accepted)[1:]]))
    assert_rejected(miner.submit(["acme.rig2", *miner.find_share(miner.accepted)[1:]]), 24)
    assert miner.pool.sink.shares == {("acme", "rig1"): 1, ("globex", "proxy7"): 1}


@pytest.mark.parametrize(
    ("password", "expected"),
    [("x,d=0.5", 0.5), ("d=1000", MAX), ("x d=1e-20", MIN), ("x;d=4", 4.0)],
)
def test_password_fixes_difficulty_clamped_to_the_port(
    miner: Miner, password: str, expected: float
) -> None:
    miner.start("acme.rig1", password)
    assert miner.difficulties == [expected]
    # Whole numbers go out without a fraction (some firmware cares).
    [line] = [x for x in miner.lines if b'"method":"mining.set_difficulty"' in x]
    assert b".0]" not in line, line
    # Fixed: suggest_difficulty no longer moves it.
    assert miner.request("mining.suggest_difficulty", [0.25])["result"] is True
    assert miner.difficulties == [expected] and miner.session.difficulty == expected


def test_password_difficulty_after_work_started_is_pushed(miner: Miner) -> None:
    miner.start()
    assert miner.difficulties == [START]
    assert miner.request("mining.authorize", ["acme.rig2", "x,d=2"])["result"] is True
    assert miner.difficulties == [START, 2.0]


# --- mining.configure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"version-rolling": True, "version-rolling.mask": "1fffe000"}),
        (
            {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2},
            {"version-rolling": True, "version-rolling.mask": "1fffe000"},
        ),
        (
            {"version-rolling.mask": "00ffff00", "version-rolling.min-bit-count": 11},
            {"version-rolling": True, "version-rolling.mask": "00ffe000"},
        ),
        (
            {"version-rolling.mask": "00ffff00", "version-rolling.min-bit-count": 12},
            {"version-rolling": False},
        ),
        (
            {"version-rolling.mask": "e0001fff", "version-rolling.min-bit-count": 1},
            {"version-rolling": False},
        ),
    ],
)
def test_configure_version_rolling_mask_is_pool_and_miner(
    miner: Miner, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    # Before subscribe, as Antminer and Whatsminer firmware do.
    assert miner.request("mining.configure", [["version-rolling"], options])["result"] == expected


def test_configure_before_subscribe_then_rolled_versions_are_accepted(miner: Miner) -> None:
    reply = miner.request(
        "mining.configure",
        [
            ["version-rolling", "subscribe-extranonce", "x-unknown-extension"],
            {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2},
        ],
    )
    assert reply["result"] == {
        "version-rolling": True,
        "version-rolling.mask": "1fffe000",
        "subscribe-extranonce": True,
        "x-unknown-extension": False,
    }
    miner.start()
    assert_accepted(miner.submit(miner.find_share(miner.accepted, version_bits=0x1FFFE000)))
    assert_accepted(miner.submit(miner.find_share(miner.accepted, version_bits=0x00002000)))
    # Bits outside the negotiated mask are an invalid share (20), the session goes on.
    outside = miner.find_share(miner.accepted, version_bits=0x00002000)
    for bits in ("00001000", "20000000", "ffffffff"):
        assert_rejected(miner.submit([*outside[:5], bits]), 20)
    assert_accepted(miner.submit(miner.find_share(miner.accepted, version_bits=0)))
    assert miner.pool.sink.shares.total() == 3


def configure_floor(miner: Miner, value: Any) -> dict[str, Any]:
    reply = miner.request(
        "mining.configure", [["minimum-difficulty"], {"minimum-difficulty.value": value}]
    )
    result: dict[str, Any] = reply["result"]
    return result


def test_configure_minimum_difficulty_raises_the_floor(miner: Miner) -> None:
    assert configure_floor(miner, 0.5) == {"minimum-difficulty": True}
    miner.start()
    assert miner.difficulties == [0.5]
    assert miner.request("mining.suggest_difficulty", [0.001])["result"] is True
    assert miner.difficulties == [0.5], "suggest_difficulty went below minimum-difficulty"
    assert miner.request("mining.suggest_difficulty", [2])["result"] is True
    assert miner.difficulties == [0.5, 2.0]
    # After work started: a higher floor moves the difficulty up at once.
    assert configure_floor(miner, 8) == {"minimum-difficulty": True}
    assert miner.difficulties[-1] == 8.0
    # A floor above the port's maximum is the maximum.
    assert configure_floor(miner, 1e6) == {"minimum-difficulty": True}
    assert miner.difficulties[-1] == MAX
    # Not a positive number: false.
    assert configure_floor(miner, "x") == {"minimum-difficulty": False}
    assert miner.difficulties == [0.5, 2.0, 8.0, MAX]


def test_extranonce_subscribe_and_subscribe_extranonce(miner: Miner) -> None:
    miner.subscribe("t/1")
    reply = miner.request("mining.extranonce.subscribe", [])
    assert reply == {"id": reply["id"], "result": True, "error": None}
    configure = miner.request("mining.configure", [["subscribe-extranonce"], {}])
    assert configure["result"] == {"subscribe-extranonce": True}
    assert miner.request("mining.configure", [["made-up"], {}])["result"] == {"made-up": False}


# --- mining.suggest_difficulty ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("suggested", "expected"), [(1e-20, MIN), (0.125, 0.125), (1e9, MAX), (4, 4.0)]
)
def test_suggest_difficulty_before_authorize_is_clamped(
    miner: Miner, suggested: float, expected: float
) -> None:
    assert miner.request("mining.suggest_difficulty", [suggested])["result"] is True
    miner.start()
    assert miner.difficulties == [expected]


def test_suggest_difficulty_after_authorize_is_clamped_and_pushed(miner: Miner) -> None:
    miner.start()
    for suggested, expected in [(1e9, MAX), (1e-20, MIN), (0.25, 0.25)]:
        assert miner.request("mining.suggest_difficulty", [suggested])["result"] is True
        assert miner.difficulties[-1] == expected
    assert error_code(miner.request("mining.suggest_difficulty", [-1])) == 20
    assert miner.difficulties == [START, MAX, MIN, 0.25]


def test_unknown_method_is_error_20_and_session_goes_on(miner: Miner) -> None:
    reply = miner.request("mining.get_transactions", ["1"])
    assert error_code(reply) == 20 and "Unknown method" in reply["error"][1], reply
    miner.start()
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


# --- ids and reply shape ----------------------------------------------------------------------


def test_ids_of_any_type_are_echoed_and_replies_have_result_and_error(miner: Miner) -> None:
    sub, auth = miner.send_raw(
        b'{"id": "mining.subscribe", "method": "mining.subscribe", "params": ["t/1"]}\n'
        b'{"id": 7, "jsonrpc": "2.0", "method": "mining.authorize", "params": ["acme.r", "x"]}\n'
        + b'{"id": 8, "jsonrpc": "2.0", "method": "mining.extranonce.subscribe"}\n'
    )[:2]
    assert sub["id"] == "mining.subscribe" and sub["error"] is None and len(sub["result"]) == 3
    miner.extranonce1 = bytes.fromhex(sub["result"][1])
    assert auth == {"id": 7, "result": True, "error": None}
    # cpuminer: one repeated id for every submit; stratum-client: the id "mining.submit".
    first, second = (
        miner.find_share(miner.accepted),
        miner.find_share(miner.accepted, extranonce2=b"\1" * 4),
    )
    batch = b"".join(
        json.dumps({"id": 4, "method": "mining.submit", "params": p}).encode() + b"\n"
        for p in (first, second)
    )
    assert [m for m in miner.send_raw(batch) if "method" not in m] == [
        {"id": 4, "result": True, "error": None},
        {"id": 4, "result": True, "error": None},
    ]
    third = miner.find_share(miner.accepted, extranonce2=b"\2" * 4)
    reply = miner.request("mining.submit", third, request_id="mining.submit")
    assert reply == {"id": "mining.submit", "result": True, "error": None}
    reply = miner.request("mining.submit", third, request_id=None)
    assert reply["id"] is None and error_code(reply) == 22
    for request_id in (1.5, {"a": [1]}, [2]):
        reply = miner.request("mining.extranonce.subscribe", [], request_id=request_id)
        assert reply == {"id": request_id, "result": True, "error": None}
    # Every reply, success or error, carries both keys in the raw text.
    replies = [line for line in miner.lines if b'"method"' not in line]
    assert len(replies) == 10
    for line in replies:
        assert set(json.loads(line)) == {"id", "result", "error"}, line
        assert b'"result":' in line.replace(b" ", b"") and b'"error":' in line.replace(b" ", b"")


def test_a_reply_from_the_miner_is_ignored(miner: Miner) -> None:
    assert (
        miner.send_raw(b'{"id": 9, "result": true, "error": null}\n{"id": 10, "result": null}\n')
        == []
    )
    reply = miner.request("mining.subscribe", [], request_id=11)
    assert reply["error"] is None
    assert [json.loads(x)["id"] for x in miner.lines] == [11], miner.lines
    assert miner.session.invalid_score == 0
