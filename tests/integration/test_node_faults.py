"""The node going away and coming back: timeouts, reconnects, startup waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from regtest_peers import RegtestNode
from tcp_faults import CuttableProxy

from pool.chain.rpc import NodeRPC, NodeUnreachable, call_with_retry
from tests.helpers import wait_until


@pytest.fixture
def proxy(bcoin_node: RegtestNode) -> Iterator[CuttableProxy]:
    p = CuttableProxy(bcoin_node.rpc_port)
    yield p
    p.close()


def test_a_node_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://u:p@127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(NodeUnreachable, match=r"did not answer getblockcount within 1 s"):
            NodeRPC(url, timeout_s=1).call("getblockcount")
        assert time.monotonic() - started < 5


def test_rpc_reconnects_after_the_connection_broke(
    bcoin_node: RegtestNode, proxy: CuttableProxy
) -> None:
    rpc = NodeRPC(proxy.url(bcoin_node.rpc_url), timeout_s=5)
    height = rpc.call("getblockcount")
    proxy.cut()
    with pytest.raises(NodeUnreachable):
        rpc.call("getblockcount")
    proxy.restore()
    assert rpc.call("getblockcount") == height
    proxy.cut()
    # call_with_retry waits with backoff until the node is back.
    import threading

    threading.Timer(1.0, proxy.restore).start()
    assert call_with_retry(rpc, "getblockcount", deadline_s=10) == height


def _config(node: RegtestNode, url: str) -> dict[str, Any]:
    return {
        "network": "regtest",
        "node": {"url": url, "longpoll": False, "poll_interval_ms": 200, "rpc_timeout_s": 2},
        "pool": {"payout_address": node.new_address()},
    }


def test_work_source_survives_the_node_going_away(
    bcoin_node: RegtestNode, proxy: CuttableProxy, work_process: Any
) -> None:
    work = work_process(_config(bcoin_node, proxy.url(bcoin_node.rpc_url)))
    first = work.next_event()
    assert first["clean"] is True
    proxy.cut()
    time.sleep(2.0)
    proxy.restore()
    [tip] = bcoin_node.mine(1, bcoin_node.new_address())
    event = work.next_event(timeout=10)
    assert event["prevhash"] == tip and event["clean"] is True
    assert "cannot reach node" in work.log_text()


def test_work_waits_for_a_node_that_is_not_up_yet(
    bcoin_node: RegtestNode, proxy: CuttableProxy, work_process: Any
) -> None:
    proxy.cut()
    work = work_process(_config(bcoin_node, proxy.url(bcoin_node.rpc_url)))
    # Until it has tried and is waiting to try again (however long the process takes to
    # start on a slow machine).
    wait_until(lambda: "retrying in" in work.log_text(), 30, work.log_text, step=0.1)
    proxy.restore()
    first = work.next_event(timeout=15)
    assert first["event"] == "job" and first["clean"] is True
