"""`farmpool simulate`: a simulated fleet (pool/sim/fleet.py) against a pool, its totals as JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

from pool.cli.common import options
from pool.cli.errors import EXIT_BAD_INPUT, CliError


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a simulated fleet against a pool for a while; print its totals as JSON."""
    from twisted.internet import reactor as _reactor

    from pool.sim.fleet import FleetSpec, run_fleet

    reactor: Any = _reactor
    endpoints = []
    for item in args.connect.split(","):
        host, _, port_text = item.strip().rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise CliError(
                f"--connect: expected HOST:PORT[,HOST:PORT], got {item!r}", EXIT_BAD_INPUT
            )
        endpoints.append((host, int(port_text)))
    tenants = [t for t in args.tenants.split(",") if t]
    if not tenants:
        raise CliError("--tenants: name at least one tenant", EXIT_BAD_INPUT)
    if args.miners < 1 or args.hashrate <= 0 or args.seconds <= 0:
        raise CliError("--miners, --hashrate and --seconds must be positive", EXIT_BAD_INPUT)
    for name in ("stale_rate", "duplicate_rate"):
        if not 0 <= getattr(args, name) <= 0.5:
            raise CliError(f"--{name.replace('_', '-')}: 0 to 0.5", EXIT_BAD_INPUT)
    if args.reconnect_after is not None and args.reconnect_after <= 0:
        raise CliError("--reconnect-after: seconds, more than 0", EXIT_BAD_INPUT)
    spec = FleetSpec(**options(args, *(field.name for field in fields(FleetSpec))))
    totals = run_fleet(reactor, endpoints, tenants, spec)
    print(json.dumps({"event": "simulation", "tenants": totals}))
    return 0
