"""The simulated fleet (`farmpool simulate`) against `farmpool serve`: two sites' ports, two
tenants, miners that slip (stale and duplicate shares) and restart part way; the pool answers
the slips as stale (21) or duplicate (22), the restarted miners resume their sessions, and
the ledger holds every share the fleet saw accepted and none it saw rejected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from pool.ledger.db import make_engine
from pool.ledger.models import Share
from tests.e2e.farmpool_serve import ServeProcess, fixed_listener

MINERS = 10  # per tenant and site


def test_a_fleet_of_two_sites_slips_restarts_and_is_counted_exactly(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> None:
    config = dict(bcoin_config)
    # Share difficulty 3e-10 is below regtest's 4.66e-10: some shares are blocks, some not,
    # so the jobs change (clean) now and then and a miner's old job can go stale.
    config["listeners"] = [fixed_listener(site, site, low=3e-10) for site in ("north", "south")]
    server = serve_factory(config)
    ports = ",".join(f"127.0.0.1:{server.port(site)}" for site in ("north", "south"))
    run = subprocess.run(
        [
            sys.executable, "-m", "pool", "simulate", "--connect", ports,
            "--tenants", "acme,globex", "--miners", str(MINERS),
            "--hashrate", "2.6", "--seconds", "8",
            "--stale-rate", "0.15", "--duplicate-rate", "0.15", "--reconnect-after", "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    totals = json.loads(run.stdout.strip().splitlines()[-1])["tenants"]
    assert set(totals) == {"acme", "globex"}
    for tenant, row in totals.items():
        assert row["miners"] == 2 * MINERS and row["connected"] == 2 * MINERS, (tenant, row)
        assert row["accepted"] > 2 * MINERS, (tenant, row)
        # Half the miners restart once and get their extranonce1 back.
        assert row["reconnects"] == MINERS and row["resumed"] == MINERS, (tenant, row)
        # Only slips are rejected, as stale or duplicate.
        assert row["rejected"] == row["stale"] + row["duplicate"], (tenant, row)
    # Both kinds of slip happen: a share sent twice is sent while its job is current.
    assert sum(r["stale"] for r in totals.values()) > 0, totals
    assert sum(r["duplicate"] for r in totals.values()) > 0, totals
    # Every share the fleet saw accepted is in the ledger; no rejected one is. (Shares whose
    # answer was still on its way when a miner restarted or the run ended may be there too.)
    engine = make_engine(config["database_url"])
    try:
        with engine.connect() as conn:
            in_ledger = conn.execute(select(func.count()).select_from(Share)).scalar()
    finally:
        engine.dispose()
    accepted = sum(r["accepted"] for r in totals.values())
    answered_or_not = sum(r["submitted"] - r["rejected"] for r in totals.values())
    assert accepted <= in_ledger <= answered_or_not, (accepted, in_ledger, answered_or_not)
