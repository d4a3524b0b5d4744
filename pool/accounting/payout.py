"""Balances and payout runs: every tenant paid what it is owed, exactly once.

Where it sits: the tracker and PPS crediting write credits; this module derives balances from
them and pays mature balances through the node's wallet (pool/accounting/wallet.py).

A tenant's balances, all from the money ledger (integer satoshis):
  immature = its credits of blocks not yet mature;  mature = its mature credits;
  paid = its payout items whose transaction is not void;  owed = mature - paid (never < 0).

A run (`farmpool payout --execute`) holds the payout lock (one run at a time) and:
  1. recovers what an earlier run left: a transaction recorded as signed is looked up in the
     wallet; if the node has it, it is marked sent; if not, the SAME signed transaction is
     broadcast again (it cannot pay twice: same inputs, same txid); if it can never confirm
     (no output of it is in the node's chain or mempool, and an input of it is spent), it is
     marked void and its tenants are owed the amounts again;
  2. plans: tenants whose owed balance reaches their threshold and whose address the node
     accepts, in batches of `outputs_per_tx`;
  3. per batch: builds and signs the transaction (no money moves), records it with its items
     (status signed, one database transaction), broadcasts it, waits for the wallet to see
     it, and marks it sent. An interruption before the record leaves nothing behind (the
     signed transaction was never sent); after it, step 1 of the next run completes it.
Failpoints (FARMPOOL_FAILPOINT=name kills the process there) let tests interrupt every step.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, select, update

from pool.accounting.runlock import run_lock
from pool.accounting.wallet import (
    AddressRejected,
    BroadcastFailed,
    SignedTx,
    Wallet,
    WalletError,
    btc_text,
)
from pool.config import PayoutSettings
from pool.ledger.models import Credit, Payout, PayoutItem, Tenant

#: Payout statuses whose items count as paid.
LIVE = ("signed", "sent", "confirmed")

Progress = Callable[[str], None]


_passed: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die here (SIGKILL, as a crash would) if FARMPOOL_FAILPOINT names this point: `NAME`
    the first time the run passes it, `NAME:N` the N-th time."""
    wanted = os.environ.get("FARMPOOL_FAILPOINT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)


class PayoutError(RuntimeError):
    """A run that could not go on; what was done before it stays done and recorded."""


@dataclass
class Balance:
    tenant_id: int
    tenant: str
    address: str | None
    threshold_sat: int
    immature_sat: int = 0
    mature_sat: int = 0
    paid_sat: int = 0

    @property
    def owed_sat(self) -> int:
        return self.mature_sat - self.paid_sat

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "address": self.address,
            "threshold_sat": self.threshold_sat,
            "immature_sat": self.immature_sat,
            "mature_sat": self.mature_sat,
            "paid_sat": self.paid_sat,
            "owed_sat": self.owed_sat,
        }


def balances(conn: Connection, settings: PayoutSettings) -> list[Balance]:
    """Every tenant's balances, by tenant name."""
    out: dict[int, Balance] = {}
    for tenant_id, name, address, threshold in conn.execute(
        select(Tenant.id, Tenant.name, Tenant.payout_address, Tenant.payout_threshold_sat)
    ):
        out[tenant_id] = Balance(
            tenant_id, name, address, threshold if threshold is not None else settings.threshold_sat
        )
    credited = conn.execute(
        select(
            Credit.tenant_id,
            func.sum(case((Credit.status == "immature", Credit.amount_sat), else_=0)),
            func.sum(case((Credit.status == "mature", Credit.amount_sat), else_=0)),
        )
        .where(Credit.tenant_id.is_not(None))
        .group_by(Credit.tenant_id)
    )
    for tenant_id, immature, mature in credited:
        out[tenant_id].immature_sat = int(immature or 0)
        out[tenant_id].mature_sat = int(mature or 0)
    paid = conn.execute(
        select(PayoutItem.tenant_id, func.sum(PayoutItem.amount_sat))
        .join(Payout, Payout.id == PayoutItem.payout_id)
        .where(Payout.status.in_(LIVE))
        .group_by(PayoutItem.tenant_id)
    )
    for tenant_id, amount in paid:
        out[tenant_id].paid_sat = int(amount or 0)
    return sorted(out.values(), key=lambda b: b.tenant)


def owed_by_site(conn: Connection) -> dict[int, dict[int | None, int]]:
    """tenant -> site -> owed satoshis (mature credits earned at the site less what was paid
    for it): how a tenant's payment is split into payout items, one per site."""
    owed: dict[int, dict[int | None, int]] = {}
    for tenant_id, site_id, amount in conn.execute(
        select(Credit.tenant_id, Credit.site_id, func.sum(Credit.amount_sat))
        .where(Credit.tenant_id.is_not(None), Credit.status == "mature")
        .group_by(Credit.tenant_id, Credit.site_id)
    ):
        if tenant_id is not None:
            owed.setdefault(tenant_id, {})[site_id] = int(amount or 0)
    for tenant_id, site_id, amount in conn.execute(
        select(PayoutItem.tenant_id, PayoutItem.site_id, func.sum(PayoutItem.amount_sat))
        .join(Payout, Payout.id == PayoutItem.payout_id)
        .where(Payout.status.in_(LIVE))
        .group_by(PayoutItem.tenant_id, PayoutItem.site_id)
    ):
        sites = owed.setdefault(tenant_id, {})
        sites[site_id] = sites.get(site_id, 0) - int(amount or 0)
    return owed


def _parts(total: int, by_site: dict[int | None, int]) -> tuple[tuple[int | None, int], ...]:
    """A payment of `total` as (site, amount) items: each site's positive owed amount, and
    whatever does not match (credits from before sites were tracked) without a site."""
    parts: list[tuple[int | None, int]] = sorted(
        (site, amount) for site, amount in by_site.items() if site is not None and amount > 0
    )
    rest = total - sum(amount for _, amount in parts)
    if rest < 0:  # more owed by site than in total (old unattributed payments): no split
        return ((None, total),)
    if rest > 0:
        parts.append((None, rest))
    return tuple(parts)


@dataclass(frozen=True)
class Payment:
    tenant_id: int
    tenant: str
    address: str
    amount_sat: int
    parts: tuple[tuple[int | None, int], ...] = ()  # (site, satoshis): the payout items


@dataclass
class Plan:
    """Who gets paid now, in which batches; who does not, and why."""

    batches: list[list[Payment]]
    skipped: list[tuple[str, int, str]]  # tenant, owed, reason
    below_threshold: list[Balance]
    immature_sat: int

    @property
    def total_sat(self) -> int:
        return sum(p.amount_sat for batch in self.batches for p in batch)


def plan_payouts(conn: Connection, settings: PayoutSettings, wallet: Wallet) -> Plan:
    due: list[Payment] = []
    skipped: list[tuple[str, int, str]] = []
    below: list[Balance] = []
    immature = 0
    by_site = owed_by_site(conn)
    for b in balances(conn, settings):
        immature += b.immature_sat
        if b.owed_sat <= 0:
            continue
        if b.owed_sat < b.threshold_sat:
            below.append(b)
            continue
        if not b.address:
            skipped.append((b.tenant, b.owed_sat, "no payout address (farmpool tenant set)"))
            continue
        try:
            wallet.check_address(b.address)
        except AddressRejected as exc:
            skipped.append((b.tenant, b.owed_sat, str(exc)))
            continue
        parts = _parts(b.owed_sat, by_site.get(b.tenant_id, {}))
        due.append(Payment(b.tenant_id, b.tenant, b.address, b.owed_sat, parts))
    size = settings.outputs_per_tx
    # Two tenants with one address would be two outputs to one script: a batch pays each
    # address once, so such tenants go to different batches.
    batches: list[list[Payment]] = []
    for payment in due:
        for batch in batches:
            if len(batch) < size and all(p.address != payment.address for p in batch):
                batch.append(payment)
                break
        else:
            batches.append([payment])
    return Plan(batches, skipped, below, immature)


@dataclass
class RunSummary:
    """What a run did, for the operator and for `--json`."""

    recovered: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    owed: list[dict[str, Any]] = field(default_factory=list)
    immature_sat: int = 0
    error: str | None = None
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "recovered": self.recovered,
            "sent": self.sent,
            "skipped": self.skipped,
            "owed_below_threshold": self.owed,
            "immature_sat": self.immature_sat,
            "error": self.error,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(engine: Engine, payout_id: int, old: str, new: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.status == old)
            .values(status=new, **values)
        )


def recover(engine: Engine, wallet: Wallet, progress: Progress) -> list[dict[str, Any]]:
    """Complete what earlier runs left: signed -> sent (or void); sent -> confirmed."""
    done: list[dict[str, Any]] = []
    with engine.connect() as conn:
        open_payouts = conn.execute(
            select(Payout.id, Payout.txid, Payout.raw_hex, Payout.status, Payout.total_sat)
            .where(Payout.status.in_(("signed", "sent")))
            .order_by(Payout.id)
        ).all()
    for payout_id, txid, raw_hex, status, total in open_payouts:
        confirmations = wallet.confirmations(txid)
        if confirmations is not None and confirmations > 0:
            _mark(
                engine,
                payout_id,
                status,
                "confirmed",
                confirmed_at=_now(),
                **({"sent_at": _now()} if status == "signed" else {}),
            )
            new = "confirmed"
        elif confirmations == 0 and status == "sent":
            continue  # in the mempool, as it should be
        elif confirmations == 0:
            _mark(engine, payout_id, "signed", "sent", sent_at=_now())
            new = "sent"
        else:
            # Unknown to the wallet (never sent, or dropped), or conflicted: send it again.
            try:
                wallet.broadcast(raw_hex)
            except BroadcastFailed as exc:
                seen = wallet.seen_by_node(raw_hex)  # the node has it; the wallet forgot
                if seen is not None:
                    new = "confirmed" if seen == "chain" else "sent"
                    if new != status:
                        stamp = "confirmed_at" if new == "confirmed" else "sent_at"
                        _mark(engine, payout_id, status, new, **{stamp: _now()})
                    done.append({"payout": payout_id, "txid": txid, "status": new})
                    continue
                if wallet.inputs_spent_elsewhere(raw_hex):
                    note = f"void: its inputs were spent by another transaction ({exc})"
                    _mark(engine, payout_id, status, "void", note=note)
                    progress(
                        f"payout {payout_id} {txid} can never confirm: void; "
                        "its tenants are owed the amounts again"
                    )
                    done.append({"payout": payout_id, "txid": txid, "status": "void"})
                    continue
                raise PayoutError(
                    f"payout {payout_id} (txid {txid}, {btc_text(total)} BTC) is recorded but "
                    f"the node refuses it: {exc}. Nothing else was paid; fix the node and run "
                    "again (the same transaction is sent, never a second one)."
                ) from None
            if not wallet.wait_known(txid):
                raise PayoutError(
                    f"payout {payout_id} (txid {txid}) was sent again but the wallet has not "
                    "seen it in 30 s; run again once it has"
                )
            if status == "signed":
                _mark(engine, payout_id, "signed", "sent", sent_at=_now())
            new = "sent"
        progress(f"payout {payout_id} {txid}: {status} -> {new}")
        done.append({"payout": payout_id, "txid": txid, "status": new, "total_sat": total})
    return done


def _record(
    engine: Engine, batch: list[Payment], signed: SignedTx, settings: PayoutSettings
) -> int:
    """Record a signed transaction and its items (one database transaction); the balances
    are checked again inside it, under the payout lock."""
    with engine.begin() as conn:
        owed = {b.tenant_id: b.owed_sat for b in balances(conn, settings)}
        for p in batch:
            if owed.get(p.tenant_id, 0) < p.amount_sat:
                raise PayoutError(
                    f"tenant {p.tenant} is owed {owed.get(p.tenant_id, 0)} sat, not "
                    f"{p.amount_sat}: the ledger changed under the run; nothing was sent"
                )
        payout_id = conn.execute(
            insert(Payout).returning(Payout.id),
            {
                "txid": signed.txid,
                "raw_hex": signed.hex,
                "total_sat": sum(p.amount_sat for p in batch),
                "fee_sat": signed.fee_sat,
                "outputs": len(batch),
                "status": "signed",
                "created_at": _now(),
            },
        ).scalar_one()
        conn.execute(
            insert(PayoutItem),
            [
                {
                    "payout_id": payout_id,
                    "tenant_id": p.tenant_id,
                    "site_id": site_id,
                    "address": p.address,
                    "amount_sat": amount,
                }
                for p in batch
                for site_id, amount in (p.parts or ((None, p.amount_sat),))
            ],
        )
    return int(payout_id)


def run_payouts(
    engine: Engine,
    wallet: Wallet,
    settings: PayoutSettings,
    *,
    execute: bool,
    progress: Progress = lambda _: None,
) -> RunSummary:
    """A payout run (dry: plan and report only; nothing is written or sent)."""
    summary = RunSummary(dry_run=not execute)
    with run_lock(engine, "payout"):
        if execute:
            summary.recovered = recover(engine, wallet, progress)
        with engine.connect() as conn:
            plan = plan_payouts(conn, settings, wallet)
        summary.skipped = [
            {"tenant": t, "owed_sat": owed, "reason": why} for t, owed, why in plan.skipped
        ]
        summary.owed = [b.to_json() for b in plan.below_threshold]
        summary.immature_sat = plan.immature_sat
        total = len(plan.batches)
        for n, batch in enumerate(plan.batches, 1):
            amount = sum(p.amount_sat for p in batch)
            entry: dict[str, Any] = {
                "batch": n,
                "outputs": len(batch),
                "total_sat": amount,
                "payments": [
                    {"tenant": p.tenant, "address": p.address, "amount_sat": p.amount_sat}
                    for p in batch
                ],
            }
            if not execute:
                progress(
                    f"batch {n}/{total}: would pay {btc_text(amount)} BTC to {len(batch)} tenants"
                )
                summary.sent.append(entry)
                continue
            try:
                failpoint("before-build")
                signed = wallet.build([(p.address, p.amount_sat) for p in batch])
                failpoint("after-sign")
                payout_id = _record(engine, batch, signed, settings)
                failpoint("after-record")
                wallet.broadcast(signed.hex)
                failpoint("after-broadcast")
                if not wallet.wait_known(signed.txid):
                    raise PayoutError(
                        f"the wallet has not seen {signed.txid} 30 s after it was sent; "
                        "run again once it has (the same transaction is used)"
                    )
                _mark(engine, payout_id, "signed", "sent", sent_at=_now())
                failpoint("after-mark-sent")
            except (WalletError, PayoutError) as exc:
                summary.error = f"batch {n}/{total}: {exc}"
                progress(summary.error)
                break
            entry.update(payout=payout_id, txid=signed.txid, fee_sat=signed.fee_sat)
            summary.sent.append(entry)
            progress(
                f"batch {n}/{total}: paid {btc_text(amount)} BTC to {len(batch)} tenants "
                f"in {signed.txid} (fee {signed.fee_sat} sat)"
            )
    return summary
