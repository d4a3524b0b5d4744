"""SIGHUP: `farmpool serve` reads its config again and applies tenants and listeners without
dropping a connected miner; a config that does not load changes nothing.

One server process against the session's bcoin node; the test rewrites its config file and
sends SIGHUP, then waits for the `reloaded` (or `reload_failed`) event on its stdout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.stratum_client import ConnectionClosed, StratumClient


def reload(server: ServeProcess, config: dict[str, Any], count: int) -> dict[str, Any]:
    """Write the config, SIGHUP, and wait for the count-th reload event."""
    server.config_path.write_text(json.dumps(config, indent=2))
    server.proc.send_signal(signal.SIGHUP)

    def reloads() -> list[dict[str, Any]]:
        return [e for e in server.events if e.get("event") in ("reloaded", "reload_failed")]

    server.wait_event(lambda _: len(reloads()) >= count)
    return reloads()[count - 1]


def mines(client: StratumClient) -> None:
    reply = client.submit(client.find_accepted())
    assert reply["result"] is True, reply


def test_sighup_adds_and_removes_listeners_and_tenants_without_dropping_miners(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> None:
    config = json.loads(json.dumps(bcoin_config))
    config["listeners"] = [fixed_listener("first")]
    server = serve_factory(config)
    miner = StratumClient(server.port("first"), log=server.log_tail)
    miner.start("acme.rig1")
    mines(miner)
    refused = StratumClient(server.port("first"), log=server.log_tail)
    refused.subscribe("e2e")
    assert refused.authorize("initech.rig1")["result"] is not True  # not a tenant yet

    # Add a listener on another site and a tenant.
    config["listeners"] = [fixed_listener("first"), fixed_listener("second", site="south")]
    config["tenants"] = [*config["tenants"], {"name": "initech"}]
    event = reload(server, config, 1)
    assert event["event"] == "reloaded", event
    assert event["ports"]["first"] == server.port("first")  # the same socket
    newcomer = StratumClient(event["ports"]["second"], log=server.log_tail)
    newcomer.start("initech.rig1")
    mines(newcomer)
    mines(miner)  # the miner connected before the reload mines on

    # Remove the first listener: it stops accepting, its connected miner stays.
    config["listeners"] = [fixed_listener("second", site="south")]
    event = reload(server, config, 2)
    assert event["event"] == "reloaded" and set(event["ports"]) == {"second"}, event
    mines(miner)
    with pytest.raises((ConnectionRefusedError, ConnectionClosed, OSError)):
        StratumClient(server.port("first"), log=server.log_tail).start("acme.rig2")

    # A broken config is refused and changes nothing.
    config["listeners"] = [{"name": "broken"}]
    event = reload(server, config, 3)
    assert event["event"] == "reload_failed" and "port" in event["error"], event
    mines(miner)
    mines(newcomer)
    for client in (miner, newcomer, refused):
        client.close()


def test_a_tenant_made_inactive_is_disconnected_and_its_shares_refused(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> None:
    """The audit's case: after `farmpool tenant set NAME --inactive`, that tenant's connected
    sessions kept being credited."""
    config = json.loads(json.dumps(bcoin_config))
    config["listeners"] = [fixed_listener("main")]
    server = serve_factory(config)
    leaving = StratumClient(server.port("main"), log=server.log_tail)
    leaving.start("globex.rig1")
    mines(leaving)
    proxy = StratumClient(server.port("main"), log=server.log_tail)  # both tenants' workers
    proxy.start("acme.rig1")
    assert proxy.authorize("globex.rig2")["result"] is True
    staying = StratumClient(server.port("main"), log=server.log_tail)
    staying.start("acme.rig3")
    share = proxy.find_accepted()
    run = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(server.config_path), "tenant", "set", "globex",
         "--inactive"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # Each stratum node reads the active tenants every 10 s.
    reconnect = leaving.push("client.reconnect", timeout=15)
    assert reconnect["params"] == []
    assert leaving.wait_closed(5)
    reply = proxy.submit(share, worker="globex.rig2")
    assert reply["error"] is not None and reply["error"][0] == 24, reply
    reply = proxy.submit(proxy.find_accepted(), worker="acme.rig1")  # its acme worker goes on
    assert reply["result"] is True, reply
    mines(staying)
    for client in (proxy, staying):
        client.close()
