"""Balances and payout runs: every tenant paid what it is owed, exactly once.

Where it sits: the tracker and PPS crediting write credits; this module derives balances from
them and pays mature balances through the node's wallet (pool/accounting/wallet.py).

A tenant's balances, all from the money ledger (integer satoshis):
  immature = its credits of blocks not yet mature;  mature = its mature credits;
  paid = its payout items whose transaction is not void;  owed = mature - paid (never < 0).

A run (`farmpool payout --execute`) holds the payout lock (one run at a time) and:
  1. recovers what an earlier run left: a transaction recorded as signed is looked up in the
     wallet; if the node has it, it is marked sent; if not, the SAME signed transaction is
     broadcast again (it cannot pay twice: same inputs, same txid). If the node refuses it,
     pool/accounting/conflicts.py finds what spends its inputs: a replacement that pays the
     same outputs (a fee bump, a malleated copy) is the payout itself (`paid_by_txid`);
     something else makes it void (its tenants are owed again) only once that is confirmed
     deeply; anything undecided leaves it as it is, or stops the run;
  2. plans: tenants whose owed balance reaches their threshold (never below the dust floor)
     and whose address the node accepts, smallest balance first, as far as the wallet's
     spendable funds go, in batches of `outputs_per_tx`;
  3. per batch: builds and signs the transaction (no money moves; a payment whose output the
     wallet refuses is left out and reported, and so are the largest payments if the wallet
     runs short), records it with its items (status signed, one database transaction),
     broadcasts it, waits for the wallet to see it, and marks it sent. An interruption
     before the record leaves nothing behind (the signed transaction was never sent); after
     it, step 1 of the next run completes it.
Failpoints (FARMPOOL_FAILPOINT=name kills the process there) let tests interrupt every step.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from pool.accounting import conflicts
from pool.accounting.chainview import ChainView
from pool.accounting.runlock import run_lock
from pool.accounting.wallet import (
    AddressRejected,
    BroadcastFailed,
    InsufficientFunds,
    SignedTx,
    Wallet,
    WalletError,
    WalletLocked,
)
from pool.alerts import store as alert_events
from pool.alerts.store import NewEvent
from pool.chain.addresses import address_to_script
from pool.config import DUST_FLOOR_SAT, PayoutSettings
from pool.errors import OperationFailed
from pool.ledger.models import Credit, Payout, PayoutItem, Tenant
from pool.units import btc_text

log = logging.getLogger(__name__)

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


class PayoutError(RuntimeError, OperationFailed):
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
        """Every field but the tenant's id, then owed_sat."""
        shown = asdict(self)
        del shown["tenant_id"]
        return {**shown, "owed_sat": self.owed_sat}


def balances(conn: Connection, settings: PayoutSettings) -> list[Balance]:
    """Every tenant's balances, by tenant name."""
    out: dict[int, Balance] = {}
    for tenant_id, name, address, threshold in conn.execute(
        select(Tenant.id, Tenant.name, Tenant.payout_address, Tenant.payout_threshold_sat)
    ):
        threshold = settings.threshold_sat if threshold is None else threshold
        # A threshold stored before the dust floor existed counts as the floor.
        out[tenant_id] = Balance(tenant_id, name, address, max(threshold, DUST_FLOOR_SAT))
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
    """Who gets paid now, in which batches; who does not, and why; what is owed against what
    the wallet can spend."""

    batches: list[list[Payment]]
    skipped: list[tuple[str, int, str]]  # tenant, owed, reason
    below_threshold: list[Balance]
    immature_sat: int
    owed_sat: int = 0  # every tenant's owed balance
    due_sat: int = 0  # of it, at or above thresholds, to an address the node takes
    spendable_sat: int | None = None  # what the wallet can spend (None: not asked)
    unfunded_sat: int = 0  # due, but more than the wallet can spend: not paid in this run

    @property
    def total_sat(self) -> int:
        return sum(p.amount_sat for batch in self.batches for p in batch)


def not_funded(spendable: int, owed: int) -> str:
    return (
        f"not enough spendable funds: the wallet can spend {btc_text(spendable)} BTC, "
        f"{btc_text(owed)} BTC is due (balances are paid smallest first; fund the wallet "
        "and run again)"
    )


def plan_payouts(
    conn: Connection, settings: PayoutSettings, wallet: Wallet, spendable: int | None = None
) -> Plan:
    """Who is paid, in the documented order: smallest owed balance first (then by tenant
    name), so that a wallet that cannot fund everyone pays as many tenants as it can; with
    `spendable`, the balances beyond it are not paid (and say why)."""
    due: list[Payment] = []
    skipped: list[tuple[str, int, str]] = []
    below: list[Balance] = []
    immature = owed = 0
    by_site = owed_by_site(conn)
    for b in balances(conn, settings):
        immature += b.immature_sat
        if b.owed_sat <= 0:
            continue
        owed += b.owed_sat
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
    due.sort(key=lambda p: (p.amount_sat, p.tenant))
    due_sat = sum(p.amount_sat for p in due)
    funded = due
    if spendable is not None:
        total = 0
        for n, payment in enumerate(due):
            if total + payment.amount_sat > spendable:
                funded = due[:n]
                skipped.extend(
                    (p.tenant, p.amount_sat, not_funded(spendable, due_sat)) for p in due[n:]
                )
                break
            total += payment.amount_sat
    size = settings.outputs_per_tx
    # Two tenants with one address would be two outputs to one script: a batch pays each
    # address once, so such tenants go to different batches.
    batches: list[list[Payment]] = []
    for payment in funded:
        for batch in batches:
            if len(batch) < size and all(p.address != payment.address for p in batch):
                batch.append(payment)
                break
        else:
            batches.append([payment])
    unfunded = due_sat - sum(p.amount_sat for p in funded)
    return Plan(batches, skipped, below, immature, owed, due_sat, spendable, unfunded)


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
    #: owed_sat, due_sat, spendable_sat, unfunded_sat (Plan's), as the run started.
    solvency: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "recovered": self.recovered,
            "sent": self.sent,
            "skipped": self.skipped,
            "owed_below_threshold": self.owed,
            "immature_sat": self.immature_sat,
            "solvency": self.solvency,
            "error": self.error,
        }

    def skip(self, payment: Payment, reason: str) -> None:
        self.skipped.append(
            {"tenant": payment.tenant, "owed_sat": payment.amount_sat, "reason": reason}
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(engine: Engine, payout_id: int, old: str, new: str, **values: Any) -> None:
    """Move a payout from `old` to `new`; the move from signed to sent (or straight to
    confirmed) is when its tenants are told (an event each, in the same transaction: once)."""
    with engine.begin() as conn:
        moved = conn.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.status == old)
            .values(status=new, **values)
        ).rowcount
        if moved and old == "signed" and new in ("sent", "confirmed"):
            _tell_paid(conn, payout_id)


def _tell_paid(conn: Connection, payout_id: int) -> None:
    txid = conn.execute(select(Payout.txid).where(Payout.id == payout_id)).scalar_one()
    for tenant_id, name, address, amount in conn.execute(
        select(PayoutItem.tenant_id, Tenant.name, func.min(PayoutItem.address),
               func.sum(PayoutItem.amount_sat))
        .join(Tenant, Tenant.id == PayoutItem.tenant_id)
        .where(PayoutItem.payout_id == payout_id)
        .group_by(PayoutItem.tenant_id, Tenant.name)
    ):  # fmt: skip
        event = NewEvent(
            "payout_sent",
            txid,
            {"payout": payout_id, "amount_sat": int(amount), "address": address},
            tenant=name,
        )
        alert_events.record(conn, event, "payout run", tenant_id=tenant_id)


def tell_failed(engine: Engine, error: str) -> None:
    """A payout run stopped on an error: the operator is told (an event), best effort."""
    try:
        with engine.begin() as conn:
            event = NewEvent("payout_failed", "payout run", {"error": error[:500]})
            alert_events.record(conn, event, "payout run")
    except SQLAlchemyError as exc:
        log.warning("the payout_failed event was not written: %s", exc)


def recover(engine: Engine, wallet: Wallet, progress: Progress) -> list[dict[str, Any]]:
    """Complete what earlier runs left: signed -> sent (or void); sent -> confirmed; a payout
    that a replacement paid (a fee bump, a malleated copy) follows the replacement."""
    done: list[dict[str, Any]] = []
    chain = ChainView(wallet.node, wallet.network)
    with engine.connect() as conn:
        open_payouts = conn.execute(
            select(
                Payout.id,
                Payout.txid,
                Payout.raw_hex,
                Payout.status,
                Payout.total_sat,
                Payout.created_at,
                Payout.paid_by_txid,
            )
            .where(Payout.status.in_(("signed", "sent")))
            .order_by(Payout.id)
        ).all()
    for row in open_payouts:
        outcome = _recover_one(engine, wallet, chain, row, progress)
        if outcome is not None:
            done.append(outcome)
    return done


def _stamps(old: str, new: str) -> dict[str, Any]:
    """The times a move from `old` to `new` sets."""
    stamps: dict[str, Any] = {}
    if new == "confirmed":
        stamps["confirmed_at"] = _now()
    if old == "signed" and new in ("sent", "confirmed"):
        stamps["sent_at"] = _now()
    return stamps


def _recover_one(
    engine: Engine, wallet: Wallet, chain: ChainView, row: Any, progress: Progress
) -> dict[str, Any] | None:
    payout_id, txid, raw_hex, status, total, _, paid_by = row
    entry = {"payout": payout_id, "txid": txid, "total_sat": total}
    if paid_by:  # a replacement pays it: its status follows the replacement's
        confirmations = wallet.confirmations(paid_by)
        if confirmations is not None and confirmations >= 0:
            new = "confirmed" if confirmations > 0 else "sent"
            if new == status:
                return None
            _mark(engine, payout_id, status, new, **_stamps(status, new))
            progress(f"payout {payout_id} {txid} (paid by {paid_by}): {status} -> {new}")
            return {**entry, "status": new, "paid_by": paid_by}
        # The replacement is gone or conflicted itself: decide again from the recorded one.
    confirmations = wallet.confirmations(txid)
    if confirmations is not None and confirmations > 0:
        new = "confirmed"
        _mark(engine, payout_id, status, new, **_stamps(status, new))
    elif confirmations == 0 and status == "sent":
        return None  # in the mempool, as it should be
    elif confirmations == 0:
        new = "sent"
        _mark(engine, payout_id, "signed", new, **_stamps(status, new))
    else:
        # Unknown to the wallet (never sent, or dropped), or conflicted: send it again.
        try:
            wallet.broadcast(raw_hex)
        except BroadcastFailed as exc:
            return _refused(engine, wallet, chain, row, progress, exc)
        if not wallet.wait_known(txid):
            raise PayoutError(
                f"payout {payout_id} (txid {txid}) was sent again but the wallet has not "
                "seen it in 30 s; run again once it has"
            )
        new = "sent"
        if status == "signed":
            _mark(engine, payout_id, "signed", new, **_stamps(status, new))
    progress(f"payout {payout_id} {txid}: {status} -> {new}")
    return {**entry, "status": new}


def _refused(
    engine: Engine,
    wallet: Wallet,
    chain: ChainView,
    row: Any,
    progress: Progress,
    exc: BroadcastFailed,
) -> dict[str, Any]:
    """The node refuses a recorded transaction: it holds it already, or another transaction
    spends its inputs (pool/accounting/conflicts.py decides what that means)."""
    payout_id, txid, raw_hex, status, total, created_at, _ = row
    entry = {"payout": payout_id, "txid": txid, "total_sat": total}
    seen = wallet.seen_by_node(raw_hex)  # the node has it; the wallet forgot
    if seen is not None:
        new = "confirmed" if seen == "chain" else "sent"
        if new != status:
            _mark(engine, payout_id, status, new, **_stamps(status, new))
        return {**entry, "status": new}
    verdict = conflicts.resolve(
        wallet,
        chain,
        raw_hex,
        _outputs(engine, payout_id, wallet.network),
        created_at,
        lambda parent: _in_the_way(engine, wallet, parent),
    )
    if verdict.action == "paid":
        new = "confirmed" if verdict.confirmations > 0 else "sent"
        by = verdict.txid if verdict.txid != txid else None
        _mark(
            engine,
            payout_id,
            status,
            new,
            paid_by_txid=by,
            note=f"paid by {verdict.reason}",
            **_stamps(status, new),
        )
        progress(f"payout {payout_id} {txid}: paid by {verdict.reason}: {status} -> {new}")
        return {**entry, "status": new, "paid_by": by}
    if verdict.action == "wait":
        progress(f"payout {payout_id} {txid}: still {status}: {verdict.reason}")
        return {**entry, "status": status, "waiting": verdict.reason}
    if verdict.action == "void":
        _mark(engine, payout_id, status, "void", note=f"void: {verdict.reason} ({exc})")
        progress(
            f"payout {payout_id} {txid} can never confirm ({verdict.reason}): void; "
            "its tenants are owed the amounts again"
        )
        return {**entry, "status": "void"}
    raise PayoutError(
        f"payout {payout_id} (txid {txid}, {btc_text(total)} BTC) is recorded but the node "
        f"refuses it: {exc}; {verdict.reason}. Nothing else was paid; fix the cause and run "
        "again (the same transaction is sent, never a second one)."
    ) from None


def _in_the_way(engine: Engine, wallet: Wallet, txid: str) -> tuple[str, int] | None:
    """If `txid` is a recorded payout that can never confirm -- a replacement paid it, or it
    is void -- what is in its way and how deep (a payout spending its change can then never
    confirm either)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Payout.id, Payout.status, Payout.paid_by_txid).where(Payout.txid == txid)
        ).first()
    if row is None:
        return None
    if row.status == "void":  # voided once what spent its inputs was deep enough
        return f"what voided payout {row.id}", conflicts.VOID_AFTER_CONFIRMATIONS
    if row.paid_by_txid:
        confirmations = wallet.confirmations(row.paid_by_txid)
        if confirmations is not None and confirmations >= 0:
            return row.paid_by_txid, confirmations
    return None


def _outputs(engine: Engine, payout_id: int, network: str) -> conflicts.Outputs:
    """A payout's outputs to tenants, (script, satoshis): one per address, its items' sum."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PayoutItem.address, func.sum(PayoutItem.amount_sat))
            .where(PayoutItem.payout_id == payout_id)
            .group_by(PayoutItem.address)
        ).all()
    return Counter({(address_to_script(a, network), int(amount)): 1 for a, amount in rows})


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


def _refused_outputs(wallet: Wallet, batch: list[Payment]) -> dict[str, str]:
    """Tenant -> the wallet's reason, for each payment the wallet refuses to build even on
    its own (dust, a script it will not pay); nothing is signed for good or sent."""
    refused = {}
    for p in batch:
        try:
            wallet.build([(p.address, p.amount_sat)])
        except (InsufficientFunds, WalletLocked):
            continue  # not this output's fault
        except WalletError as exc:
            refused[p.tenant] = str(exc)
    return refused


def build_batch(
    wallet: Wallet, batch: list[Payment], summary: RunSummary, progress: Progress, label: str
) -> tuple[SignedTx | None, bool]:
    """Fund and sign a batch, leaving out what the wallet cannot pay: a payment whose output
    the wallet refuses (reported with its reason), and, when the wallet runs short, the
    largest payments, one at a time. Returns the signed transaction (None: nothing left to
    pay) and whether the wallet ran short. Raises what stops the run: a locked wallet, or a
    refusal that is not one output's."""
    short = False
    while batch:
        try:
            return wallet.build([(p.address, p.amount_sat) for p in batch]), short
        except InsufficientFunds as exc:
            largest = batch.pop()  # the batch is in payment order: its largest is last
            short = True
            summary.skip(largest, str(exc))
            progress(f"{label}: {largest.tenant} not paid: {exc}")
        except WalletLocked:
            raise
        except WalletError as exc:
            refused = _refused_outputs(wallet, batch)
            if not refused or (len(refused) == len(batch) > 1):
                raise  # the wallet refuses the batch, not an output of it
            for p in [p for p in batch if p.tenant in refused]:
                batch.remove(p)
                summary.skip(p, f"the wallet refuses its output: {refused[p.tenant]}")
                progress(
                    f"{label}: the wallet refuses the output to {p.tenant} ({exc}); "
                    "paying the others without it"
                )
    return None, short


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
        spendable = wallet.spendable_sat()
        with engine.connect() as conn:
            plan = plan_payouts(conn, settings, wallet, spendable)
        summary.skipped = [
            {"tenant": t, "owed_sat": owed, "reason": why} for t, owed, why in plan.skipped
        ]
        summary.owed = [b.to_json() for b in plan.below_threshold]
        summary.immature_sat = plan.immature_sat
        summary.solvency = {
            "owed_sat": plan.owed_sat,
            "due_sat": plan.due_sat,
            "spendable_sat": plan.spendable_sat,
            "unfunded_sat": plan.unfunded_sat,
        }
        if plan.unfunded_sat:
            progress(
                f"the wallet can spend {btc_text(spendable)} BTC of the {btc_text(plan.due_sat)} "
                f"BTC due: {btc_text(plan.unfunded_sat)} BTC waits (smallest balances are paid "
                "first)"
            )
        total = len(plan.batches)
        short = False
        for n, batch in enumerate(plan.batches, 1):
            label = f"batch {n}/{total}"
            if short:  # the wallet ran short on a smaller payment: these larger ones wait
                for p in batch:
                    summary.skip(p, not_funded(spendable, plan.due_sat))
                continue
            if not execute:
                amount = sum(p.amount_sat for p in batch)
                progress(f"{label}: would pay {btc_text(amount)} BTC to {len(batch)} tenants")
                summary.sent.append(_entry(n, batch))
                continue
            try:
                failpoint("before-build")
                signed, short = build_batch(wallet, batch, summary, progress, label)
                if signed is None:
                    continue
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
                summary.error = f"{label}: {exc}"
                progress(summary.error)
                tell_failed(engine, summary.error)
                break
            entry = _entry(n, batch)
            entry.update(payout=payout_id, txid=signed.txid, fee_sat=signed.fee_sat)
            summary.sent.append(entry)
            progress(
                f"{label}: paid {btc_text(entry['total_sat'])} BTC to {len(batch)} tenants "
                f"in {signed.txid} (fee {signed.fee_sat} sat)"
            )
    return summary


def _entry(n: int, batch: list[Payment]) -> dict[str, Any]:
    return {
        "batch": n,
        "outputs": len(batch),
        "total_sat": sum(p.amount_sat for p in batch),
        "payments": [
            {"tenant": p.tenant, "address": p.address, "amount_sat": p.amount_sat} for p in batch
        ],
    }
