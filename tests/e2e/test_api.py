"""The HTTP API, /metrics and the dashboard of a running `farmpool serve` with traffic.

One server process (bcoin) with the API on a free port, an admin token and a hashrate sample
every half second; miners of two tenants submit shares and a block. The dashboard is loaded
in headless Chromium (Debian's chromium package), which must draw the hashrate chart; the
screenshot is saved beside the test's files (its path is printed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regtest_peers import RegtestNode
from sqlalchemy import insert, select

from pool.accounting.wallet import Wallet
from pool.chain.rpc import NodeRPC
from pool.config import PayoutSettings
from pool.ledger.db import make_engine
from pool.ledger.models import Credit, Tenant
from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.money import sat
from tests.e2e.stratum_client import StratumClient
from tests.helpers import chromium
from tests.prometheus_text import samples, value

TOKEN = "e2e-admin-token-0123456789"


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any],
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    bcoin_node: RegtestNode,
) -> ServeProcess:
    config = dict(bcoin_config)
    config["listeners"] = [fixed_listener()]
    config["api"] = {"bind": "127.0.0.1", "port": 0, "admin_token": TOKEN, "sample_s": 0.5}
    # The money loop every second, with the wallet: /metrics shows owed against spendable.
    config["payout"] = {"tracker_interval_s": 1, "wallet_url": bcoin_node.wallet_rpc_url}
    return serve_factory(config)


def api_port(server: ServeProcess) -> int:
    event = server.wait_event(lambda e: e.get("event") == "listening")
    return int(event["api"])


def http(
    server: ServeProcess,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, bytes]:
    """GET (or POST `body`), with the bearer `token` if given."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port(server)}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(server: ServeProcess, path: str) -> Any:
    status, body = http(server, path, token=TOKEN)
    assert status == 200, (path, status, body)
    return json.loads(body)


@pytest.fixture(scope="module")
def traffic(server: ServeProcess) -> list[StratumClient]:
    """Two tenants' miners with accepted shares, and a block."""
    clients = []
    for worker in ("acme.rig1", "globex.rig7"):
        client = StratumClient(server.port("main"), log=server.log_tail)
        client.start(worker)
        for _ in range(3):
            assert client.submit(client.find_accepted())["result"] is True
        clients.append(client)
    block = clients[0].find_block()
    assert clients[0].submit(block)["result"] is True
    time.sleep(1.2)  # two hashrate samples
    return clients


def test_health_pool_and_metrics(server: ServeProcess, traffic: list[StratumClient]) -> None:
    health = get_json(server, "/health")
    assert health["status"] == "ok" and health["sessions"] >= 2 and health["problems"] == []
    pool = get_json(server, "/api/pool")
    assert pool["sessions"] >= 2 and pool["stats"]["accepted"] >= 7 and pool["tip_height"] > 0
    status, body = http(server, "/metrics")
    assert status == 200
    text = body.decode()
    found = samples(text)  # as Prometheus reads it
    assert (value(found, "farmpool_shares_total", result="accepted") or 0) >= 7
    assert (value(found, "farmpool_sessions", listener="main") or 0) >= 2
    assert (value(found, "farmpool_difficulty_total", site="north", tenant="acme") or 0) > 0
    assert (value(found, "farmpool_tip_height") or 0) > 0
    age = value(found, "farmpool_job_age_seconds")
    assert age is not None and age >= 0
    assert value(found, "farmpool_ledger_queue_depth") is not None
    assert value(found, "farmpool_spool_bytes") == 0
    assert (value(found, "farmpool_node_rpc_calls_total", method="submitblock") or 0) >= 1
    assert (value(found, "farmpool_blocks_total", result="accepted") or 0) >= 1
    assert "# TYPE farmpool_hashrate_hs gauge" in text
    assert "# TYPE farmpool_shares_total counter" in text
    # Every sample line is NAME{labels} NUMBER (what Prometheus parses).
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(
                r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-0-9.e+]+', line
            ), line


def test_api_pool_and_metrics_give_the_node_s_tip_height(
    server: ServeProcess, traffic: list[StratumClient], bcoin_node: RegtestNode
) -> None:
    """One tip height: the node's getblockcount, in /api/pool (tip_height), /metrics
    (farmpool_tip_height) and the dashboard; the job being mined is one above it."""
    tip = bcoin_node.rpc("getblockcount")
    deadline = time.monotonic() + 10
    while (pool := get_json(server, "/api/pool"))["tip_height"] != tip:
        assert time.monotonic() < deadline, (pool, tip)  # the pool follows its block
        time.sleep(0.1)
    assert pool["job_height"] == tip + 1
    metrics = samples(http(server, "/metrics")[1].decode())
    assert value(metrics, "farmpool_tip_height") == tip


def metric(text: str, name: str) -> float | None:
    return value(samples(text), name)


def test_metrics_show_what_is_owed_against_what_the_wallet_can_spend(
    server: ServeProcess, traffic: list[StratumClient], bcoin_node: RegtestNode
) -> None:
    """The money loop measures owed (mature credits less payouts) and the payout wallet's
    spendable funds after each tracker pass; /metrics shows the latest, without blocking."""
    engine = make_engine(server.config["database_url"])
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            acme = conn.execute(select(Tenant.id).where(Tenant.name == "acme")).scalar_one()
            conn.execute(
                insert(Credit),
                [
                    {
                        "tenant_id": acme,
                        "kind": "pps",
                        "work": 0,
                        "amount_sat": amount,
                        "fee_sat": 0,
                        "status": status,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for amount, status in ((123_456_789, "mature"), (5_000, "immature"))
                ],
            )
    finally:
        engine.dispose()
    wallet = Wallet(
        NodeRPC(bcoin_node.rpc_url),
        PayoutSettings(wallet_url=bcoin_node.wallet_rpc_url),
        "regtest",
    )
    text, spendable = "", -1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = http(server, "/metrics")[1].decode()
        spendable = wallet.spendable_sat()
        if (metric(text, "farmpool_owed_sat"), metric(text, "farmpool_wallet_spendable_sat")) == (
            123_456_789,
            spendable,
        ):
            break
        time.sleep(0.3)
    assert metric(text, "farmpool_owed_sat") == 123_456_789, text
    assert "# TYPE farmpool_wallet_spendable_sat gauge" in text
    assert metric(text, "farmpool_wallet_spendable_sat") == spendable, text
    # bcoin's getbalance counts immature coinbases too: spendable is at most that.
    assert 0 <= spendable <= sat(bcoin_node.wallet_rpc("getbalance"))


def test_the_docker_health_check_passes_against_a_serving_node(
    server: ServeProcess, traffic: list[StratumClient]
) -> None:
    from tests.unit.test_deploy_files import healthcheck_command

    command = healthcheck_command()
    env = {**os.environ, "FARMPOOL_HEALTH_URL": f"http://127.0.0.1:{api_port(server)}/health"}
    run = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    env["FARMPOOL_HEALTH_URL"] = f"http://127.0.0.1:{api_port(server)}/nothing-here"
    run = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode != 0


def test_tenants_workers_blocks_payouts(server: ServeProcess, traffic: list[StratumClient]) -> None:
    workers = {f"{w['tenant']}.{w['worker']}": w for w in get_json(server, "/api/workers")}
    for name in ("acme.rig1", "globex.rig7"):
        assert workers[name]["hashrate_hs"]["5m"] > 0, workers
        assert workers[name]["last_share"] is not None
    assert workers["acme.rig1"]["shares_24h"] >= 4
    blocks = get_json(server, "/api/blocks")
    assert blocks and blocks[0]["tenant"] == "acme" and blocks[0]["site"] == "north"
    tenants = {t["tenant"]: t for t in get_json(server, "/api/tenants")}
    assert {"acme", "globex"} <= set(tenants)
    assert get_json(server, "/api/payouts") == []
    assert [s["name"] for s in get_json(server, "/api/sites")] == ["north", "south"]
    points = get_json(server, "/api/hashrate")["points"]
    assert any(p["hashrate_hs"].get("north/acme", 0) > 0 for p in points), points
    assert http(server, "/api/nothing", token=TOKEN)[0] == 404
    # The operator's reads are closed without the operator token (api.public_read: false).
    assert http(server, "/api/workers")[0] == 401


def test_admin_endpoints_need_the_token(server: ServeProcess, traffic: list[StratumClient]) -> None:
    """The admin endpoints over HTTP: the token, a ban the pool shows, a refusal's status, an
    unban, a kick that closes a real socket. What ban, unban and kick do with every input is
    tested in memory (tests/unit/test_session_lifecycle.py)."""
    assert http(server, "/api/admin/ban", {"ip": "192.0.2.1"})[0] == 401
    assert http(server, "/api/admin/ban", {"ip": "192.0.2.1"}, token="wrong")[0] == 401
    status, body = http(server, "/api/admin/ban", {"ip": "192.0.2.1", "seconds": 60}, TOKEN)
    assert status == 200, body
    assert "192.0.2.1" in get_json(server, "/api/pool")["banned"]
    assert http(server, "/api/admin/ban", {"ip": "nonsense"}, TOKEN)[0] == 400
    status, body = http(server, "/api/admin/unban", {"ip": "192.0.2.1"}, TOKEN)
    assert status == 200 and json.loads(body)["was_banned"] is True
    assert "192.0.2.1" not in get_json(server, "/api/pool")["banned"]
    # Kick a worker: its connection closes; then there is no such session.
    victim = StratumClient(server.port("main"), log=server.log_tail)
    victim.start("globex.kickme")
    assert victim.submit(victim.find_accepted())["result"] is True
    status, body = http(server, "/api/admin/kick", {"worker": "globex.kickme"}, TOKEN)
    assert status == 200 and json.loads(body)["kicked"] == 1, body
    assert victim.wait_closed(timeout=5)
    assert http(server, "/api/admin/kick", {"worker": "globex.kickme"}, TOKEN)[0] == 404


def test_the_dashboard_draws_the_hashrate_in_chromium(
    server: ServeProcess, traffic: list[StratumClient], tmp_path: Path
) -> None:
    flags = chromium(tmp_path / "profile")
    url = f"http://127.0.0.1:{api_port(server)}/#token={TOKEN}"
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r'<body data-points="(\d+)" data-series="(\d+)"', dom.stdout)
    assert body, dom.stdout[:2000]
    assert int(body.group(1)) > 0 and int(body.group(2)) >= 2, body.group(0)
    assert "acme.rig1" in dom.stdout and "globex.rig7" in dom.stdout
    assert re.search(r"\u00b7 height \d+ \u00b7", dom.stdout), "no tip height on the page"
    shot = tmp_path / "dashboard.png"
    run = subprocess.run(
        [*flags, "--window-size=1000,900", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {shot}")
