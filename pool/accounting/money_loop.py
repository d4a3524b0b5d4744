"""The money loop: one pass of the steps that turn the ledger into money, each on its own.

Where it sits: `serve` runs a pass every `payout.tracker_interval_s` (pool/service.py) and
`farmpool blocks update` runs one. The steps, in order: the sites' calendars and energy hours
up to now (hosting accounting), the block tracker (blocks to maturity or orphaned, credited by
the scheme), and PPS crediting when the scheme pays per share. Each step runs in its own try:
a step that fails is logged and reported in the pass's `failures`, and the steps after it run
all the same (a hosting-accounting failure does not hold back block crediting). The pass holds
the tracker lock (pool/accounting/runlock.py): several stratum nodes on one database take
turns, and one that finds it held gets LockBusy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine

from pool.accounting.chainview import ChainView
from pool.accounting.energy import update_energy
from pool.accounting.pps import AccrualReport, accrue_pps
from pool.accounting.runlock import run_lock
from pool.accounting.scheme_registry import scheme
from pool.accounting.tracker import TrackerReport, track_blocks
from pool.config import Settings

log = logging.getLogger("farmpool")

T = TypeVar("T")


@dataclass(frozen=True)
class StepFailure:
    """A step of the pass that raised: its name (energy, blocks, pps) and what it raised."""

    step: str
    error: Exception


@dataclass
class MoneyPass:
    """What a pass did (`text`, one summary line), the problems the tracker reported that the
    operator must look at (`errors`), and the steps that failed."""

    text: str = ""
    errors: list[str] = field(default_factory=list)
    failures: list[StepFailure] = field(default_factory=list)


def run_pass(engine: Engine, settings: Settings, chain: ChainView) -> MoneyPass:
    """One pass of every step (blocking: run it off the reactor). Raises LockBusy when another
    pass holds the tracker lock."""
    result = MoneyPass()

    def step(name: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception as exc:
            log.error("money loop: %s failed: %s: %s", name, type(exc).__name__, exc)
            result.failures.append(StepFailure(name, exc))
            return None

    pps: AccrualReport | None = None
    with run_lock(engine, "tracker"):
        energy = step("energy", lambda: update_energy(engine))
        tracked: TrackerReport | None = step(
            "blocks", lambda: track_blocks(engine, chain, settings.payout)
        )
        if scheme(settings.payout.scheme).per_share:
            pps = step("pps", lambda: accrue_pps(engine, chain, settings.payout))
    parts = []
    if tracked is not None:
        parts.append(tracked.summary())
        result.errors = list(tracked.errors)
    if pps is not None:
        parts.append(
            f"{settings.payout.scheme}: {pps.shares} shares credited {pps.credited_sat} sat"
        )
    if energy:
        parts.append(f"energy: {energy} hour rows")
    result.text = "; ".join(parts)
    return result
