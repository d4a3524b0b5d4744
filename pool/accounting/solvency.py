"""Owed against spendable: what the tenants are owed now and what the payout wallet can spend.

Under PPS/FPPS the pool credits shares from its own funds as they come in and bears the
variance of the blocks it finds; under any scheme, owed balances wait for a payout run. This
is the figure that says whether the wallet could pay them all.

Where it sits: `farmpool serve`'s money loop (pool/service.py) measures it after each tracker
pass, in its own thread (a database query and a wallet call), and publishes it here; /metrics
(pool/api/metrics.py) shows the latest measurement from the reactor thread without blocking.
`farmpool payout --dry-run` computes the same figures for its plan (pool/accounting/payout.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from pool.accounting.payout import balances
from pool.accounting.wallet import Wallet
from pool.config import PayoutSettings


@dataclass(frozen=True)
class Solvency:
    owed_sat: int  # every tenant's owed balance (mature credits less payouts)
    immature_sat: int  # credits of blocks not yet mature (owed once they are)
    spendable_sat: int | None  # what the payout wallet can spend now; None: not known
    measured_at: float  # epoch seconds


_latest: Solvency | None = None


def measure(engine: Engine, wallet: Wallet | None, settings: PayoutSettings) -> Solvency:
    """Measure now (blocking: off the reactor). Without a wallet, spendable is not known."""
    with engine.connect() as conn:
        rows = balances(conn, settings)
    spendable = wallet.spendable_sat() if wallet is not None else None
    return Solvency(
        sum(max(0, b.owed_sat) for b in rows),
        sum(b.immature_sat for b in rows),
        spendable,
        time.time(),
    )


def publish(solvency: Solvency) -> None:
    """Make a measurement the one /metrics shows (one reference assignment: atomic)."""
    global _latest
    _latest = solvency


def latest() -> Solvency | None:
    return _latest
