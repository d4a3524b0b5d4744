"""`farmpool serve`: puts the pieces of one stratum node together and runs them.

Startup, in order: the database (at the newest migration; the config's sites and tenants
seeded; this node registered; any spool left from before loaded), the node (network, segwit),
the first job, then the listeners (and the HTTP API). Shutdown (SIGTERM/SIGINT): stop
accepting, send `client.reconnect`, then let the ledger writer commit what is queued. SIGHUP
reloads the config's tenants, sites, listeners and stratum limits without dropping a miner.
Blocking work (database, node) runs in threads; the reactor only waits for it.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall

from pool.chain.job import Job, JobFactory
from pool.chain.rpc import AsyncNode, NodeError, NodeRPC, call_with_retry
from pool.chain.template import detect_segwit
from pool.chain.worksource import WorkSource
from pool.config import ConfigError, Settings, load_settings
from pool.ledger import admin, db
from pool.ledger.leases import LeaseError, lease_prefix
from pool.ledger.writer import LedgerWriter
from pool.stratum.ledger_sink import LedgerSink
from pool.stratum.server import StratumServer

if TYPE_CHECKING:
    from pool.alerts.service import Alerts

log = logging.getLogger("farmpool")


class StartupError(RuntimeError):
    """Something the operator must fix before the pool can start."""


def prepare_node(settings: Settings, wait_s: float = 0.0) -> tuple[NodeRPC, bool, str]:
    """Blocking: connect (waiting up to wait_s for an unreachable node), check the network
    and learn whether the node has segwit. Bad credentials or the wrong chain fail at once."""
    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    if wait_s > 0:
        call_with_retry(rpc, "getblockchaininfo", deadline_s=wait_s)
    chain = rpc.check_network(settings.network)
    segwit = settings.node.segwit
    if segwit is None:
        segwit = detect_segwit(rpc)
    return rpc, segwit, chain


def prepare_ledger(settings: Settings, reactor: Any) -> LedgerWriter:
    """Blocking: open the database, check its schema, seed it, start the writer's state."""
    engine = db.make_engine(settings.database_url)
    try:
        db.require_current(engine, settings.database_url)
    except db.DatabaseError as exc:
        raise StartupError(str(exc)) from None
    sites, tenants = admin.seed_from_config(engine, settings)
    if sites or tenants:
        log.info("seeded from the config: sites %s, tenants %s", sites, tenants)
    writer = LedgerWriter(
        engine,
        settings.node_name,
        Path(settings.data_dir) / "ledger-spool.jsonl",
        reactor,
        batch_max=settings.ledger.batch_max,
        retry_s=settings.ledger.retry_s,
    )
    writer.open()
    return writer


def lease_extranonce_prefix(writer: LedgerWriter) -> bytes:
    """Blocking: this node's extranonce1 prefix byte, leased in the database."""
    prefix = lease_prefix(writer.engine, writer.node_id)
    log.info("node %s (id %d): extranonce1 prefix %02x", writer.node_name, writer.node_id, prefix)
    return bytes([prefix])


def start_money_loop(settings: Settings, engine: Any, reactor: Any) -> LoopingCall | None:
    """Every `payout.tracker_interval_s`, a pass of the money loop (pool/accounting/money_loop.py:
    energy hours, the block tracker, PPS crediting) in a thread. Several stratum nodes on one
    database take turns: the pass holds the tracker lock, and a node that finds it held skips
    its turn."""
    from pool.accounting import solvency
    from pool.accounting.chainview import ChainView
    from pool.accounting.money_loop import run_pass
    from pool.accounting.runlock import LockBusy
    from pool.accounting.wallet import Wallet, WalletError

    interval = settings.payout.tracker_interval_s
    if interval <= 0:
        return None
    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    chain = ChainView(rpc, settings.network)
    wallets: list[Wallet | None] = []

    def wallet() -> Wallet | None:
        """The payout wallet, for owed-against-spendable (made once; None if it cannot be)."""
        if not wallets:
            try:
                wallets.append(Wallet(rpc, settings.payout, settings.network))
            except (WalletError, NodeError) as exc:
                log.warning("owed vs spendable: no wallet (%s); /metrics shows owed only", exc)
                wallets.append(None)
        return wallets[0]

    def work() -> None:
        try:
            done = run_pass(engine, settings, chain)  # each step logs its own failure
        except LockBusy:
            return
        log.debug("block tracker: %s", done.text)
        try:
            solvency.publish(solvency.measure(engine, wallet(), settings.payout))
        except (WalletError, NodeError) as exc:
            log.warning("owed vs spendable not measured: %s", exc)
            solvency.publish(solvency.measure(engine, None, settings.payout))

    def tick() -> defer.Deferred[None]:
        d: defer.Deferred[None] = threads.deferToThread(work)
        d.addErrback(lambda f: log.error("block tracker: %s", f.getErrorMessage()))
        return d

    loop = LoopingCall(tick)
    loop.clock = reactor
    loop.start(interval, now=True)
    return loop


def start_alerts(
    settings: Settings,
    server: StratumServer,
    writer: LedgerWriter,
    source: WorkSource,
    reactor: Any,
) -> Alerts:
    """The alerts (pool/alerts/): told of every share and block, watching the node and the
    ledger, delivering events to the configured webhooks."""
    from pool.alerts.service import Alerts  # only serve needs it (and twisted.web's client)

    alerts = Alerts(settings.alerts, settings.node_name, writer.engine, reactor)
    alerts.node_ok = lambda: (source.node_error is None, source.node_error or "")
    alerts.ledger_ok = lambda: writer.db_ok

    def work_by_tenant() -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for (_, tenant), work in server.work_by_account.items():
            totals[tenant] += work
        return totals

    alerts.work_by_tenant = work_by_tenant
    server.observer = alerts
    alerts.start()
    return alerts


def start_api(
    settings: Settings,
    server: StratumServer,
    writer: LedgerWriter,
    rpc: NodeRPC,
    reactor: Any,
    alerts: Alerts | None = None,
) -> int | None:
    """The HTTP API, /metrics and the dashboard (when `api.enabled`); returns its port."""
    if not settings.api.enabled:
        return None
    from pool.api.http import Api, make_site
    from pool.api.metrics import HashrateHistory

    history = HashrateHistory(sample_s=settings.api.sample_s)
    sampler = LoopingCall(history.sample, server.work_by_account)
    sampler.clock = reactor
    sampler.start(settings.api.sample_s, now=True)
    api = Api(
        server,
        writer,
        rpc,
        settings,
        history,
        worker_state=alerts.worker_state if alerts is not None else None,
    )
    api.alerts = alerts
    site = make_site(api)
    port = reactor.listenTCP(settings.api.port, site, interface=settings.api.bind)
    bound = int(port.getHost().port)
    log.info("HTTP API, /metrics and the dashboard on http://%s:%d/", settings.api.bind, bound)
    return bound


def install_reload(
    settings: Settings, server: StratumServer, writer: LedgerWriter, reactor: Any
) -> None:
    """SIGHUP: read the config file again and apply its tenants, sites, listeners and stratum
    limits without dropping a connected miner (StratumServer.reload). A config that does not
    load is logged and changes nothing. The node, the pool's coinbase, the database and the
    API need a restart."""
    if settings.source.startswith("<"):
        return  # embedded defaults: no file to read again

    busy: list[bool] = []

    @defer.inlineCallbacks
    def reload() -> Any:
        if busy:
            log.warning("SIGHUP: a reload is still running; ignored")
            return
        busy.append(True)
        try:
            new = yield threads.deferToThread(load_settings, settings.source)
            added = yield threads.deferToThread(admin.seed_from_config, writer.engine, new)
            ports = yield server.reload(new)
            server.set_tenants((yield threads.deferToThread(admin.active_tenants, writer.engine)))
            log.info("SIGHUP: reloaded %s (added sites and tenants: %s)", new.source, added)
            announce({"event": "reloaded", "ports": ports})
        except ConfigError as exc:
            log.error("SIGHUP: %s; nothing changed", exc)
            announce({"event": "reload_failed", "error": str(exc)})
        except Exception as exc:
            log.exception("SIGHUP: the reload failed")
            announce({"event": "reload_failed", "error": str(exc)})
        finally:
            busy.clear()

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(reload))


def announce(event: dict[str, Any]) -> None:
    """One JSON event line on stdout (for supervisors and tests)."""
    print(json.dumps(event), flush=True)


def run(settings: Settings, reactor: Any, wait_node_s: float) -> str | None:
    """Run until stopped; returns an error message, or None after a clean stop."""
    outcome: dict[str, str] = {}
    node = AsyncNode(NodeRPC(settings.node.url, settings.node.rpc_timeout_s), reactor)

    @defer.inlineCallbacks
    def start() -> Any:
        try:
            writer = yield threads.deferToThread(prepare_ledger, settings, reactor)
            prefix = yield threads.deferToThread(lease_extranonce_prefix, writer)
            writer.start()
            _, segwit, chain = yield node.run(prepare_node, settings, wait_node_s)
            log.info("node %s: chain %s, segwit %s", settings.node.redacted_url, chain, segwit)
            source = WorkSource(node, JobFactory(settings.coinbase), settings.node, segwit, reactor)
            server = StratumServer(
                settings,
                node,
                reactor,
                sink=LedgerSink(writer),
                on_block=lambda: source.hint("block"),
                extranonce_prefix=prefix,
            )
            server.tenants = yield threads.deferToThread(admin.active_tenants, writer.engine)
            writer.on_tenants = server.set_tenants
            if not server.tenants:
                log.warning("no active tenants: every authorize will be refused")

            def on_job(job: Job) -> None:
                server.on_job(job)
                announce(
                    {
                        "event": "job",
                        "job_id": job.job_id,
                        "height": job.height,
                        "clean": job.clean,
                        "prevhash": job.prevhash_hex,
                        "tip_detected_at": job.tip_detected_at,
                        **server.last_fanout,
                    }
                )

            source.listeners.append(on_job)
            yield source.start()
            alerts = start_alerts(settings, server, writer, source, reactor)
            ports = server.listen()
            api_port = start_api(settings, server, writer, node.rpc, reactor, alerts)
            # Startup objects live as long as the process: keep the collector's full passes
            # off them (a gen-2 pass over a large heap is a latency spike for every miner).
            gc.collect()
            gc.freeze()
            names = [listener.name for listener in settings.listeners]
            announce(
                {
                    "event": "listening",
                    "ports": dict(zip(names, ports, strict=True)),
                    "api": api_port,
                    "pid": os.getpid(),
                }
            )

            money_loop = start_money_loop(settings, writer.engine, reactor)
            install_reload(settings, server, writer, reactor)

            @defer.inlineCallbacks
            def stop() -> Any:
                alerts.stop()
                if money_loop is not None and money_loop.running:
                    money_loop.stop()
                source.stop()
                yield server.shutdown()
                yield threads.deferToThread(writer.stop)
                log.info("ledger: %s", dict(writer.stats))

            reactor.addSystemEventTrigger("before", "shutdown", stop)
        except (NodeError, CannotListenError, StartupError, db.DatabaseError, LeaseError) as exc:
            outcome["error"] = str(exc)
            reactor.stop()
        except Exception as exc:
            log.exception("startup failed")
            outcome["error"] = f"startup failed: {exc}"
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.run()
    return outcome.get("error")
