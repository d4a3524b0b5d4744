"""Vardiff end to end: a fast share stream raises a real session's difficulty.

Vardiff's retargets are tested in memory on a Clock (tests/unit/test_session_limits.py: the
raise, an idle session's halving, never below the miner's minimum); this is the smoke test on
a real process and node. The `fast` port aims at a share every 0.5 s (12 shares a window,
tolerance 2: 12 shares within 3 s raise it, however slow the machine) and starts at
difficulty 1.5e-10, whose share target is the whole hash space (any difficulty below 2^-32,
about 2.3e-10, is), so any hash is a share, while any raise the test asserts (more than x2)
brings the target below 2^256, so that a share can miss it. No grace window, so a share after
a change must meet the new difficulty at once. On regtest a raise above about 4.7e-10 puts the
share target under the network target: a share that meets it is then a block, which the node
accepts (this module's server is the only one running at that time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from regtest_peers import RegtestNode

from tests.e2e.farmpool_serve import ServeProcess
from tests.e2e.stratum_client import StratumClient
from tests.helpers import listener_config

FAST_START = 1.5e-10


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    vardiff = {"enabled": True, "target_share_interval_s": 0.5, "min_shares": 12,
               "max_window_s": 60, "tolerance": 2}  # fmt: skip
    difficulty = {"start": FAST_START, "min": 1e-12, "max": 16}
    config["listeners"] = [listener_config("fast", difficulty=difficulty, vardiff=vardiff)]
    config["stratum"] = {"difficulty_grace_s": 0}
    return serve_factory(config)


def test_fast_shares_raise_the_difficulty_and_later_shares_must_meet_it(
    connect: Callable[..., StratumClient], bcoin_node: RegtestNode
) -> None:
    client = connect("fast")
    job = client.start()
    assert client.difficulties == [FAST_START]
    for i in range(12):
        reply = client.submit(client.find_accepted())
        assert reply["result"] is True, f"share {i}: {reply}"
    # The twelfth share closes the window: the new difficulty follows its reply at once.
    client.push("mining.set_difficulty", timeout=2.0)
    raised = client.difficulty
    assert raised is not None and raised > 2 * FAST_START, client.difficulties
    assert raised == float(f"{raised:.3g}"), "below 1: three significant digits"
    # The reply waits for the ledger's commit, so the push may come first.
    last_two = client.lines[-2:]
    assert any(x.startswith(b'{"id":null,"method":"mining.set_difficulty"') for x in last_two)
    assert any(b'"result":true' in x for x in last_two)
    new_target = client.share_target()
    network = job.network_target
    # A share that met the old difficulty but not the new one is rejected (no grace here).
    low = client.find(lambda v: v > max(new_target, network))
    reply = client.submit(low)
    assert reply["error"] is not None and reply["error"][0] == 23, reply
    # One that meets the new difficulty is accepted (on regtest it may also be a block).
    if new_target > network:
        good = client.find(lambda v: network < v <= new_target)
    else:
        good = client.find(lambda v: v <= new_target)
    reply = client.submit(good)
    assert reply["result"] is True and reply["error"] is None, reply
    if good.value <= network:
        assert bcoin_node.rpc("getbestblockhash") == good.block_hash
