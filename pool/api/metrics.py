"""/metrics in the Prometheus text format, and the hashrate history the dashboard draws.

Where it sits: it reads the live state of one stratum node (the server's sessions, counters
and jobs, the ledger writer's queue and spool, the node RPC client's call counts and times)
on the reactor thread; nothing here blocks or touches the database.

Owed against spendable: the latest measurement the money loop published
(pool/accounting/solvency.py).

Hashrate: the server adds every accepted share's credited difficulty per (site, tenant);
`HashrateHistory` samples those sums every `sample_s` and keeps a day of points, each the
hashes per second since the previous sample (difficulty x 2^32 / seconds).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pool.accounting import solvency

HASHES_PER_DIFFICULTY = 2**32


#: The Content-Type of what `render` returns (prometheus_client's text format).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

Samples = Iterable[tuple[dict[str, str], float]]


def _family(name: str, kind: str, help_text: str, samples: Samples) -> Metric:
    """One metric family: HELP and TYPE once, then its samples (each with the same label
    names). A counter is named with its `_total`: prometheus_client takes it off the family
    and puts it back on the exposition, so the name comes out as given."""
    rows = list(samples)
    label_names = sorted(rows[0][0]) if rows else []
    family: CounterMetricFamily | GaugeMetricFamily
    if kind == "counter":
        family = CounterMetricFamily(name, help_text, labels=label_names)
    else:
        family = GaugeMetricFamily(name, help_text, labels=label_names)
    for labels, value in rows:
        family.add_metric([labels[label] for label in label_names], value)
    return family


@dataclass
class HashrateHistory:
    """Hashes per second per (site, tenant), one point per sample, for a day."""

    sample_s: float = 60.0
    points: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1440))
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _last_at: float = 0.0

    def sample(
        self, work_by_account: dict[tuple[str, str], float], now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        if self._last_at:
            span = now - self._last_at
            if span > 0:
                rates = {
                    f"{site}/{tenant}": (work - self._last.get((site, tenant), 0.0))
                    * HASHES_PER_DIFFICULTY
                    / span
                    for (site, tenant), work in work_by_account.items()
                }
                self.points.append({"t": round(now, 3), "hashrate_hs": rates})
        self._last = dict(work_by_account)
        self._last_at = now

    def latest(self) -> dict[str, float]:
        return dict(self.points[-1]["hashrate_hs"]) if self.points else {}


def _picked(
    counts: Mapping[str, float], label: str, keys: Mapping[str, str]
) -> list[tuple[dict[str, str], float]]:
    """Samples of some counters under one label: {label value: counter key}."""
    return [({label: value}, counts.get(key, 0)) for value, key in keys.items()]


@dataclass(eq=False)  # the registry keeps collectors in a dict: hashed by identity
class PoolCollector(Collector):
    """The node's metrics, built from its own counters at each scrape (server: StratumServer;
    writer: LedgerWriter or None; rpc: NodeRPC or None; alerts: pool.alerts.service.Alerts
    or None). Nothing on the share path changes: the server keeps counting in its dicts, and
    this reads them on the reactor thread when /metrics is asked for."""

    server: Any
    writer: Any
    rpc: Any
    history: HashrateHistory
    alerts: Any = None

    def collect(self) -> Iterator[Metric]:
        server, writer, rpc, alerts = self.server, self.writer, self.rpc, self.alerts
        history = self.history
        sessions_by_listener = server.registry.by_listener()
        yield _family(
            "farmpool_sessions",
            "gauge",
            "Subscribed stratum sessions, by listener.",
            [({"listener": n}, v) for n, v in sorted(sessions_by_listener.items())],
        )
        yield _family(
            "farmpool_connections_unsubscribed",
            "gauge",
            "Connections that have not subscribed yet.",
            [({}, len(server.registry.unsubscribed))],
        )
        stats = server.stats
        results = [({"result": "accepted"}, stats.get("accepted", 0))]
        results += [
            ({"result": key[len("rejected_") :]}, value)
            for key, value in sorted(stats.items())
            if key.startswith("rejected_")
        ]
        yield _family("farmpool_shares_total", "counter", "Shares answered, by result.", results)
        yield _family(
            "farmpool_blocks_total",
            "counter",
            "Block candidates submitted to the node, by the node's answer.",
            _picked(
                stats, "result", {r: f"blocks_{r}" for r in ("accepted", "rejected", "unsubmitted")}
            ),
        )
        accounts = sorted(server.work_by_account.items())
        yield _family(
            "farmpool_difficulty_total",
            "counter",
            "Credited share difficulty, by site and tenant (x 2^32 = hashes; rate() = hashrate).",
            [({"site": s, "tenant": t}, float(w)) for (s, t), w in accounts],
        )
        latest = history.latest()
        yield _family(
            "farmpool_hashrate_hs",
            "gauge",
            f"Hashes per second over the last {history.sample_s:g} s, by site and tenant.",
            [
                ({"site": key.split("/", 1)[0], "tenant": key.split("/", 1)[1]}, rate)
                for key, rate in sorted(latest.items())
            ],
        )
        job = server.jobs.current.job if server.jobs.current is not None else None
        yield _family(
            "farmpool_tip_height",
            "gauge",
            "Height of the chain tip the current job builds on (the node's getblockcount).",
            [({}, job.tip_height)] if job is not None else [],
        )
        yield _family(
            "farmpool_job_age_seconds",
            "gauge",
            "Seconds since the current job arrived.",
            [({}, round(time.time() - server.job_at, 3))] if server.job_at else [],
        )
        yield _family(
            "farmpool_banned_addresses",
            "gauge",
            "Addresses banned now.",
            [({}, len(server.gate.banned()))],
        )
        counted = (
            ("farmpool_connections_refused_total", "Connections refused, by reason.", "refused_"),
            ("farmpool_sessions_closed_total", "Sessions the pool closed, by reason.", "closed_"),
            (
                "farmpool_bans_total",
                "Bans, by scope (a worker at an address, an address).",
                "bans_",
            ),
        )
        for name, help_text, prefix in counted:
            yield _family(
                name,
                "counter",
                help_text,
                [
                    ({"reason" if prefix != "bans_" else "scope": key[len(prefix) :]}, value)
                    for key, value in sorted(stats.items())
                    if key.startswith(prefix)
                ],
            )
        yield _family(
            "farmpool_authorizes_refused_total",
            "counter",
            "mining.authorize requests refused "
            "(unknown tenant, bad name, too many workers, banned).",
            [({}, stats.get("authorize_refused", 0))],
        )
        yield _family(
            "farmpool_replies_dropped_total",
            "counter",
            "Replies that were ready after their connection had gone (dropped).",
            [({}, stats.get("replies_dropped", 0))],
        )
        survived = {
            "sweep": stats.get("sweep_errors", 0),
            "sweep_session": stats.get("sweep_session_errors", 0),
            "ledger_writer": writer.stats.get("internal_errors", 0) if writer else 0,
        }
        yield _family(
            "farmpool_internal_errors_total",
            "counter",
            "Exceptions a loop survived, by where (logged once per kind).",
            [({"where": where}, count) for where, count in survived.items()],
        )
        if writer is not None:
            yield _family(
                "farmpool_ledger_writer_up",
                "gauge",
                "1 while the ledger writer is alive and taking records, else 0 (see /health).",
                [({}, 0 if writer.problem() else 1)],
            )
            yield _family(
                "farmpool_ledger_queue_depth",
                "gauge",
                "Records waiting for the ledger writer.",
                [({}, writer.queue_depth)],
            )
            yield _family(
                "farmpool_spool_bytes",
                "gauge",
                "Bytes in the local spool (records waiting for the database).",
                [({}, writer.spool.size())],
            )
            yield _family(
                "farmpool_ledger_records_total",
                "counter",
                "Records the ledger writer handled, by outcome.",
                _picked(
                    writer.stats,
                    "outcome",
                    {k: k for k in ("committed", "spooled", "replayed", "quarantined")},
                ),
            )
        if alerts is not None:
            from pool.alerts.kinds import KINDS

            yield _family(
                "farmpool_events_total",
                "counter",
                "Events this node saw, by kind (pool/alerts/).",
                [({"kind": kind}, alerts.stats.get(kind, 0)) for kind in KINDS],
            )
            sent = alerts.dispatcher.stats
            yield _family(
                "farmpool_webhook_deliveries_total",
                "counter",
                "Webhook deliveries, by result (retried: one more try to come).",
                [({"result": r}, sent.get(r, 0)) for r in ("ok", "retried", "failed", "dropped")],
            )
            yield _family(
                "farmpool_webhook_queue",
                "gauge",
                "Webhook deliveries waiting or under way.",
                [({}, len(alerts.dispatcher.queue) + alerts.dispatcher.in_flight)],
            )
        money = solvency.latest()  # measured by the money loop, in its thread
        if money is not None:
            yield _family(
                "farmpool_owed_sat",
                "gauge",
                "Satoshis owed to tenants (mature credits less payouts), at the last tracker pass.",
                [({}, money.owed_sat)],
            )
            yield _family(
                "farmpool_wallet_spendable_sat",
                "gauge",
                "Satoshis the payout wallet can spend (compare with farmpool_owed_sat).",
                [({}, money.spendable_sat)] if money.spendable_sat is not None else [],
            )
        if rpc is not None:
            yield _family(
                "farmpool_node_rpc_calls_total",
                "counter",
                "Calls to the node's RPC, by method.",
                [({"method": m}, n) for m, n in sorted(rpc.calls.items())],
            )
            yield _family(
                "farmpool_node_rpc_errors_total",
                "counter",
                "Calls to the node's RPC that failed, by method.",
                [({"method": m}, n) for m, n in sorted(rpc.errors.items())],
            )
            yield _family(
                "farmpool_node_rpc_seconds_total",
                "counter",
                "Seconds spent in calls to the node's RPC, by method (divide by calls: latency).",
                [({"method": m}, round(v, 6)) for m, v in sorted(rpc.seconds.items())],
            )


def render(server: Any, writer: Any, rpc: Any, history: HashrateHistory, alerts: Any = None) -> str:
    """The node's metrics as Prometheus text (`CONTENT_TYPE`): a private registry holding only
    `PoolCollector` (no process or platform collectors), written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(server, writer, rpc, history, alerts))
    return generate_latest(registry).decode()
