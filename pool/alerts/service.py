"""Alerts in a stratum node: the watches asked once a second, events written to the database
and delivered to the webhooks; the share path only tells it of shares and blocks.

Its own events (workers, its tenants' hashrate, blocks its miners found, its Bitcoin node,
its ledger) it writes claimed by itself and delivers at once (with their database id once
written; without, while the database is down: they are written when it is back). Events other
processes wrote (a block orphaned by the tracker, a payout run's) it claims from the database
every few seconds and delivers. Database work runs in threads, one batch at a time; delivery is
on the reactor (pool/alerts/webhooks.py). None of it waits on, or slows, a miner's reply.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet import defer, threads
from twisted.internet.task import LoopingCall

from pool.alerts import store
from pool.alerts.store import NewEvent
from pool.alerts.watch import Flag, HashrateWatch, WorkerWatch
from pool.alerts.webhooks import Dispatcher
from pool.config import AlertSettings
from pool.ledger.records import ShareRecord
from pool.stratum.blocks import FoundBlock

log = logging.getLogger(__name__)

#: Events waiting to be written while the database is down, at most (the oldest go first).
PENDING_MAX = 10_000
#: How often the node looks for other processes' events, and how many it takes at once.
CLAIM_EVERY_S = 5.0
CLAIM_BATCH = 100


class Alerts:
    """The alerts of one stratum node."""

    def __init__(
        self,
        settings: AlertSettings,
        node_name: str,
        engine: Engine | None,
        reactor: Any,
        clock: Callable[[], float] = time.time,
        hashrate_sample_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.node_name = node_name
        self.engine = engine
        self.reactor = reactor
        self.clock = clock
        self.workers = WorkerWatch(settings.down_after)
        self.hashrate = HashrateWatch(
            settings.hashrate_drop_fraction,
            settings.hashrate_window_s,
            settings.hashrate_baseline_s,
        )
        self.hashrate_sample_s = min(hashrate_sample_s, settings.hashrate_window_s / 5)
        self.node = Flag("node_unreachable", "node_reachable", "node", settings.node_down_after_s)
        self.ledger = Flag("ledger_spooling", "ledger_recovered", "ledger", 0.0)
        self.dispatcher = Dispatcher(settings, reactor)
        self.stats: Counter[str] = Counter()
        self._pending: list[NewEvent] = []  # to be written
        self._writing = False
        self._claiming = False
        self._last_claim = 0.0
        self._last_sample = 0.0
        self._loop: LoopingCall | None = None
        self.node_ok: Callable[[], tuple[bool, str]] = lambda: (True, "")
        self.ledger_ok: Callable[[], bool] = lambda: True
        self.work_by_tenant: Callable[[], dict[str, float]] = dict

    # --- from the share path -------------------------------------------------------------

    def on_share(self, share: ShareRecord) -> None:
        event = self.workers.share(share.tenant, share.worker, share.time)
        if event is not None:
            self.emit(event)

    def on_block(self, block: FoundBlock) -> None:
        share = block.share
        self.emit(
            NewEvent(
                "block_found",
                block.hash,
                {
                    "height": share.height,
                    "worker": share.worker,
                    "site": share.site,
                    "accepted": block.accepted,
                    "node_answer": block.answer,
                },
                tenant=share.tenant,
            )
        )

    def worker_state(self, tenant: str, worker: str) -> str | None:
        return self.workers.state(tenant, worker)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, interval_s: float = 1.0) -> None:
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.reactor
        self._loop.start(interval_s, now=False).addErrback(
            lambda f: log.error("alerts stopped: %s", f.getErrorMessage())
        )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def tick(self) -> None:
        """Once a second: the watches, then the database. Never raises: a watch that fails
        is logged and the others (and the next pass) go on."""
        now = self.clock()
        watches: list[tuple[str, Callable[[], list[NewEvent | None]]]] = [
            ("workers", lambda: list(self.workers.check(now))),
            ("node", lambda: [self.node.check(*self.node_ok(), now=now)]),
            ("ledger", lambda: [self.ledger.check(self.ledger_ok(), now=now)]),
            ("hashrate", lambda: self._sample_hashrate(now)),
            ("database", lambda: _nothing(self._flush)),
            ("claims", lambda: _nothing(self._claim)),
        ]
        for name, watch in watches:
            try:
                events = watch()
            except Exception:
                self.stats["errors"] += 1
                log.exception("alerts: the %s watch failed; the others go on", name)
                continue
            for event in events:
                if event is not None:
                    self.emit(event)

    def _sample_hashrate(self, now: float) -> list[NewEvent | None]:
        if now - self._last_sample < self.hashrate_sample_s:
            return []
        self._last_sample = now
        return list(self.hashrate.sample(self.work_by_tenant(), now))

    # --- events --------------------------------------------------------------------------

    def emit(self, event: NewEvent) -> None:
        """Count it, log it, write it (in a thread, soon) and deliver it."""
        self.stats[event.kind] += 1
        log.info("event %s: %s %s", event.kind, event.subject, event.data)
        if self.engine is None:
            self._deliver(event.as_json(None, self.node_name))
            return
        if len(self._pending) >= PENDING_MAX:
            self.stats["not_written"] += 1
            dropped = self._pending.pop(0)
            self._deliver(dropped.as_json(None, self.node_name))
        self._pending.append(event)
        if not self._writing:
            self.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        if self._writing or not self._pending or self.engine is None:
            return
        batch, self._pending = self._pending, []
        self._writing = True
        d = threads.deferToThread(store.record_all, self.engine, batch, self.node_name)

        def written(ids: list[int]) -> None:
            for event, event_id in zip(batch, ids, strict=True):
                if not event.delivered:  # (those written late went out when they happened)
                    self._deliver(event.as_json(event_id, self.node_name))

        def failed(failure: Any) -> None:
            # The database is down (the ledger watch says so too): deliver now, write later.
            self.stats["write_failures"] += 1
            if failure.check(SQLAlchemyError) is None:
                log.error("alerts: writing events failed: %s", failure.getTraceback())
            for event in batch:
                if not event.delivered:
                    event.delivered = True
                    self._deliver(event.as_json(None, self.node_name))
            self._pending[:0] = batch
            del self._pending[:-PENDING_MAX]

        def done(_: Any) -> None:
            self._writing = False

        d.addCallbacks(written, failed).addBoth(done)

    def _deliver(self, event: dict[str, Any]) -> None:
        """To the webhooks; the database notes which it reached (for an event written)."""
        event_id = event.get("id")

        def delivered(reached: list[str], ok: bool) -> None:
            if event_id is not None and self.engine is not None:
                d = threads.deferToThread(store.delivered, self.engine, event_id, reached, ok)
                d.addErrback(lambda f: log.warning("alerts: %s", f.getErrorMessage()))

        self.dispatcher.deliver(event, delivered, tuple(event.get("delivered_to") or ()))

    def _claim(self) -> None:
        """Deliver events other processes wrote (and own ones a dead node left)."""
        now = self.clock()
        if self._claiming or self.engine is None or now - self._last_claim < CLAIM_EVERY_S:
            return
        if len(self.dispatcher.queue) >= self.settings.queue_max // 2:
            return  # the webhooks are behind: leave the rest in the database
        self._last_claim = now
        self._claiming = True
        d: defer.Deferred[list[dict[str, Any]]] = threads.deferToThread(
            store.claim, self.engine, self.node_name, CLAIM_BATCH
        )

        def take(events: list[dict[str, Any]]) -> None:
            for event in events:
                self.stats["claimed"] += 1
                self._deliver(event)

        d.addCallback(take)
        d.addErrback(lambda f: log.debug("alerts: claim failed: %s", f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_claiming", False))


def _nothing(step: Callable[[], None]) -> list[NewEvent | None]:
    """Run a step that makes no events (the tick's list of watches wants events)."""
    step()
    return []
