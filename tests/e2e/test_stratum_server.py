"""`farmpool serve` against a real bcoin regtest node, driven by a raw-socket test miner.

One server process for the module (a listener with vardiff off, so only the tests change
difficulties; generous ban limits, since every connection here comes from 127.0.0.1). The
checks follow docs/stratum.md: every method and extension, ids, session resume, every reject
code, malformed input. Shares are found by hashing (see stratum_client.py): the main port's
start difficulty 3e-10 puts the share target at ~0.78 * 2**256 and regtest's network target
at ~0.5 * 2**256, so a share below difficulty, an accepted share and a block each take a few
hashes; no test here submits a block.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pool.hashing import difficulty_to_target
from tests.e2e.farmpool_serve import ServeProcess
from tests.e2e.stratum_client import StratumClient

START = 3e-10
MIN = 1e-11
MAX = 16.0
GRACE_S = 2.0
MAX_LINE = 1024
POOL_MASK = 0x1FFFE000


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    config["listeners"] = [
        {
            "name": "main",
            "site": "north",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": {"start": START, "min": MIN, "max": MAX},
            "vardiff": {"enabled": False},
        },
    ]
    config["stratum"] = {
        "version_mask": f"{POOL_MASK:08x}",
        "max_line_bytes": MAX_LINE,
        "difficulty_grace_s": GRACE_S,
        "ban": {"invalid_shares": 1_000_000, "window_s": 60, "ban_s": 1},
    }
    return serve_factory(config)


@pytest.fixture
def connect(server: ServeProcess) -> Iterator[Callable[..., StratumClient]]:
    """Open test-miner connections to the main port; all are closed after the test."""
    clients: list[StratumClient] = []

    def open_client(**kw: Any) -> StratumClient:
        client = StratumClient(server.port("main"), log=server.log_tail, **kw)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
    assert server.running(), f"farmpool serve died:\n{server.log_tail()}"


def error_code(reply: dict[str, Any]) -> int | None:
    error = reply["error"]
    if error is None:
        return None
    assert isinstance(error, list) and len(error) == 3, f"error is not [code, msg, null]: {reply}"
    assert isinstance(error[1], str) and error[2] is None, reply
    return int(error[0])


def assert_rejected(reply: dict[str, Any], code: int) -> None:
    assert error_code(reply) == code, f"expected error {code}, got {reply}"
    assert reply["result"] in (None, False), reply


def assert_accepted(reply: dict[str, Any]) -> None:
    assert reply["result"] is True and reply["error"] is None, f"share not accepted: {reply}"


# --- mining.subscribe ----------------------------------------------------------------------


@pytest.mark.parametrize("params", [[], ["cgminer/4.11.1"], ["cgminer/4.11.1", "0badc0de"]])
def test_subscribe_param_shapes_and_result(
    connect: Callable[..., StratumClient], params: list[str]
) -> None:
    client = connect()
    reply = client.request("mining.subscribe", params)
    assert reply["error"] is None, reply
    result = reply["result"]
    assert isinstance(result, list) and len(result) == 3, result
    subscriptions, extranonce1, extranonce2_size = result
    assert isinstance(extranonce1, str) and len(extranonce1) == 8
    assert bytes.fromhex(extranonce1) and extranonce1 == extranonce1.lower()
    assert subscriptions == [
        ["mining.set_difficulty", extranonce1],
        ["mining.notify", extranonce1],
    ]
    assert extranonce2_size == 4
    # Subscribing again gives the same answer (no second extranonce1).
    assert client.call("mining.subscribe", params) == result


def test_extranonce1_is_unique_per_connection(connect: Callable[..., StratumClient]) -> None:
    values = set()
    for _ in range(6):
        client = connect()
        client.subscribe("e2e/1")
        values.add(client.extranonce1)
    assert len(values) == 6


# --- mining.authorize and the start of work ----------------------------------------------


def test_authorize_known_tenant_true_unknown_false_with_24(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.subscribe("e2e/1")
    bad = client.authorize("nobody.rig1", "x")
    assert bad["result"] is False and error_code(bad) == 24, bad
    client.poll(0.3)
    assert client.pushes == [], "an unknown tenant must not start work"
    good = client.authorize("acme.rig1", "x")
    assert good["result"] is True and good["error"] is None, good
    # A worker name without a dot is the tenant's default worker.
    other = connect()
    other.subscribe()
    assert other.authorize("globex", "x")["result"] is True


def test_subscribe_then_authorize_gives_difficulty_then_clean_job(
    connect: Callable[..., StratumClient], server: ServeProcess
) -> None:
    client = connect()
    client.subscribe("e2e/1")
    assert client.authorize()["result"] is True
    client.push("mining.notify")
    methods = [m["method"] for m in client.all_pushes]
    assert methods == ["mining.set_difficulty", "mining.notify"], client.lines
    assert client.all_pushes[0]["params"] == [START]
    notify = client.all_pushes[1]
    params = notify["params"]
    assert len(params) == 9 and params[8] is True, notify
    assert notify["id"] is None
    for index in (5, 6, 7):
        assert len(params[index]) == 8 and int(params[index], 16) >= 0
    assert len(params[1]) == 64
    current = server.jobs()[-1]
    assert params[0] == current["job_id"]
    assert re.fullmatch(r"[0-9a-f]{1,8}", params[0]), params[0]


def test_authorize_before_subscribe_starts_work_on_subscribe(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    assert client.authorize()["result"] is True
    client.poll(0.3)
    assert client.pushes == [], "no work before subscribe"
    client.subscribe("e2e/1")
    client.push("mining.notify")
    assert [m["method"] for m in client.all_pushes] == ["mining.set_difficulty", "mining.notify"]
    assert client.job is not None and client.job.clean


def test_several_workers_on_one_session(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.start("acme.rig1")
    assert client.authorize("globex.proxy7")["result"] is True
    assert_accepted(client.submit(client.find_accepted(), worker="acme.rig1"))
    assert_accepted(client.submit(client.find_accepted(), worker="globex.proxy7"))
    assert_rejected(client.submit(client.find_accepted(), worker="acme.rig2"), 24)


@pytest.mark.parametrize(
    ("password", "expected"),
    [("x,d=0.5", 0.5), ("d=1000", MAX), ("x d=1e-20", MIN), ("x;d=4", 4.0)],
)
def test_password_fixes_difficulty_clamped_to_the_port(
    connect: Callable[..., StratumClient], password: str, expected: float
) -> None:
    client = connect()
    client.start("acme.rig1", password)
    assert client.difficulties == [expected]
    # Whole numbers go out without a fraction (some firmware cares).
    [line] = [x for x in client.lines if b'"method":"mining.set_difficulty"' in x]
    assert (b".0]" in line) is False, line
    # Fixed: suggest_difficulty no longer moves it.
    assert client.call("mining.suggest_difficulty", [0.25]) is True
    client.poll(0.2)
    assert client.difficulties == [expected]


def test_password_difficulty_after_work_started_is_pushed(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.start()
    assert client.difficulties == [START]
    assert client.authorize("acme.rig2", "x,d=2")["result"] is True
    client.push("mining.set_difficulty")
    assert client.difficulties == [START, 2.0]


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
    connect: Callable[..., StratumClient], options: dict[str, Any], expected: dict[str, Any]
) -> None:
    client = connect()
    # Before subscribe, as Antminer and Whatsminer firmware do.
    result = client.configure(["version-rolling"], options)
    assert result == expected


def test_configure_before_subscribe_then_rolled_versions_are_accepted(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    result = client.configure(
        ["version-rolling", "subscribe-extranonce", "x-unknown-extension"],
        {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2},
    )
    assert result == {
        "version-rolling": True,
        "version-rolling.mask": "1fffe000",
        "subscribe-extranonce": True,
        "x-unknown-extension": False,
    }
    client.start()
    share = client.find_accepted(version_bits=0x1FFFE000)
    assert_accepted(client.submit(share))
    assert_accepted(client.submit(client.find_accepted(version_bits=0x00002000)))
    # Bits outside the negotiated mask are an invalid share (20), the session goes on.
    outside = client.find_accepted(version_bits=0x00002000).params(client.worker)
    for bits in ("00001000", "20000000", "ffffffff"):
        outside[5] = bits
        assert_rejected(client.request("mining.submit", outside), 20)
    assert_accepted(client.submit(client.find_accepted(version_bits=0)))


def test_configure_minimum_difficulty_raises_the_floor(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    result = client.configure(["minimum-difficulty"], {"minimum-difficulty.value": 0.5})
    assert result == {"minimum-difficulty": True}
    client.start()
    assert client.difficulties == [0.5]
    assert client.call("mining.suggest_difficulty", [0.001]) is True
    client.poll(0.2)
    assert client.difficulty == 0.5, "suggest_difficulty went below minimum-difficulty"
    assert client.call("mining.suggest_difficulty", [2]) is True
    client.push("mining.set_difficulty")
    assert client.difficulty == 2.0
    # After work started: a higher floor moves the difficulty up at once.
    assert client.configure(["minimum-difficulty"], {"minimum-difficulty.value": 8}) == {
        "minimum-difficulty": True
    }
    client.push("mining.set_difficulty")
    assert client.difficulty == 8.0
    # A floor above the port's maximum is the maximum.
    assert client.configure(["minimum-difficulty"], {"minimum-difficulty.value": 1e6})
    client.push("mining.set_difficulty")
    assert client.difficulty == MAX
    # Not a positive number: false.
    assert client.configure(["minimum-difficulty"], {"minimum-difficulty.value": "x"}) == {
        "minimum-difficulty": False
    }


def test_extranonce_subscribe_and_subscribe_extranonce(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.subscribe("e2e/1")
    reply = client.request("mining.extranonce.subscribe", [])
    assert reply == {"id": reply["id"], "result": True, "error": None}
    assert client.configure(["subscribe-extranonce"], {}) == {"subscribe-extranonce": True}
    assert client.configure(["made-up"], {}) == {"made-up": False}


# --- mining.suggest_difficulty ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("suggested", "expected"), [(1e-20, MIN), (0.125, 0.125), (1e9, MAX), (4, 4.0)]
)
def test_suggest_difficulty_before_authorize_is_clamped(
    connect: Callable[..., StratumClient], suggested: float, expected: float
) -> None:
    client = connect()
    assert client.call("mining.suggest_difficulty", [suggested]) is True
    client.start()
    assert client.difficulties == [expected]


def test_suggest_difficulty_after_authorize_is_clamped_and_pushed(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.start()
    for suggested, expected in [(1e9, MAX), (1e-20, MIN), (0.25, 0.25)]:
        assert client.call("mining.suggest_difficulty", [suggested]) is True
        client.push("mining.set_difficulty")
        assert client.difficulty == expected
    reply = client.request("mining.suggest_difficulty", [-1])
    assert error_code(reply) == 20, reply


def test_unknown_method_is_error_20_and_session_goes_on(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    reply = client.request("mining.get_transactions", ["1"])
    assert error_code(reply) == 20 and "Unknown method" in reply["error"][1], reply
    client.start()
    assert_accepted(client.submit(client.find_accepted()))


# --- ids and reply shape ----------------------------------------------------------------------


def test_ids_of_any_type_are_echoed_and_replies_have_result_and_error(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.send_raw(
        b'{"id": "mining.subscribe", "method": "mining.subscribe", "params": ["e2e/1"]}\n'
        b'{"id": 7, "jsonrpc": "2.0", "method": "mining.authorize", "params": ["acme.r", "x"]}\n'
    )
    sub = client.reply("mining.subscribe")
    assert sub["error"] is None and len(sub["result"]) == 3
    client.extranonce1 = bytes.fromhex(sub["result"][1])
    client.extranonce2_size = sub["result"][2]
    assert client.reply(7) == {"id": 7, "result": True, "error": None}
    client.worker = "acme.r"
    client.push("mining.notify")
    first, second = client.find_accepted(), client.find_accepted()
    # cpuminer: one repeated id for every submit; stratum-client: the id "mining.submit".
    batch = b""
    for share in (first, second):
        message = {"id": 4, "method": "mining.submit", "params": share.params("acme.r")}
        batch += json.dumps(message).encode() + b"\n"
    client.send_raw(batch)
    assert client.reply(4) == {"id": 4, "result": True, "error": None}
    assert client.reply(4) == {"id": 4, "result": True, "error": None}
    share = client.find_accepted()
    reply = client.request("mining.submit", share.params("acme.r"), request_id="mining.submit")
    assert reply == {"id": "mining.submit", "result": True, "error": None}
    reply = client.request("mining.submit", share.params("acme.r"), request_id=None)
    assert reply["id"] is None and error_code(reply) == 22
    reply = client.request("mining.extranonce.subscribe", [], request_id=1.5)
    assert reply == {"id": 1.5, "result": True, "error": None}
    reply = client.request("mining.extranonce.subscribe", [], request_id={"a": [1]})
    assert reply == {"id": {"a": [1]}, "result": True, "error": None}
    # Every reply, success or error, carries both keys in the raw text.
    replies = [json.loads(line) for line in client.lines]
    replies = [m for m in replies if "method" not in m]
    assert len(replies) == 8
    for line in client.lines:
        message = json.loads(line)
        if "method" in message:
            continue
        assert set(message) == {"id", "result", "error"}, line
        assert b'"result":' in line.replace(b" ", b"") and b'"error":' in line.replace(b" ", b"")


def test_a_reply_from_the_miner_is_ignored(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.send_raw(b'{"id": 9, "result": true, "error": null}\n{"id": 10, "result": null}\n')
    reply = client.request("mining.subscribe", [], request_id=11)
    assert reply["error"] is None
    assert [json.loads(x)["id"] for x in client.lines] == [11], client.lines


# --- session resume ---------------------------------------------------------------------------


def test_resume_with_old_session_id_gets_the_same_extranonce1(
    connect: Callable[..., StratumClient],
) -> None:
    first = connect()
    first.subscribe("cgminer/4.11.1")
    session_id, extranonce1 = first.session_id, first.extranonce1
    assert session_id == extranonce1.hex()
    first.close()
    time.sleep(0.3)  # let the server see the close
    again = connect()
    result = again.subscribe("cgminer/4.11.1", session_id)
    assert again.extranonce1 == extranonce1, result
    # While that connection holds it, another one asking for it gets a different one.
    third = connect()
    third.subscribe("cgminer/4.11.1", session_id)
    assert third.extranonce1 != extranonce1
    # Not hex, or not one of ours in size: a new extranonce1, no error.
    for bogus in ("not-hex", "00"):
        other = connect()
        other.subscribe("cgminer/4.11.1", bogus)
        assert len(other.extranonce1) == 4 and other.extranonce1 != extranonce1


# --- share checks, in order ----------------------------------------------------------------


def test_submit_before_subscribe_is_25(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    assert client.authorize()["result"] is True
    reply = client.request("mining.submit", ["acme.rig1", "1", "00000000", "00000000", "0"])
    assert_rejected(reply, 25)
    client.start()
    assert_accepted(client.submit(client.find_accepted()))


def test_unauthorized_worker_is_24(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.subscribe("e2e/1")
    reply = client.request("mining.submit", ["acme.rig1", "1", "00000000", "5f000000", "0"])
    assert_rejected(reply, 24)
    client.start("acme.rig1")
    share = client.find_accepted()
    assert_rejected(client.submit(share, worker="acme.rig9"), 24)
    assert_rejected(client.submit(share, worker="globex.rig1"), 24)
    assert_accepted(client.submit(share))


def test_malformed_submits_are_20_and_the_session_goes_on(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.start()
    job = client.job
    assert job is not None
    share = client.find_accepted()
    w, j, en2, ntime, nonce = share.params(client.worker)
    far = f"{int(time.time()) + 7200 + 600:08x}"
    cases: list[tuple[str, list[Any]]] = [
        ("4 params", [w, j, en2, ntime]),
        ("7 params", [w, j, en2, ntime, nonce, "00000000", "x"]),
        ("no params", []),
        ("nonce not text", [w, j, en2, ntime, int(nonce, 16)]),
        ("job id not text", [w, 5, en2, ntime, nonce]),
        ("extranonce2 3 bytes", [w, j, en2[:6], ntime, nonce]),
        ("extranonce2 5 bytes", [w, j, en2 + "00", ntime, nonce]),
        ("extranonce2 not hex", [w, j, "zzzzzzzz", ntime, nonce]),
        ("ntime 7 digits", [w, j, en2, ntime[1:], nonce]),
        ("ntime not hex", [w, j, en2, "zzzzzzzz", nonce]),
        ("ntime before mintime", [w, j, en2, "00000000", nonce]),
        ("ntime too far ahead", [w, j, en2, far, nonce]),
        ("nonce not hex", [w, j, en2, ntime, "zzzzzzzz"]),
        ("nonce 9 digits", [w, j, en2, ntime, "0" + nonce]),
        ("version bits without configure", [w, j, en2, ntime, nonce, "00002000"]),
        ("version bits not hex", [w, j, en2, ntime, nonce, "zzzzzzzz"]),
    ]
    for name, params in cases:
        reply = client.request("mining.submit", params)
        assert error_code(reply) == 20, f"{name}: {reply}"
        assert reply["result"] is None, f"{name}: {reply}"
    # The untouched share is still good: nothing above was counted or closed the session.
    assert_accepted(client.submit(share))


def test_ntime_within_range_is_accepted(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    job = client.start()
    ahead = int(time.time()) + 7200 - 60
    assert_accepted(client.submit(client.find_accepted(ntime=ahead)))
    assert_accepted(client.submit(client.find_accepted(ntime=job.ntime + 1)))


def test_unknown_job_is_21(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.start()
    share = client.find_accepted()
    params = share.params(client.worker)
    params[1] = "deadbeef0"
    assert_rejected(client.request("mining.submit", params), 21)
    assert_accepted(client.submit(share))


def test_duplicate_is_22_also_in_upper_case(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.configure(["version-rolling"], {"version-rolling.mask": "1fffe000"})
    client.start()
    share = client.find_accepted(version_bits=0x1ABCE000)
    assert share.version_bits is not None
    assert any(c in "abcdef" for c in share.extranonce2 + share.nonce + share.version_bits)
    assert_accepted(client.submit(share))
    assert_rejected(client.submit(share), 22)
    upper = [p.upper() if i >= 2 else p for i, p in enumerate(share.params(client.worker))]
    assert upper != share.params(client.worker)
    assert_rejected(client.request("mining.submit", upper), 22)
    assert_accepted(client.submit(client.find_accepted()))


def test_low_difficulty_is_23_and_accepted_share_true(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.start()
    target = difficulty_to_target(START)
    low = client.find_low()
    assert low.value > target
    assert_rejected(client.submit(low), 23)
    good = client.find_accepted()
    assert good.value <= target
    assert_accepted(client.submit(good))
    # The low share was not recorded: sending it again is still low, not a duplicate.
    assert_rejected(client.submit(low), 23)


def test_previous_difficulty_is_accepted_within_the_grace_window(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    job = client.start()
    old_target = client.share_target()
    older_share = client.find(lambda v: v > old_target, job=job)  # below even the old one
    assert client.call("mining.suggest_difficulty", [4e-10]) is True
    client.push("mining.set_difficulty")
    new_target = client.share_target()
    assert job.network_target < new_target < old_target

    def at_old_only(v: int) -> bool:
        return new_target < v <= old_target

    assert_accepted(client.submit(client.find(at_old_only)))
    assert_accepted(client.submit(client.find_accepted()))
    assert_rejected(client.submit(older_share), 23)
    late = client.find(at_old_only)
    time.sleep(GRACE_S + 0.5)
    assert_rejected(client.submit(late), 23)
    assert_accepted(client.submit(client.find_accepted()))


# --- malformed input ---------------------------------------------------------------------------


def _garbage(rng: random.Random, size: int) -> bytes:
    data = bytes(rng.randrange(256) for _ in range(size)).replace(b"\n", b"\xff")
    return b"\xc3\x28\xff" + data  # invalid UTF-8 for certain


def test_malformed_input_is_20_and_nobody_is_disturbed(
    connect: Callable[..., StratumClient], server: ServeProcess
) -> None:
    bystander = connect()
    bystander.start("globex.bystander")
    noisy = connect()
    noisy.start("acme.noisy")
    rng = random.Random(0xFA12)
    bad_lines = [
        b'{"id": 1, "method": "mining.subscribe", "params": [',
        b"[1, 2, 3]",
        b'"just a string"',
        b"42",
        b"null",
        b'{"id": 2, "params": []}',
        b'{"id": 3, "method": "mining.subscribe", "params": {"a": 1}}',
        b'{"id": 4, "method": 17, "params": []}',
        b"\x00\x01\x02\x03",
        b"\xfe\xff\x00{",
        _garbage(rng, 300),
        os.urandom(200).replace(b"\n", b" ") + b"\xc3\x28",
    ]
    for line in bad_lines:
        noisy.send_raw(line + b"\n")
        deadline = time.monotonic() + 5
        while not noisy.replies and time.monotonic() < deadline:
            noisy.poll(0.05)
        assert noisy.replies, f"no answer to {line[:40]!r}"
        reply = noisy.replies.pop(0)
        assert error_code(reply) == 20, f"{line[:40]!r}: {reply}"
        assert reply["result"] is None
        # The malformed connection goes on, and so does everyone else.
        assert_accepted(noisy.submit(noisy.find_accepted()))
        assert_accepted(bystander.submit(bystander.find_accepted()))
    # Binary garbage with newlines in it: one error per non-empty line, still open.
    blob = b"\xff\xfe\n\x80\x81\x82\n\n\xc0\xc1 \n"
    noisy.send_raw(blob)
    for _ in range(3):
        deadline = time.monotonic() + 5
        while not noisy.replies and time.monotonic() < deadline:
            noisy.poll(0.05)
        assert error_code(noisy.replies.pop(0)) == 20
    assert_accepted(noisy.submit(noisy.find_accepted()))
    assert noisy.replies == []


@pytest.mark.parametrize("with_newline", [True, False], ids=["line", "no-newline"])
def test_oversized_line_is_20_then_closed_and_others_go_on(
    connect: Callable[..., StratumClient], server: ServeProcess, with_newline: bool
) -> None:
    bystander = connect()
    bystander.start("globex.bystander")
    big = connect()
    big.start("acme.big")
    line = b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"a" * (2 * MAX_LINE)
    line += b'"]}'
    big.send_raw(line + (b"\n" if with_newline else b""))
    assert big.wait_closed(5), "the connection stayed open after an oversized line"
    errors = [m for m in map(json.loads, big.lines) if "method" not in m and m["error"]]
    assert len(errors) == 1 and error_code(errors[0]) == 20, big.lines
    assert "longer than" in errors[0]["error"][1]
    assert_accepted(bystander.submit(bystander.find_accepted()))
    fresh = connect()
    fresh.start()
    assert_accepted(fresh.submit(fresh.find_accepted()))


def test_line_at_the_limit_is_fine(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    head = b'{"id": 1, "method": "mining.subscribe", "params": ["'
    tail = b'"]}'
    line = head + b"a" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(line) == MAX_LINE
    # Split across several TCP segments on purpose.
    for i in range(0, len(line), 300):
        client.send_raw(line[i : i + 300])
        time.sleep(0.01)
    client.send_raw(b"\n")
    reply = client.reply(1)
    assert reply["error"] is None and len(reply["result"]) == 3


def test_deeply_nested_json_is_20_and_the_connection_stays_open(
    connect: Callable[..., StratumClient],
) -> None:
    client = connect()
    client.start()
    client.send_raw(b"[" * (MAX_LINE - 10) + b"\n")
    reply = client.reply(None, timeout=3)
    assert error_code(reply) == 20, reply
    assert_accepted(client.submit(client.find_accepted()))


def test_extranonce2_with_spaces_is_20(connect: Callable[..., StratumClient]) -> None:
    client = connect()
    client.start()
    en2 = b"\x00\x00\x01"  # what bytes.fromhex("00 00 01") gives
    share = client.find_accepted(extranonce2=en2)
    params = share.params(client.worker)
    params[2] = "00 00 01"
    reply = client.request("mining.submit", params)
    assert_rejected(reply, 20)
