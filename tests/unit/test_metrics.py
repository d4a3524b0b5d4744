"""/metrics as prometheus_client writes it (pool/api/metrics.py), read back with
prometheus_client's own parser and checked against a live in-memory server's counters."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import REGISTRY

from pool.api.metrics import CONTENT_TYPE, HashrateHistory, render
from pool.chain.rpc import NodeError, NodeRPC
from pool.ledger.db import make_engine
from pool.ledger.writer import LedgerWriter
from tests.prometheus_text import samples, value
from tests.unit.stratum_harness import Pool

#: Every family /metrics shows with a writer and an RPC client (no alerts, no money loop),
#: and its type: the names exactly as they were before prometheus_client wrote them.
FAMILIES = {
    "farmpool_sessions": "gauge",
    "farmpool_connections_unsubscribed": "gauge",
    "farmpool_shares_total": "counter",
    "farmpool_blocks_total": "counter",
    "farmpool_difficulty_total": "counter",
    "farmpool_hashrate_hs": "gauge",
    "farmpool_tip_height": "gauge",
    "farmpool_job_age_seconds": "gauge",
    "farmpool_banned_addresses": "gauge",
    "farmpool_connections_refused_total": "counter",
    "farmpool_sessions_closed_total": "counter",
    "farmpool_bans_total": "counter",
    "farmpool_authorizes_refused_total": "counter",
    "farmpool_replies_dropped_total": "counter",
    "farmpool_internal_errors_total": "counter",
    "farmpool_ledger_writer_up": "gauge",
    "farmpool_ledger_queue_depth": "gauge",
    "farmpool_spool_bytes": "gauge",
    "farmpool_ledger_records_total": "counter",
    "farmpool_node_rpc_calls_total": "counter",
    "farmpool_node_rpc_errors_total": "counter",
    "farmpool_node_rpc_seconds_total": "counter",
}


def nth_share(n: int) -> Callable[[int, int], bool]:
    """For Miner.find_share: the n-th hash (from 0) that is a share and no block."""
    left = [n]

    def accept(hash_value: int, network_target: int) -> bool:
        if hash_value <= network_target:
            return False
        left[0] -= 1
        return left[0] < 0

    return accept


def test_metrics_text_parses_back_to_the_servers_counters(tmp_path: Path) -> None:
    pool = Pool()
    miners = [pool.connect("10.0.0.5"), pool.connect("10.0.0.6")]
    for i, miner in enumerate(miners):
        miner.start(f"acme.w{i}")
        for n in range(3):
            assert miner.submit(miner.find_share(nth_share(n)))["result"] is True
    params = miners[0].find_share(nth_share(3))
    assert miners[0].submit(params)["result"] is True
    assert miners[0].submit(params)["error"] is not None  # a duplicate: rejected
    pool.connect("10.0.0.7")  # connected, never subscribes
    history = HashrateHistory(sample_s=60)
    history.sample(dict(pool.server.work_by_account), now=1000.0)
    history.sample({k: v * 2 for k, v in pool.server.work_by_account.items()}, now=1060.0)
    rpc = NodeRPC("http://u:p@127.0.0.1:1", timeout_s=1)  # nothing listens: a counted error
    with pytest.raises(NodeError):
        rpc.call("getblockcount")
    writer = LedgerWriter(
        make_engine(f"sqlite:///{tmp_path}/db", create=True), "n", tmp_path / "spool", pool.clock
    )

    text = render(pool.server, writer, rpc, history)
    found = samples(text)
    stats = pool.server.stats

    # Names and types as before: a counter keeps its `_total`, none gets a second one.
    assert {m[1]: m[2] for m in re.findall(r"^# TYPE ((\S+) (\S+))$", text, re.M)} == FAMILIES
    assert {name for name, _ in found} <= set(FAMILIES)  # no process_ or python_ metrics
    for line in text.splitlines():  # every sample line is NAME{labels} NUMBER
        if not line.startswith("#"):
            assert re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+', line)

    assert value(found, "farmpool_sessions", listener="a") == 2
    assert value(found, "farmpool_connections_unsubscribed") == 1
    assert stats["accepted"] == 7
    assert value(found, "farmpool_shares_total", result="accepted") == 7
    rejected = {k[len("rejected_") :]: v for k, v in stats.items() if k.startswith("rejected_")}
    assert rejected and sum(rejected.values()) == 1
    for reason, count in rejected.items():
        assert value(found, "farmpool_shares_total", result=reason) == count
    for result in ("accepted", "rejected", "unsubmitted"):
        assert value(found, "farmpool_blocks_total", result=result) == stats[f"blocks_{result}"]
    for (site, tenant), work in pool.server.work_by_account.items():
        assert value(found, "farmpool_difficulty_total", site=site, tenant=tenant) == work
        rate = history.latest()[f"{site}/{tenant}"]
        assert value(found, "farmpool_hashrate_hs", site=site, tenant=tenant) == rate
    assert pool.job.tip_height > 0
    assert value(found, "farmpool_tip_height") == pool.job.tip_height
    assert value(found, "farmpool_banned_addresses") == 0  # nobody was banned
    assert value(found, "farmpool_authorizes_refused_total") == stats["authorize_refused"]
    assert value(found, "farmpool_replies_dropped_total") == stats["replies_dropped"]
    assert value(found, "farmpool_internal_errors_total", where="sweep") == stats["sweep_errors"]
    assert value(found, "farmpool_ledger_writer_up") == 1
    assert value(found, "farmpool_ledger_queue_depth") == 0
    assert value(found, "farmpool_spool_bytes") == 0
    for outcome in ("committed", "spooled", "replayed", "quarantined"):
        assert value(found, "farmpool_ledger_records_total", outcome=outcome) == 0
    assert value(found, "farmpool_node_rpc_calls_total", method="getblockcount") == 1
    assert value(found, "farmpool_node_rpc_errors_total", method="getblockcount") == 1
    assert value(found, "farmpool_node_rpc_seconds_total", method="getblockcount") == round(
        rpc.seconds["getblockcount"], 6
    )


def test_metrics_counters_keep_counting_between_scrapes_and_use_a_private_registry() -> None:
    """Each scrape reads the counters as they are then; nothing goes to the global registry
    (a second scrape would otherwise be a duplicate registration)."""
    pool = Pool()
    miner = pool.connect()
    miner.start()
    before = len(list(REGISTRY.collect()))
    first = samples(render(pool.server, None, None, HashrateHistory()))
    assert miner.submit(miner.find_share(nth_share(0)))["result"] is True
    second = samples(render(pool.server, None, None, HashrateHistory()))
    assert value(first, "farmpool_shares_total", result="accepted") == 0
    assert value(second, "farmpool_shares_total", result="accepted") == 1
    assert len(list(REGISTRY.collect())) == before
    # Without a job: HELP and TYPE, no sample.
    empty = render(Pool().server, None, None, HashrateHistory())
    assert "# TYPE farmpool_shares_total counter" in empty
    assert CONTENT_TYPE == CONTENT_TYPE_LATEST
