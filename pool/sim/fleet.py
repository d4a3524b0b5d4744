"""A simulated fleet: miners per endpoint and tenant, run for a while, their totals per tenant.

Where it sits: `farmpool simulate` checks its arguments and prints what `run_fleet` returns;
the miners themselves are pool/sim/miner.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pool.sim.miner import MinerFactory, MinerSpec


@dataclass(frozen=True)
class FleetSpec:
    """What each endpoint and tenant gets: `miners` miners of `hashrate`, slipping and
    restarting as asked."""

    miners: int
    hashrate: float
    seconds: float
    suggest_difficulty: float | None = None
    stale_rate: float = 0.0
    duplicate_rate: float = 0.0
    reconnect_after: float | None = None


def run_fleet(
    reactor: Any, endpoints: list[tuple[str, int]], tenants: list[str], spec: FleetSpec
) -> dict[str, dict[str, Any]]:
    """Connect the fleet, run the reactor for `spec.seconds`, and sum each tenant's miners."""
    factories: list[MinerFactory] = []
    for e, (host, port) in enumerate(endpoints):
        for tenant in tenants:
            for n in range(spec.miners):
                miner = MinerSpec(
                    tenant,
                    f"sim{e}-{n:03d}",
                    spec.hashrate,
                    suggest_difficulty=spec.suggest_difficulty,
                    stale_rate=spec.stale_rate,
                    duplicate_rate=spec.duplicate_rate,
                    # Half of the fleet restarts once, part way (and resumes its session).
                    reconnect_after_s=spec.reconnect_after if n % 2 == 1 else None,
                )
                factory = MinerFactory(miner, reactor, seed=len(factories))
                factories.append(factory)
                reactor.connectTCP(host, port, factory, timeout=10)

    def stop() -> None:
        for factory in factories:
            factory.stopping = True
        reactor.stop()

    reactor.callLater(spec.seconds, stop)
    reactor.run()
    totals: dict[str, dict[str, Any]] = {}
    for factory in factories:
        stats = factory.stats
        row = totals.setdefault(
            factory.spec.tenant,
            {
                "miners": 0, "connected": 0, "submitted": 0, "accepted": 0, "rejected": 0,
                "stale": 0, "duplicate": 0, "blocks": 0, "work": 0.0, "reconnects": 0,
                "resumed": 0,
            },
        )  # fmt: skip
        row["miners"] += 1
        row["connected"] += int(factory.miner is not None and factory.miner.authorized)
        row["submitted"] += stats.submitted
        row["accepted"] += stats.accepted
        row["rejected"] += sum(stats.rejected.values())
        row["stale"] += stats.rejected.get(21, 0)
        row["duplicate"] += stats.rejected.get(22, 0)
        row["blocks"] += stats.blocks
        row["work"] += stats.work
        row["reconnects"] += max(0, stats.connects - 1)
        row["resumed"] += stats.resumed
    return totals
