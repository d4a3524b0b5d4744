"""Worker-down and pool alerts to real local HTTP receivers (issue 14, part 2).

One `farmpool serve` on the bcoin regtest node with three webhooks: a receiver that checks
each body's HMAC signature, a second that takes only acme's worker events, and a third that
accepts connections and never answers. acme's miner stops: `worker_down` arrives once; it
mines again: `worker_up`; it finds a block: `block_found`. globex mines all along, and its
replies stay fast while every event waits on the receiver that hangs. `/api/events` lists
them (a tenant's token: its own). A second server on a private PostgreSQL loses its database
for a while: `ledger_spooling` is delivered while the database is down, `ledger_recovered`
when it is back, and both are written to the database after.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from regtest_peers import RegtestNode

from tests.e2e.farmpool_serve import ServeProcess, base_config, fixed_listener
from tests.e2e.private_postgres import running_postgres
from tests.e2e.stratum_client import StratumClient
from tests.helpers import wait_until
from tests.prometheus_text import samples, value

SECRET = "webhook-secret-e2e"
OPERATOR = "e2e-operator-token-0123456789"
DOWN_AFTER_S = 3


class Receiver:
    """A local HTTP endpoint that keeps every POST (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes, float]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append((self.path, dict(self.headers), body, time.monotonic()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body, _ in list(self.posts) if p == path]

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], path: str = "/hook",
             timeout: float = 20) -> list[dict[str, Any]]:  # fmt: skip
        explain = lambda: f"not received: {self.events(path)}"  # noqa: E731
        wait_until(lambda: predicate(self.events(path)), timeout, explain, step=0.1)
        return self.events(path)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    yield recv
    recv.close()


@pytest.fixture(scope="module")
def hanging() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def alerts_config(receiver: Receiver, hanging: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{receiver.port}"
    return {
        "worker_down_after_s": DOWN_AFTER_S,
        "retries": 2,
        "webhooks": [
            {"url": f"{base}/hook", "secret": SECRET},
            {"url": f"{base}/acme", "tenants": ["acme"], "kinds": ["worker_down", "worker_up"]},
            {"url": f"http://127.0.0.1:{hanging}/never", "timeout_s": 2},
        ],
    }


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any],
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    receiver: Receiver,
    hanging: int,
) -> ServeProcess:
    config = dict(bcoin_config)
    config["listeners"] = [fixed_listener()]
    config["api"] = {"bind": "127.0.0.1", "port": 0, "admin_token": OPERATOR}
    config["alerts"] = alerts_config(receiver, hanging)
    return serve_factory(config)


def api(server: ServeProcess, path: str, token: str) -> Any:
    port = server.wait_event(lambda e: e.get("event") == "listening")["api"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=20) as reply:
        return json.loads(reply.read())


def of(events: list[dict[str, Any]], kind: str, subject: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and e["subject"] == subject]


def test_worker_down_once_back_up_and_a_block_while_a_hook_hangs(
    server: ServeProcess, receiver: Receiver
) -> None:
    acme = StratumClient(server.port("main"), log=server.log_tail)
    acme.start("acme.rig1")
    globex = StratumClient(server.port("main"), log=server.log_tail)
    globex.start("globex.rig7")
    latencies: list[float] = []

    def mine(client: StratumClient, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            share = client.find_accepted()
            sent = time.monotonic()
            assert client.submit(share)["result"] is True
            if client is globex:
                latencies.append(time.monotonic() - sent)
            time.sleep(0.2)

    mine(acme, 1.5)
    stopped = time.monotonic()
    mine(globex, DOWN_AFTER_S + 4)  # acme is silent all this time
    events = receiver.wait(lambda ev: of(ev, "worker_down", "acme.rig1"))
    (down,) = of(events, "worker_down", "acme.rig1")
    assert down["tenant"] == "acme" and down["data"]["silent_s"] >= DOWN_AFTER_S
    arrived = next(t for p, _, b, t in receiver.posts if json.loads(b) == down)
    assert arrived - stopped < DOWN_AFTER_S + 3, "the alert came late"
    mine(acme, 1.0)
    receiver.wait(lambda ev: of(ev, "worker_up", "acme.rig1"))
    mine(globex, 1.0)
    block = acme.find_block()
    assert acme.submit(block)["result"] is True
    receiver.wait(lambda ev: of(ev, "block_found", block.block_hash))
    events = receiver.events()
    assert len(of(events, "worker_down", "acme.rig1")) == 1  # once per episode
    assert not [e for e in events if e["subject"].startswith("globex.")]  # never silent
    # Each body is signed with the webhook's secret.
    for path, headers, body, _ in receiver.posts:
        if path == "/hook":
            mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Farmpool-Signature"] == f"sha256={mac}"
            assert headers["X-Farmpool-Event"] == json.loads(body)["kind"]
    # The acme-only hook got acme's worker events and nothing else.
    assert {(e["kind"], e["tenant"]) for e in receiver.events("/acme")} == {
        ("worker_down", "acme"),
        ("worker_up", "acme"),
    }
    # The hook that never answers held every delivery, and no share waited for it.
    assert max(latencies) < 1.0, f"share replies slowed: {sorted(latencies)[-5:]}"
    assert server.running()


def test_events_are_listed_per_tenant_and_counted(server: ServeProcess) -> None:
    everything = api(server, "/api/events", OPERATOR)
    assert {"worker_down", "worker_up", "block_found"} <= {e["kind"] for e in everything}
    assert all(e["delivered_at"] is None or e["kind"] for e in everything)
    made = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(server.config_path), "tenant", "token",
         "globex", "--create"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    globex_token = made.stdout.strip().splitlines()[-1]
    assert api(server, "/api/events", globex_token) == []  # nothing about globex happened
    port = server.wait_event(lambda e: e.get("event") == "listening")["api"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        metrics = reply.read().decode()
    found = samples(metrics)
    assert value(found, "farmpool_events_total", kind="worker_down") == 1
    assert value(found, "farmpool_webhook_deliveries_total", result="failed") is not None


def test_ledger_spooling_is_told_while_the_database_is_down(
    bcoin_node: RegtestNode,
    tmp_path_factory: pytest.TempPathFactory,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    hanging: int,
) -> None:
    recv = Receiver()
    with running_postgres() as pg:
        workdir = tmp_path_factory.mktemp("alerts-pg")
        config = base_config(bcoin_node.rpc_url, bcoin_node.new_address(), workdir)
        config["database_url"] = pg.url
        config["ledger"] = {"retry_s": 0.5}
        config["listeners"] = [fixed_listener()]
        config["api"] = {"bind": "127.0.0.1", "port": 0, "admin_token": OPERATOR}
        config["alerts"] = alerts_config(recv, hanging)
        server = serve_factory(config)
        miner = StratumClient(server.port("main"), log=server.log_tail)
        miner.start("acme.rig1")
        pg.stop()
        for _ in range(5):  # shares go to the spool and are still answered
            assert miner.submit(miner.find_accepted())["result"] is True
            time.sleep(0.2)
        down = recv.wait(lambda ev: of(ev, "ledger_spooling", "ledger"))
        assert of(down, "ledger_spooling", "ledger")[0]["id"] is None  # not written yet
        pg.start()
        miner.submit(miner.find_accepted())
        recv.wait(lambda ev: of(ev, "ledger_recovered", "ledger"), timeout=30)
        deadline = time.monotonic() + 20
        while True:
            listed = api(server, "/api/events", OPERATOR)
            kinds = {e["kind"]: e for e in listed}
            if "ledger_spooling" in kinds and "ledger_recovered" in kinds:
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.5)
        assert kinds["ledger_spooling"]["delivered_at"] is not None  # sent while it was down
        assert len(of(recv.events(), "ledger_spooling", "ledger")) == 1
        assert server.terminate() == 0, server.log_tail()
    recv.close()
