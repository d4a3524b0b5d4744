"""`farmpool serve` against a real bcoin regtest node, driven by a raw-socket test miner: the
smoke tests of the Stratum wiring (a real process, socket, node and ledger).

Every method, extension, id, reject code and malformed input of docs/stratum.md is tested in
memory (tests/unit/test_session_methods.py, test_session_shares.py); here a real miner
subscribes, authorizes and gets the node's job, rolls versions, has shares refused as low and
accepted, and has its socket closed after an oversized line. One server process for the
module (a listener with vardiff off; generous ban limits, since every connection here comes
from 127.0.0.1). Shares are found by hashing (see stratum_client.py): the start difficulty
3e-10 puts the share target at ~0.78 * 2**256 and regtest's network target at ~0.5 * 2**256,
so a share below difficulty, an accepted share and a block each take a few hashes; no test
here submits a block (tests/e2e/test_stratum_blocks.py does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from pool.hashing import difficulty_to_target
from tests.e2e.farmpool_serve import ServeProcess
from tests.e2e.stratum_client import StratumClient
from tests.helpers import (
    TEST_DIFFICULTY,
    assert_accepted,
    assert_rejected,
    error_code,
    listener_config,
)

START = TEST_DIFFICULTY["start"]
MAX_LINE = 1024
POOL_MASK = 0x1FFFE000


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    config["listeners"] = [listener_config("main", site="north")]
    config["stratum"] = {
        "version_mask": f"{POOL_MASK:08x}",
        "max_line_bytes": MAX_LINE,
        "ban": {"invalid_shares": 1_000_000, "window_s": 60, "ban_s": 1},
    }
    return serve_factory(config)


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


def test_oversized_line_is_20_then_closed_and_others_go_on(
    connect: Callable[..., StratumClient], server: ServeProcess
) -> None:
    bystander = connect()
    bystander.start("globex.bystander")
    big = connect()
    big.start("acme.big")
    line = b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"a" * (2 * MAX_LINE)
    line += b'"]}'
    big.send_raw(line + b"\n")
    assert big.wait_closed(5), "the connection stayed open after an oversized line"
    errors = [m for m in map(json.loads, big.lines) if "method" not in m and m["error"]]
    assert len(errors) == 1 and error_code(errors[0]) == 20, big.lines
    assert "longer than" in errors[0]["error"][1]
    assert_accepted(bystander.submit(bystander.find_accepted()))
    fresh = connect()
    fresh.start()
    assert_accepted(fresh.submit(fresh.find_accepted()))
