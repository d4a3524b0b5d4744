"""The HTTP API of a stratum node (twisted.web): JSON, /metrics, /health and the dashboard.

Where it sits: beside the share path, on the same reactor. Live figures come from the server's
memory; database reads (tenants, workers, blocks, payouts) run in threads and come back as
Deferreds, so the reactor never waits on the database. Read-only by default and bound to
localhost by default (`api.bind`); the admin endpoints (ban, unban, kick) need
`Authorization: Bearer <api.admin_token>` and are off when no token is configured.

    GET  /health                 200 {"status": "ok", ...} while the node serves jobs and the
                                 ledger writer takes shares, else 503 with the problems
    GET  /metrics                Prometheus text (pool/api/metrics.py)
    GET  /api/pool               live figures of this node
    GET  /api/sites | /api/tenants | /api/workers | /api/blocks | /api/payouts
    GET  /api/hashrate           the dashboard's series: hashes/s per site/tenant over time
    POST /api/admin/ban          {"ip": "...", "seconds": 600}
    POST /api/admin/unban        {"ip": "..."}
    POST /api/admin/kick         {"worker": "tenant.worker"} or {"session": "<session id>"}
    GET  /                       the dashboard page
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.web import resource, server

from pool.api import queries
from pool.api.dashboard import PAGE
from pool.api.metrics import HashrateHistory, render

log = logging.getLogger(__name__)

#: Largest admin request body read.
MAX_BODY = 4096


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Api(resource.Resource):
    """The whole tree in one resource: a small routing table, every answer JSON."""

    isLeaf = True

    def __init__(
        self,
        stratum: Any,
        writer: Any,
        rpc: Any,
        settings: Any,
        history: HashrateHistory,
        started: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stratum = stratum
        self.writer = writer
        self.rpc = rpc
        self.settings = settings
        self.history = history
        self.started = started or time.time()
        engine: Any = writer.engine if writer is not None else None
        self.gets: dict[str, Callable[[], Any]] = {
            "/api/pool": self.pool,
            "/api/hashrate": lambda: {
                "sample_s": self.history.sample_s,
                "points": list(self.history.points),
            },
            "/api/sites": lambda: threads.deferToThread(queries.sites, engine),
            "/api/tenants": lambda: threads.deferToThread(queries.tenants, engine, settings.payout),
            "/api/workers": lambda: threads.deferToThread(queries.workers, engine),
            "/api/blocks": lambda: threads.deferToThread(queries.blocks, engine),
            "/api/payouts": lambda: threads.deferToThread(queries.payouts, engine),
        }
        self.posts: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/api/admin/ban": self.ban,
            "/api/admin/unban": self.unban,
            "/api/admin/kick": self.kick,
        }

    # --- dispatch ----------------------------------------------------------------------------

    def render_GET(self, request: Any) -> Any:
        path = request.path.decode(errors="replace").rstrip("/") or "/"
        if path == "/":
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return PAGE.encode()
        if path == "/health":
            value = self.health()
            return self._json(request, 200 if value["status"] == "ok" else 503, value)
        if path == "/metrics":
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return render(self.stratum, self.writer, self.rpc, self.history).encode()
        handler = self.gets.get(path)
        if handler is None:
            return self._json(request, 404, {"error": f"no such endpoint: {path}"})
        return self._answer(request, handler)

    def render_POST(self, request: Any) -> Any:
        path = request.path.decode(errors="replace").rstrip("/")
        handler = self.posts.get(path)
        if handler is None:
            return self._json(request, 404, {"error": f"no such endpoint: {path}"})
        try:
            self._authorize(request)
            body = request.content.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise ApiError(413, f"the body is over {MAX_BODY} bytes")
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "the body is not JSON") from None
            if not isinstance(data, dict):
                raise ApiError(400, "the body must be a JSON object")
        except ApiError as exc:
            return self._json(request, exc.status, {"error": exc.message})
        return self._answer(request, lambda: handler(data))

    def _authorize(self, request: Any) -> None:
        token = self.settings.api.admin_token
        if not token:
            raise ApiError(403, "admin endpoints are off: set api.admin_token")
        given = request.getHeader(b"authorization") or ""
        if isinstance(given, bytes):
            given = given.decode(errors="replace")
        if not given.startswith("Bearer ") or not hmac.compare_digest(
            given[len("Bearer ") :].encode(), token.encode()
        ):
            raise ApiError(401, "a valid bearer token is needed")

    def _answer(self, request: Any, handler: Callable[[], Any]) -> Any:
        try:
            result = handler()
        except ApiError as exc:
            return self._json(request, exc.status, {"error": exc.message})
        if not isinstance(result, defer.Deferred):
            return self._json(request, 200, result)

        def done(value: Any) -> None:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(self._json(request, 200, value))
                request.finish()

        def failed(failure: Any) -> None:
            log.error("api %s: %s", request.path, failure.getErrorMessage())
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(self._json(request, 500, {"error": failure.getErrorMessage()}))
                request.finish()

        result.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    @staticmethod
    def _json(request: Any, status: int, value: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(value).encode()

    # --- reads -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """ok while the node has a job, the server is not stopping and the ledger writer is
        alive and taking shares (a container's health check); else the problems."""
        s = self.stratum
        job_age = time.time() - s.job_at if s.job_at else None
        problems = []
        if job_age is None:
            problems.append("no job from the node yet")
        if s.stopping:
            problems.append("stopping")
        ledger = self.writer.problem() if self.writer is not None else None
        if ledger is not None:
            problems.append(ledger)
        return {
            "status": "unavailable" if problems else "ok",
            "problems": problems,
            "job_age_s": None if job_age is None else round(job_age, 3),
            "sessions": len(s.sessions),
            "ledger_queue": self.writer.queue_depth if self.writer is not None else None,
        }

    def pool(self) -> dict[str, Any]:
        s = self.stratum
        job = s.jobs.current.job if s.jobs.current is not None else None
        return {
            "node": self.settings.node_name,
            "uptime_s": round(time.time() - self.started, 3),
            "sessions": len(s.sessions),
            "working": len(s.working),
            "tip_height": job.tip_height if job is not None else None,  # = farmpool_tip_height
            "job_height": job.height if job is not None else None,  # the block being mined
            "job_age_s": round(time.time() - s.job_at, 3) if s.job_at else None,
            "stats": dict(s.stats),
            "hashrate_hs": self.history.latest(),
            "banned": {ip: round(left, 1) for ip, left in s.banned().items()},
            "ledger_queue": self.writer.queue_depth if self.writer is not None else None,
            "spool_bytes": self.writer.spool.size() if self.writer is not None else None,
        }

    # --- admin -------------------------------------------------------------------------------

    @staticmethod
    def _ip(data: dict[str, Any]) -> str:
        ip = data.get("ip")
        try:
            return str(ipaddress.ip_address(str(ip)))
        except ValueError:
            raise ApiError(400, f"ip: not an IP address: {ip!r}") from None

    def ban(self, data: dict[str, Any]) -> dict[str, Any]:
        ip = self._ip(data)
        seconds = data.get("seconds", 600)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 1 <= seconds <= 30 * 86400
        ):
            raise ApiError(400, "seconds: a number from 1 to 2592000")
        if not self.stratum.ban(ip, float(seconds), "banned by an admin through the API"):
            raise ApiError(409, f"ip: {ip} is in stratum.trusted_networks, which are never banned")
        return {"banned": ip, "seconds": seconds}

    def unban(self, data: dict[str, Any]) -> dict[str, Any]:
        ip = self._ip(data)
        return {"unbanned": ip, "was_banned": self.stratum.unban(ip)}

    def kick(self, data: dict[str, Any]) -> dict[str, Any]:
        worker, session_id = data.get("worker"), data.get("session")
        if (worker is None) == (session_id is None):
            raise ApiError(400, "give exactly one of worker (tenant.worker) or session")
        kicked = 0
        for session in list(self.stratum.sessions):
            # Every worker the session authorized (a proxy authorizes several), whether or
            # not it has submitted yet; names as the miner sent them, or as tenant.worker.
            names = set(session.workers) | {
                f"{w.tenant}.{w.worker}" for w in session.workers.values()
            }
            if (worker is not None and worker in names) or (
                session_id is not None and session.extranonce1.hex() == str(session_id).lower()
            ):
                session.protocol.close()
                kicked += 1
        if not kicked:
            raise ApiError(404, "no such session")
        return {"kicked": kicked}


def make_site(api: Api) -> server.Site:
    site = server.Site(api)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    return site
