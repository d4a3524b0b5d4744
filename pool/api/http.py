"""The HTTP API of a stratum node (twisted.web): JSON, /metrics, /health and the pages.

Where it sits: beside the share path, on the same reactor. Live figures come from the server's
memory; database reads (tenants, workers, blocks, payouts, tokens, events) run in threads and
come back as Deferreds, so the reactor never waits on the database. Bound to localhost by
default (`api.bind`).

Who may read what: `/health` and `/metrics` (no payout address in it) are open. The
operator's endpoints need `Authorization: Bearer <api.admin_token>` (the operator token)
unless `api.public_read`. A tenant's token (`farmpool tenant token NAME --create`) opens the
`/api/tenant/...` endpoints and `/api/events` for that tenant only: the tenant comes from the
token, never from the request (a `tenant` parameter naming another one is refused with 403);
the operator reads the same endpoints with `?tenant=NAME`. No credentials: 401; credentials
that do not open the endpoint (an unknown or revoked token, a tenant's token on an
operator's endpoint): 403.

    GET  /health                 200 {"status": "ok", ...} while the node serves jobs and the
                                 ledger writer takes shares, else 503 with the problems
    GET  /metrics                Prometheus text (pool/api/metrics.py)
    GET  /                       the operator's dashboard page
    GET  /tenant                 a tenant's page (its token in the URL fragment or a form)
    GET  /api/pool               live figures of this node                 (operator)
    GET  /api/sites | /api/tenants | /api/workers | /api/blocks | /api/payouts   (operator)
    GET  /api/hashrate           hashes/s per site/tenant over time        (operator)
    GET  /api/tenant             the tenant, whether it may mine, its balance
    GET  /api/tenant/workers     its workers: hashrates, last share, up or down
    GET  /api/tenant/hashrate    its hashes/s per site over time
    GET  /api/tenant/hours       its shares and rejects per hour (?hours=48, up to 744)
    GET  /api/tenant/blocks | /api/tenant/credits | /api/tenant/payouts (its part, txids)
    GET  /api/tenant/statement   ?period=YYYY-MM[-DD][&site=S][&format=json|csv]: the numbers
                                 of `farmpool report tenant`
    GET  /api/events             events, newest first (?since=ID&limit=N); a tenant: its own
    POST /api/admin/ban          {"ip": "...", "seconds": 600}                (operator)
    POST /api/admin/unban        {"ip": "..."}                                (operator)
    POST /api/admin/kick         {"worker": "tenant.worker"} or {"session": "<session id>"}
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, threads
from twisted.web import resource, server

from pool.accounting.report import ReportError
from pool.alerts import store as event_store
from pool.api import queries, tenant_queries, tokens
from pool.api.dashboard import PAGE
from pool.api.metrics import HashrateHistory, render
from pool.api.tenant_page import TENANT_PAGE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Text:
    """An answer that is not JSON (a CSV statement)."""

    body: str
    content_type: str


#: Largest admin request body read.
MAX_BODY = 4096


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who a request speaks for: the operator, or one tenant (id and name)."""

    operator: bool
    tenant_id: int | None = None
    tenant: str | None = None


OPERATOR = Caller(operator=True)

#: A tenant endpoint: (the caller's tenant id and name, the request's arguments) -> JSON.
TenantHandler = Callable[[int, str, dict[str, str]], Any]


def _args(request: Any) -> dict[str, str]:
    """The query arguments, first value of each, as text."""
    return {
        key.decode(errors="replace"): values[0].decode(errors="replace")
        for key, values in (request.args or {}).items()
        if values
    }


def _whole(args: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"{name}: a whole number from {low} to {high}, got {text[:20]!r}")
    return int(text)


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
        worker_state: Callable[[str, str], str | None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stratum = stratum
        self.writer = writer
        self.rpc = rpc
        self.settings = settings
        self.history = history
        self.started = started or time.time()
        #: (tenant, worker) -> "up" / "down" as the alerts see it (None: not watched).
        self.worker_state = worker_state
        #: The node's alerts (pool/alerts/service.py), for /metrics; None without them.
        self.alerts: Any = None
        engine: Any = writer.engine if writer is not None else None
        self.engine = engine
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
        self.tenant_gets: dict[str, TenantHandler] = {
            "/api/tenant": lambda tid, name, args: threads.deferToThread(
                tenant_queries.summary, engine, settings.payout, tid
            ),
            "/api/tenant/workers": self.tenant_workers,
            "/api/tenant/hashrate": self.tenant_hashrate,
            "/api/tenant/hours": lambda tid, name, args: threads.deferToThread(
                tenant_queries.hours, engine, tid, _whole(args, "hours", 48, 1, 744)
            ),
            "/api/tenant/blocks": lambda tid, name, args: threads.deferToThread(
                queries.blocks, engine, 100, tid
            ),
            "/api/tenant/credits": lambda tid, name, args: threads.deferToThread(
                tenant_queries.credits, engine, tid
            ),
            "/api/tenant/payouts": lambda tid, name, args: threads.deferToThread(
                tenant_queries.payouts, engine, tid
            ),
            "/api/tenant/statement": self.tenant_statement,
        }
        self.posts: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/api/admin/ban": self.ban,
            "/api/admin/unban": self.unban,
            "/api/admin/kick": self.kick,
        }

    # --- dispatch ----------------------------------------------------------------------------

    def render_GET(self, request: Any) -> Any:
        path = request.path.decode(errors="replace").rstrip("/") or "/"
        if path in ("/", "/tenant"):
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"referrer-policy", b"no-referrer")
            return (PAGE if path == "/" else TENANT_PAGE).encode()
        if path == "/health":
            value = self.health()
            return self._json(request, 200 if value["status"] == "ok" else 503, value)
        if path == "/metrics":
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return render(self.stratum, self.writer, self.rpc, self.history, self.alerts).encode()
        args = _args(request)
        tenant_handler = self.tenant_gets.get(path)
        if tenant_handler is not None:
            return self._as_tenant(request, args, tenant_handler)
        if path == "/api/events":
            return self._as_tenant(request, args, self.events, operator_sees_all=True)
        handler = self.gets.get(path)
        if handler is None:
            return self._json(request, 404, {"error": "no such endpoint"})
        if not self.settings.api.public_read:
            try:
                self._operator(request)
            except ApiError as exc:
                return self._json(request, exc.status, {"error": exc.message})
        return self._answer(request, handler)

    def render_POST(self, request: Any) -> Any:
        path = request.path.decode(errors="replace").rstrip("/")
        handler = self.posts.get(path)
        if handler is None:
            return self._json(request, 404, {"error": "no such endpoint"})
        try:
            self._operator(request, admin=True)
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

    # --- who is asking ------------------------------------------------------------------------

    @staticmethod
    def _bearer(request: Any) -> str | None:
        given = request.getHeader(b"authorization") or ""
        if isinstance(given, bytes):
            given = given.decode(errors="replace")
        return given[len("Bearer ") :].strip() if given.startswith("Bearer ") else None

    def _is_operator(self, token: str) -> bool:
        secret = self.settings.api.admin_token
        return bool(secret) and hmac.compare_digest(token.encode(), secret.encode())

    def _operator(self, request: Any, admin: bool = False) -> None:
        """ApiError unless the request carries the operator's token."""
        if not self.settings.api.admin_token:
            what = "admin endpoints are off" if admin else "the operator's endpoints are closed"
            raise ApiError(403, f"{what}: set api.admin_token")
        token = self._bearer(request)
        if token is None:
            raise ApiError(401, "a valid bearer token is needed")
        if not self._is_operator(token):
            if admin:
                raise ApiError(401, "a valid bearer token is needed")
            raise ApiError(403, "this token does not open the operator's endpoints")

    def _caller(self, token: str) -> Caller | None:
        """Blocking (a thread): the operator, the tenant a token speaks for, or None."""
        if self._is_operator(token):
            return OPERATOR
        access = tokens.tenant_for(self.engine, token)
        return None if access is None else Caller(False, access.tenant_id, access.tenant)

    def _as_tenant(
        self,
        request: Any,
        args: dict[str, str],
        handler: TenantHandler,
        operator_sees_all: bool = False,
    ) -> Any:
        """Answer for the tenant the token speaks for (or the one the operator names)."""
        token = self._bearer(request)
        if token is None:
            return self._json(request, 401, {"error": "a tenant's (or the operator's) token"})
        if self.engine is None:
            return self._json(request, 503, {"error": "no database"})

        def resolve() -> tuple[int | None, str | None]:
            caller = self._caller(token)
            named = args.get("tenant")
            if caller is None:
                raise ApiError(403, "this token is not valid (unknown or revoked)")
            if not caller.operator:
                if named is not None and named != caller.tenant:
                    raise ApiError(403, "a tenant's token reads that tenant only")
                return caller.tenant_id, caller.tenant
            if named is None:
                if operator_sees_all:
                    return None, None
                raise ApiError(400, "tenant: the operator names the tenant (?tenant=NAME)")
            tenant_id = tokens.tenant_id(self.engine, named)
            if tenant_id is None:
                raise ApiError(404, f"no tenant named {named[:64]!r}")
            return tenant_id, named

        def answer(who: tuple[int | None, str | None]) -> Any:
            tenant_id, name = who
            return handler(tenant_id, name, args)  # type: ignore[arg-type]

        return self._answer(request, lambda: threads.deferToThread(resolve).addCallback(answer))

    def _answer(self, request: Any, handler: Callable[[], Any]) -> Any:
        try:
            result = handler()
        except ApiError as exc:
            return self._json(request, exc.status, {"error": exc.message})
        if not isinstance(result, defer.Deferred):
            return self._json(request, 200, result)

        def done(value: Any) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            if isinstance(value, Text):
                request.setResponseCode(200)
                request.setHeader(b"content-type", value.content_type.encode())
                request.setHeader(b"cache-control", b"no-store")
                request.write(value.body.encode())
            else:
                request.write(self._json(request, 200, value))
            request.finish()

        def failed(failure: Any) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            error = failure.value
            if isinstance(error, ApiError):
                request.write(self._json(request, error.status, {"error": error.message}))
            else:
                log.error("api %s: %s", request.path, failure.getErrorMessage())
                request.write(self._json(request, 500, {"error": "internal error"}))
            request.finish()

        result.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    @staticmethod
    def _json(request: Any, status: int, value: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(value).encode()

    # --- a tenant's reads ---------------------------------------------------------------------

    def tenant_workers(self, tenant_id: int, tenant: str, args: dict[str, str]) -> Any:
        def read() -> list[dict[str, Any]]:
            rows = queries.workers(self.engine, tenant_id=tenant_id)
            for row in rows:
                state = self.worker_state(tenant, row["worker"]) if self.worker_state else None
                row["state"] = state or "unknown"
            return rows

        return threads.deferToThread(read)

    def tenant_hashrate(self, tenant_id: int, tenant: str, args: dict[str, str]) -> Any:
        """Its series from the node's hashrate history: one entry per site."""
        suffix = "/" + tenant
        points = [
            {
                "t": p["t"],
                "hashrate_hs": {
                    key[: -len(suffix)]: rate
                    for key, rate in p["hashrate_hs"].items()
                    if key.endswith(suffix) and key.count("/") == 1
                },
            }
            for p in self.history.points
        ]
        return {"sample_s": self.history.sample_s, "points": points}

    def tenant_statement(self, tenant_id: int, tenant: str, args: dict[str, str]) -> Any:
        period = args.get("period") or time.strftime("%Y-%m", time.gmtime())
        fmt = args.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ApiError(400, f"format: json or csv, got {fmt[:10]!r}")

        def read() -> Any:
            try:
                rows = tenant_queries.statement(self.engine, tenant, period, args.get("site"))
            except ReportError as exc:
                raise ApiError(400, str(exc)) from None
            if fmt == "csv":
                return Text(tenant_queries.statement_csv(rows), "text/csv; charset=utf-8")
            return {"tenant": tenant, "period": period, "rows": rows}

        return threads.deferToThread(read)

    def events(self, tenant_id: int | None, tenant: str | None, args: dict[str, str]) -> Any:
        since = _whole(args, "since", 0, 0, 2**62)
        limit = _whole(args, "limit", 100, 1, 1000)
        return threads.deferToThread(event_store.list_events, self.engine, tenant_id, since, limit)

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
            "banned": {ip: round(left, 1) for ip, left in s.gate.banned().items()},
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
        if not self.stratum.gate.ban(ip, float(seconds), "banned by an admin through the API"):
            raise ApiError(409, f"ip: {ip} is in stratum.trusted_networks, which are never banned")
        return {"banned": ip, "seconds": seconds}

    def unban(self, data: dict[str, Any]) -> dict[str, Any]:
        ip = self._ip(data)
        return {"unbanned": ip, "was_banned": self.stratum.gate.unban(ip)}

    def kick(self, data: dict[str, Any]) -> dict[str, Any]:
        worker, session_id = data.get("worker"), data.get("session")
        if (worker is None) == (session_id is None):
            raise ApiError(400, "give exactly one of worker (tenant.worker) or session")
        # Every worker a session authorized (a proxy authorizes several), whether or not it
        # has submitted yet; names as the miner sent them, or as tenant.worker.
        kicked = self.stratum.registry.kick(
            worker=worker if isinstance(worker, str) else None,
            session_id=None if session_id is None else str(session_id),
        )
        if not kicked:
            raise ApiError(404, "no such session")
        return {"kicked": kicked}


def make_site(api: Api) -> server.Site:
    site = server.Site(api)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    return site
