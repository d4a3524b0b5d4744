"""Shares and lines, in memory: every reject code in order (25, 24, 20, 21, 22, 23), the
ntime window, the difficulty grace window on the Clock, malformed and oversized lines, and
the job fan-out (clean jobs make older ones stale, refreshes do not).

The listener's difficulty 3e-10 puts the share target at ~0.78 * 2**256, regtest's network
target is ~0.5 * 2**256: a low share, an accepted share and a block each take a few hashes.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pool.hashing import difficulty_to_target
from tests.helpers import (
    TEST_DIFFICULTY,
    assert_accepted,
    assert_rejected,
    between,
    error_code,
)
from tests.unit.stratum_harness import START, Miner, Pool, settings

DIFFICULTY = TEST_DIFFICULTY["start"]
GRACE_S = 2.0
MAX_LINE = 1024


def pool(**listener: Any) -> Pool:
    return Pool(
        settings(
            listener={"difficulty": dict(TEST_DIFFICULTY), **listener},
            stratum={
                "max_line_bytes": MAX_LINE,
                "difficulty_grace_s": GRACE_S,
                "ban": {"invalid_shares": 1_000_000, "window_s": 60, "ban_s": 1},
            },
            tenants=("acme", "globex"),
        )
    )


@pytest.fixture
def farm() -> Pool:
    return pool()


@pytest.fixture
def miner(farm: Pool) -> Miner:
    return farm.connect()


# --- share checks, in order ----------------------------------------------------------------


def test_submit_before_subscribe_is_25(miner: Miner) -> None:
    assert miner.request("mining.authorize", ["acme.rig1", "x"])["result"] is True
    reply = miner.submit(["acme.rig1", "1", "00000000", "00000000", "0"])
    assert_rejected(reply, 25)
    miner.subscribe("t/1")
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


def test_unauthorized_worker_is_24(miner: Miner) -> None:
    miner.subscribe("t/1")
    assert_rejected(miner.submit(["acme.rig1", "1", "00000000", "5f000000", "0"]), 24)
    assert miner.request("mining.authorize", ["acme.rig1", "x"])["result"] is True
    share = miner.find_share(miner.accepted)
    assert_rejected(miner.submit(["acme.rig9", *share[1:]]), 24)
    assert_rejected(miner.submit(["globex.rig1", *share[1:]]), 24)
    assert_accepted(miner.submit(share))


def test_malformed_submits_are_20_and_the_session_goes_on(miner: Miner) -> None:
    miner.start()
    share = miner.find_share(miner.accepted)
    w, j, en2, ntime, nonce = share
    far = f"{int(miner.pool.clock.seconds()) + 7200 + 600:08x}"
    cases: list[tuple[str, list[Any]]] = [
        ("4 params", [w, j, en2, ntime]),
        ("7 params", [w, j, en2, ntime, nonce, "00000000", "x"]),
        ("no params", []),
        ("nonce not text", [w, j, en2, ntime, int(nonce, 16)]),
        ("job id not text", [w, 5, en2, ntime, nonce]),
        ("extranonce2 3 bytes", [w, j, en2[:6], ntime, nonce]),
        ("extranonce2 5 bytes", [w, j, en2 + "00", ntime, nonce]),
        ("extranonce2 not hex", [w, j, "zzzzzzzz", ntime, nonce]),
        ("extranonce2 with spaces", [w, j, "00 00 01", ntime, nonce]),
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
        reply = miner.submit(params)
        assert error_code(reply) == 20, f"{name}: {reply}"
        assert reply["result"] is None, f"{name}: {reply}"
    # The untouched share is still good: nothing above was counted or closed the session.
    assert_accepted(miner.submit(share))
    assert miner.pool.sink.shares.total() == 1


def test_ntime_within_range_is_accepted(miner: Miner) -> None:
    miner.start()
    miner.pool.clock.advance(30)
    ahead = int(miner.pool.clock.seconds()) + 7200 - 60
    assert_accepted(miner.submit(miner.find_share(miner.accepted, ntime=ahead)))
    assert_accepted(miner.submit(miner.find_share(miner.accepted, ntime=int(START) + 1)))


def test_unknown_job_is_21(miner: Miner) -> None:
    miner.start()
    share = miner.find_share(miner.accepted)
    assert_rejected(miner.submit([share[0], "deadbeef0", *share[2:]]), 21)
    assert_accepted(miner.submit(share))


def test_duplicate_is_22_also_in_upper_case(miner: Miner) -> None:
    miner.request("mining.configure", [["version-rolling"], {"version-rolling.mask": "1fffe000"}])
    miner.start()
    share = miner.find_share(miner.accepted, extranonce2=bytes.fromhex("00abcdef"),
                             version_bits=0x1ABCE000)  # fmt: skip
    assert_accepted(miner.submit(share))
    assert_rejected(miner.submit(share), 22)
    upper = [p.upper() if i >= 2 else p for i, p in enumerate(share)]
    assert upper != share
    assert_rejected(miner.submit(upper), 22)
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))
    assert miner.pool.sink.shares.total() == 2


def test_low_difficulty_is_23_and_accepted_share_true(miner: Miner) -> None:
    miner.start()
    target = difficulty_to_target(DIFFICULTY)
    low, value = miner.find(miner.low)
    assert value > target
    reply = miner.submit(low)
    assert_rejected(reply, 23)
    assert reply["error"][1].startswith("Low difficulty share")
    good, value = miner.find(miner.accepted)
    assert value <= target
    assert_accepted(miner.submit(good))
    # The low share was not recorded: sending it again is still low, not a duplicate.
    assert_rejected(miner.submit(low), 23)
    assert miner.pool.sink.rejects == {"low-difficulty": 2}


def test_previous_difficulty_is_accepted_within_the_grace_window(miner: Miner) -> None:
    miner.start()
    old_target = miner.session.share_target
    older_share = miner.find_share(miner.low)  # below even the old difficulty
    assert miner.request("mining.suggest_difficulty", [4e-10])["result"] is True
    assert miner.difficulties == [DIFFICULTY, 4e-10]
    new_target = miner.session.share_target
    assert miner.pool.job.work.network_target < new_target < old_target
    at_old_only = between(new_target, old_target)
    assert_accepted(miner.submit(miner.find_share(at_old_only)))
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))
    assert_rejected(miner.submit(older_share), 23)
    miner.pool.clock.advance(GRACE_S)
    assert_accepted(miner.submit(miner.find_share(at_old_only)))  # the last moment of grace
    late = miner.find_share(at_old_only)
    miner.pool.clock.advance(0.5)
    assert_rejected(miner.submit(late), 23)
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


# --- jobs ------------------------------------------------------------------------------------


def test_every_working_session_gets_each_job_and_only_those(farm: Pool) -> None:
    working = [farm.connect(f"10.0.0.{i}") for i in range(3)]
    for miner in working:
        miner.start()
    subscribed_only = farm.connect("10.0.0.9")
    subscribed_only.subscribe("t/1")
    refresh = farm.new_job(clean=False)
    for miner in working:
        miner.read()
        assert [n[0] for n in miner.notifies] == [working[0].notifies[0][0], refresh.job_id]
    assert subscribed_only.read() == []


def test_refresh_jobs_are_not_clean_and_older_jobs_stay_valid(miner: Miner, farm: Pool) -> None:
    miner.start()
    first = farm.job
    refresh = farm.new_job(clean=False)
    miner.read()
    refreshed = miner.notifies[-1]
    assert refreshed[8] is False and refreshed[0] == refresh.job_id != first.job_id
    assert refreshed[1] == miner.notifies[0][1]  # the same tip
    assert_accepted(miner.submit(miner.find_share(miner.accepted, job=first)))
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


def test_same_header_under_a_refreshed_job_id_is_a_duplicate(miner: Miner, farm: Pool) -> None:
    miner.start()
    first = farm.job
    second = farm.new_job(clean=False)
    assert second.notify_params()[1:7] == first.notify_params()[1:7]  # the same work
    share = miner.find_share(miner.accepted, job=first)
    assert_accepted(miner.submit(share))
    assert_rejected(miner.submit([share[0], second.job_id, *share[2:]]), 22)


def test_a_clean_job_on_a_new_tip_makes_the_older_jobs_stale(miner: Miner, farm: Pool) -> None:
    miner.start()
    old = miner.find_share(miner.accepted)
    farm.new_job(prev="22" * 32, clean=True)
    miner.read()
    assert miner.notifies[-1][8] is True and miner.notifies[-1][1] != miner.notifies[0][1]
    assert_rejected(miner.submit(old), 21)
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


# --- malformed input ---------------------------------------------------------------------------


def _garbage(rng: random.Random, size: int) -> bytes:
    data = bytes(rng.randrange(256) for _ in range(size)).replace(b"\n", b"\xff")
    return b"\xc3\x28\xff" + data  # invalid UTF-8 for certain


BAD_LINES = [
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
    _garbage(random.Random(0xFA12), 300),
    b"[" * (MAX_LINE - 10),  # nested too deep for the parser
]


@pytest.mark.parametrize("line", BAD_LINES, ids=range(len(BAD_LINES)))
def test_malformed_input_is_20_and_nobody_is_disturbed(farm: Pool, line: bytes) -> None:
    bystander, noisy = farm.connect("10.0.0.1"), farm.connect("10.0.0.2")
    bystander.start("globex.bystander")
    noisy.start("acme.noisy")
    [reply] = noisy.send_raw(line + b"\n")
    assert error_code(reply) == 20 and reply["result"] is None, f"{line[:40]!r}: {reply}"
    # The malformed connection goes on, and so does everyone else.
    assert_accepted(noisy.submit(noisy.find_share(noisy.accepted)))
    assert_accepted(bystander.submit(bystander.find_share(bystander.accepted)))
    assert not noisy.closed and noisy.session.invalid_score == 1


def test_binary_garbage_with_newlines_is_one_error_per_non_empty_line(miner: Miner) -> None:
    miner.start()
    replies = miner.send_raw(b"\xff\xfe\n\x80\x81\x82\n\n\xc0\xc1 \n")
    assert [error_code(r) for r in replies] == [20, 20, 20]
    assert_accepted(miner.submit(miner.find_share(miner.accepted)))


@pytest.mark.parametrize("with_newline", [True, False], ids=["line", "no-newline"])
def test_oversized_line_is_20_then_closed_and_others_go_on(farm: Pool, with_newline: bool) -> None:
    bystander, big = farm.connect("10.0.0.1"), farm.connect("10.0.0.2")
    bystander.start("globex.bystander")
    big.start("acme.big")
    line = b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"a" * (2 * MAX_LINE)
    line += b'"]}' + (b"\n" if with_newline else b"")
    # In TCP-sized pieces: the limit holds however the line arrives.
    replies = [r for i in range(0, len(line), 500) for r in big.send_raw(line[i : i + 500])]
    assert big.closed, "the connection stayed open after an oversized line"
    [error] = replies
    assert error_code(error) == 20 and "longer than" in error["error"][1]
    assert_accepted(bystander.submit(bystander.find_share(bystander.accepted)))
    fresh = farm.connect("10.0.0.3")
    fresh.start()
    assert_accepted(fresh.submit(fresh.find_share(fresh.accepted)))


def test_line_at_the_limit_is_fine(miner: Miner) -> None:
    head = b'{"id": 1, "method": "mining.subscribe", "params": ["'
    tail = b'"]}'
    line = head + b"a" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(line) == MAX_LINE
    for i in range(0, len(line), 300):  # split across several TCP segments on purpose
        assert miner.send_raw(line[i : i + 300]) == []
    [reply] = miner.send_raw(b"\n")
    assert reply["error"] is None and len(reply["result"]) == 3
    assert not miner.closed


def test_replies_are_compact_json_lines(miner: Miner) -> None:
    """What firmware parses: one object a line, the id echoed, no spaces needed."""
    miner.start()
    miner.submit(miner.find_share(miner.accepted))
    for line in miner.lines:
        assert json.loads(line) and b"\n" not in line and b": " not in line, line
