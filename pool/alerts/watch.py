"""What turns into events: pure state machines, fed by the stratum node and asked once a second.

- `WorkerWatch`: each worker's shares. It learns the worker's usual interval between shares
  (an average that follows it); a worker silent for longer than its tenant's limit (or 3 of
  its usual intervals, if that is longer) is down, once per episode; its next share says it is
  back up.
- `HashrateWatch`: each tenant's credited work, sampled; its rate over the last window below
  (1 - fraction) x its rate over the baseline before that window is a drop (once), and back
  above (1 - fraction / 2) x that baseline it has recovered.
- `Flag`: a yes/no state (the node answers, the ledger's database answers) that turns into a
  "went bad" event after it stayed bad for a while, and a "came back" event after that.

Nothing here blocks or touches the database; the share path calls `WorkerWatch.share` only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pool.alerts.store import NewEvent

#: How much of each new interval the usual interval takes in (an exponential average).
INTERVAL_WEIGHT = 0.2
#: A worker is down after this many of its usual intervals without a share (or the limit).
DOWN_INTERVALS = 3.0
#: Workers down this long are forgotten (their episode is in the database's events).
FORGET_AFTER_S = 7 * 86400.0


@dataclass
class _Worker:
    last: float
    interval: float = 0.0  # the usual seconds between shares (0: not known yet)
    down_since: float | None = None


class WorkerWatch:
    """Every worker this stratum node has seen a share from, by (tenant, worker)."""

    def __init__(self, down_after: Callable[[str], float]) -> None:
        self.down_after = down_after
        self.workers: dict[tuple[str, str], _Worker] = {}

    def share(self, tenant: str, worker: str, now: float) -> NewEvent | None:
        """A share: the hot path (a dict update); an event if the worker was down."""
        key = (tenant, worker)
        seen = self.workers.get(key)
        if seen is None:
            self.workers[key] = _Worker(now)
            return None
        gap = now - seen.last
        seen.last = now
        if seen.down_since is not None:
            down_for = now - seen.down_since
            seen.down_since = None
            return NewEvent(
                "worker_up",
                f"{tenant}.{worker}",
                {"worker": worker, "silent_s": round(gap, 1), "down_s": round(down_for, 1)},
                tenant=tenant,
            )
        if gap > 0:
            seen.interval = (
                gap
                if not seen.interval
                else (seen.interval + INTERVAL_WEIGHT * (gap - seen.interval))
            )
        return None

    def limit(self, tenant: str, state: _Worker) -> float:
        return max(self.down_after(tenant), DOWN_INTERVALS * state.interval)

    def check(self, now: float) -> list[NewEvent]:
        """Workers that just went down."""
        events = []
        forget = []
        for (tenant, worker), state in self.workers.items():
            silent = now - state.last
            if state.down_since is not None:
                if silent > FORGET_AFTER_S:
                    forget.append((tenant, worker))
                continue
            limit = self.limit(tenant, state)
            if silent > limit:
                state.down_since = now
                events.append(
                    NewEvent(
                        "worker_down",
                        f"{tenant}.{worker}",
                        {
                            "worker": worker,
                            "silent_s": round(silent, 1),
                            "limit_s": round(limit, 1),
                            "usual_interval_s": round(state.interval, 3) or None,
                        },
                        tenant=tenant,
                    )
                )
        for key in forget:
            del self.workers[key]
        return events

    def state(self, tenant: str, worker: str) -> str | None:
        seen = self.workers.get((tenant, worker))
        if seen is None:
            return None
        return "down" if seen.down_since is not None else "up"


@dataclass
class _Tenant:
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, total work)
    dropped_from: float | None = None  # the baseline rate when the drop was told


class HashrateWatch:
    """Each tenant's hashrate against its own recent past."""

    def __init__(self, fraction: float, window_s: float, baseline_s: float) -> None:
        self.fraction = fraction
        self.window_s = window_s
        self.baseline_s = baseline_s
        self.tenants: dict[str, _Tenant] = {}

    def sample(self, work_by_tenant: dict[str, float], now: float) -> list[NewEvent]:
        """Cumulative credited work per tenant (difficulty units) at `now`: events."""
        events = []
        for tenant, work in work_by_tenant.items():
            state = self.tenants.setdefault(tenant, _Tenant())
            samples = state.samples
            samples.append((now, work))
            while len(samples) > 2 and samples[1][0] <= now - self.baseline_s:
                samples.popleft()
            event = self._judge(tenant, state, now)
            if event is not None:
                events.append(event)
        return events

    def _rate(self, samples: deque[tuple[float, float]], start: float, end: float) -> float | None:
        inside = [s for s in samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < (end - start) * 0.5:
            return None
        (t0, w0), (t1, w1) = inside[0], inside[-1]
        return (w1 - w0) / (t1 - t0)

    def _judge(self, tenant: str, state: _Tenant, now: float) -> NewEvent | None:
        samples = state.samples
        if not samples or now - samples[0][0] < self.baseline_s * 0.99:
            return None  # not enough history yet
        split = now - self.window_s
        baseline = self._rate(samples, now - self.baseline_s, split)
        recent = self._rate(samples, split, now)
        if baseline is None or recent is None:
            return None
        if state.dropped_from is None:
            if baseline > 0 and recent < baseline * (1 - self.fraction):
                state.dropped_from = baseline
                return NewEvent(
                    "hashrate_drop", tenant, self._data(baseline, recent), tenant=tenant
                )
            return None
        if recent >= state.dropped_from * (1 - self.fraction / 2):
            before, state.dropped_from = state.dropped_from, None
            return NewEvent("hashrate_recovered", tenant, self._data(before, recent), tenant=tenant)
        return None

    def _data(self, baseline: float, recent: float) -> dict[str, Any]:
        hashes = 2**32  # per difficulty unit
        return {
            "baseline_hs": round(baseline * hashes),
            "recent_hs": round(recent * hashes),
            "window_s": self.window_s,
            "baseline_s": self.baseline_s,
        }


class Flag:
    """A yes/no state with a "went bad" and a "came back" event."""

    def __init__(self, bad_kind: str, good_kind: str, subject: str, after_s: float) -> None:
        self.bad_kind = bad_kind
        self.good_kind = good_kind
        self.subject = subject
        self.after_s = after_s
        self.bad_since: float | None = None
        self.told = False

    def check(self, ok: bool, why: str = "", *, now: float) -> NewEvent | None:
        if ok:
            self.bad_since = None
            if self.told:
                self.told = False
                return NewEvent(self.good_kind, self.subject, {})
            return None
        if self.bad_since is None:
            self.bad_since = now
        if not self.told and now - self.bad_since >= self.after_s:
            self.told = True
            data = {"since_s": round(now - self.bad_since, 1)}
            if why:
                data["why"] = why[:300]  # type: ignore[assignment]
            return NewEvent(self.bad_kind, self.subject, data)
        return None
