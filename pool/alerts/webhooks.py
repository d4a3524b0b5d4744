"""Events POSTed to webhooks, on the reactor and never in the share path's way.

Each event goes, as JSON, to every webhook whose `kinds` and `tenants` take it, with
`X-Farmpool-Event` and, when the webhook has a secret, `X-Farmpool-Signature: sha256=<hex
HMAC-SHA256 of the body>`. A 2xx answer is a delivery; anything else (an error status, a
refused or timed-out connection, a receiver that never answers) is tried again after 1, 2,
4 ... seconds, `retries` times in all. At most `MAX_IN_FLIGHT` requests are open at once and
at most `queue_max` deliveries wait: beyond that a delivery is dropped here (counted) and
left undelivered in the database, where a later claim finds it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from twisted.internet import defer
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from pool.config import AlertSettings, WebhookSettings

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4


#: What a webhook's body carries of an event (not the delivery bookkeeping).
BODY_KEYS = ("id", "kind", "created_at", "tenant", "subject", "data", "source")


def hook_key(hook: WebhookSettings) -> str:
    """How the database remembers that an event reached a webhook."""
    return hashlib.sha256(hook.url.encode()).hexdigest()[:16]


def wants(hook: WebhookSettings, event: dict[str, Any]) -> bool:
    """Whether the webhook takes the event (its kinds, its tenants)."""
    if hook.kinds and event["kind"] not in hook.kinds:
        return False
    return not hook.tenants or event.get("tenant") in hook.tenants


@dataclass
class _Delivery:
    event: dict[str, Any]
    hooks: list[WebhookSettings]  # still to reach
    done: Callable[[list[str], bool], None]
    tries: int = 0
    reached: list[str] = field(default_factory=list)


class Dispatcher:
    """The queue of deliveries and the HTTP client that makes them."""

    def __init__(self, settings: AlertSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.queue: deque[_Delivery] = deque()
        self.in_flight = 0
        self.stats: Counter[str] = Counter()
        self._agents: dict[float, Agent] = {}

    def _agent(self, timeout: float) -> Agent:
        agent = self._agents.get(timeout)
        if agent is None:
            pool = HTTPConnectionPool(self.reactor, persistent=False)  # type: ignore[no-untyped-call]
            agent = self._agents[timeout] = Agent(  # type: ignore[no-untyped-call]
                self.reactor, connectTimeout=timeout, pool=pool
            )
        return agent

    def deliver(
        self,
        event: dict[str, Any],
        done: Callable[[list[str], bool], None],
        reached: tuple[str, ...] = (),
    ) -> None:
        """Queue the event for every webhook that takes it and has not had it (`reached`:
        their keys); `done(keys reached now, all of them)` once it was delivered to all, or
        the round gave up (dropped: not called)."""
        hooks = [
            hook
            for hook in self.settings.webhooks
            if wants(hook, event) and hook_key(hook) not in reached
        ]
        if not hooks:
            done([], True)
            return
        if len(self.queue) >= self.settings.queue_max:
            self.stats["dropped"] += 1
            return
        body = {key: event.get(key) for key in BODY_KEYS}
        self.queue.append(_Delivery(body, hooks, done))
        self._pump()

    def _pump(self) -> None:
        while self.queue and self.in_flight < MAX_IN_FLIGHT:
            self._attempt(self.queue.popleft())

    def _attempt(self, delivery: _Delivery) -> None:
        self.in_flight += 1
        delivery.tries += 1
        body = json.dumps(delivery.event).encode()
        sends = [self._post(hook, body, delivery.event["kind"]) for hook in delivery.hooks]

        def finished(results: list[tuple[bool, Any]]) -> None:
            self.in_flight -= 1
            left = []
            for hook, (ok, good) in zip(delivery.hooks, results, strict=True):
                if ok and good:
                    delivery.reached.append(hook_key(hook))
                else:
                    left.append(hook)
            delivery.hooks = left
            if not delivery.hooks:
                self.stats["ok"] += 1
                delivery.done(delivery.reached, True)
            elif delivery.tries >= self.settings.retries:
                self.stats["failed"] += 1
                log.warning(
                    "event %s (%s) not delivered to %s after %d tries",
                    delivery.event.get("id"),
                    delivery.event["kind"],
                    ", ".join(h.url for h in delivery.hooks),
                    delivery.tries,
                )
                delivery.done(delivery.reached, False)
            else:
                self.stats["retried"] += 1
                delay = 2.0 ** (delivery.tries - 1)
                self.reactor.callLater(delay, self._requeue, delivery)
            self._pump()

        defer.DeferredList(sends, consumeErrors=True).addCallback(finished)

    def _requeue(self, delivery: _Delivery) -> None:
        self.queue.append(delivery)
        self._pump()

    def _post(self, hook: WebhookSettings, body: bytes, kind: str) -> defer.Deferred[bool]:
        headers = {
            b"content-type": [b"application/json"],
            b"user-agent": [b"farmpool"],
            b"x-farmpool-event": [kind.encode()],
        }
        if hook.secret:
            mac = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[b"x-farmpool-signature"] = [f"sha256={mac}".encode()]
        producer: Any = FileBodyProducer(BytesIO(body))  # type: ignore[no-untyped-call]
        request: defer.Deferred[Any] = self._agent(hook.timeout_s).request(
            b"POST", hook.url.encode(), Headers(headers), producer
        )

        def answered(response: Any) -> defer.Deferred[bool]:
            drained: defer.Deferred[bytes] = readBody(response)
            return drained.addCallback(lambda _: 200 <= response.code < 300)

        d: defer.Deferred[bool] = request.addCallback(answered)
        d.addTimeout(hook.timeout_s, self.reactor)
        return d
