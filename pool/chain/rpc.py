"""The node's JSON-RPC: where work comes from and where found blocks go.

`NodeRPC` is the blocking client (python-bitcoinrpc underneath) with timeouts, errors sorted
into what an operator can act on (unreachable, bad credentials, wrong network, an RPC error
with its code) and a fresh HTTP connection after any transport failure. `AsyncNode` runs
those calls in a small thread pool of its own and hands back Deferreds, so that the reactor
thread never waits on the node.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from pool.config import redact_url
from pool.errors import OperationFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How each node names its chain in getblockchaininfo, per our network names.
CHAIN_NAMES = {
    "main": {"main"},
    "test": {"test", "testnet", "testnet3", "testnet4", "signet"},
    "regtest": {"regtest"},
}


class NodeError(OperationFailed):
    """Anything that went wrong talking to the node."""


class NodeUnreachable(NodeError):
    """No answer: refused, timed out, or the connection broke."""


class NodeAuthError(NodeError):
    """The node refused the RPC user name or password."""


class WrongNetwork(NodeError):
    """The node runs another chain than the config says."""


class NodeRPCError(NodeError):
    """The node answered the call with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"node answered {method} with error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class BadNodeAnswer(NodeError):
    """The node answered with something that is not what the call returns."""


@dataclass(frozen=True)
class SubmitResult:
    """submitblock's answer, normalised: null is accepted, any text is a rejection reason."""

    accepted: bool
    reason: str | None

    @classmethod
    def from_answer(cls, answer: Any) -> SubmitResult:
        if answer is None:
            return cls(True, None)
        if isinstance(answer, str):
            reason = answer.strip()
            if not reason:
                return cls(True, None)  # some nodes answer "" rather than null
            if reason.lower().startswith("rejected:"):
                reason = reason[len("rejected:") :].strip() or "rejected"
            return cls(False, reason)
        raise BadNodeAnswer(f"submitblock answered {answer!r}; expected null or a reason")


class NodeRPC:
    """Blocking JSON-RPC client for one node. Thread-safe: one HTTP connection per thread."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        self.url = url
        self.timeout_s = timeout_s
        self.where = f"{parts.hostname}:{parts.port}"
        self.redacted_url = redact_url(url)
        self._local = threading.local()
        # Per method: calls, failures and seconds spent (for /metrics).
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.seconds: dict[str, float] = defaultdict(float)

    def _proxy(self) -> Any:
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = AuthServiceProxy(self.url, timeout=self.timeout_s)
            self._local.proxy = proxy
        return proxy

    def _drop_connection(self) -> None:
        self._local.proxy = None

    def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """Call one RPC method with positional parameters; raises a NodeError subclass."""
        started = time.monotonic()
        try:
            return self._call(method, *params, timeout_s=timeout_s)
        except NodeError:
            self.errors[method] += 1
            raise
        finally:
            self.calls[method] += 1
            self.seconds[method] += time.monotonic() - started

    def _call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        if timeout_s is not None and timeout_s != self.timeout_s:
            proxy = AuthServiceProxy(self.url, timeout=timeout_s)
        else:
            proxy = self._proxy()
        try:
            return getattr(proxy, method)(*params)
        except JSONRPCException as exc:
            error = exc.error if isinstance(exc.error, dict) else {}
            code = int(error.get("code", -1))
            message = str(error.get("message", exc))
            if code == -342:  # not JSON: an HTTP error page
                self._drop_connection()
                if "401" in message or "403" in message:
                    raise NodeAuthError(
                        f"node {self.where} refused the RPC credentials in "
                        f"{self.redacted_url} ({message})"
                    ) from None
                raise BadNodeAnswer(f"node {self.where} answered {method}: {message}") from None
            raise NodeRPCError(method, code, message) from None
        except TimeoutError as exc:
            self._drop_connection()
            raise NodeUnreachable(
                f"node {self.where} did not answer {method} within "
                f"{timeout_s or self.timeout_s:g} s ({exc or 'timed out'})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise NodeUnreachable(
                f"cannot reach node {self.where} ({self.redacted_url}) for {method}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        except (ValueError, json.JSONDecodeError) as exc:
            self._drop_connection()
            raise BadNodeAnswer(
                f"node {self.where} answered {method} with bad JSON: {exc}"
            ) from None

    def chain_name(self) -> str:
        info = self.call("getblockchaininfo")
        if not isinstance(info, dict) or not isinstance(info.get("chain"), str):
            raise BadNodeAnswer(f"getblockchaininfo from {self.where} has no 'chain': {info!r}")
        return str(info["chain"])

    def check_network(self, network: str) -> str:
        """Fail with WrongNetwork unless the node runs the configured network."""
        chain = self.chain_name()
        if chain not in CHAIN_NAMES[network]:
            raise WrongNetwork(
                f"node {self.where} runs chain {chain!r} but the config says network {network!r}"
            )
        return chain

    def submit_block(self, block_hex: str) -> SubmitResult:
        return SubmitResult.from_answer(self.call("submitblock", block_hex))


def backoff_delays(first_s: float = 0.25, most_s: float = 10.0) -> Callable[[], float]:
    """A generator of retry delays: doubling from first_s up to most_s."""
    state = {"next": first_s}

    def next_delay() -> float:
        delay = state["next"]
        state["next"] = min(most_s, delay * 2)
        return delay

    return next_delay


def call_with_retry(
    rpc: NodeRPC, method: str, *params: Any, deadline_s: float = 30.0, **kw: Any
) -> Any:
    """Blocking call that reconnects with backoff while the node is unreachable."""
    delays = backoff_delays()
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return rpc.call(method, *params, **kw)
        except NodeUnreachable as exc:
            delay = delays()
            if time.monotonic() + delay > give_up:
                raise
            log.warning("%s; retrying in %.2f s", exc, delay)
            time.sleep(delay)


class AsyncNode:
    """The node for reactor code: every call runs in this object's thread pool."""

    def __init__(self, rpc: NodeRPC, reactor: Any, threads_max: int = 4) -> None:
        self.rpc = rpc
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads_max, name="node-rpc")
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._pool.start()
            self._started = True
            self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._pool.stop()

    def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> defer.Deferred[T]:
        self.start()
        return threads.deferToThreadPool(self._reactor, self._pool, fn, *args, **kw)

    def call(
        self, method: str, *params: Any, timeout_s: float | None = None
    ) -> defer.Deferred[Any]:
        return self.run(self.rpc.call, method, *params, timeout_s=timeout_s)

    def submit_block(self, block_hex: str) -> defer.Deferred[SubmitResult]:
        return self.run(self.rpc.submit_block, block_hex)


def to_satoshis(amount: Decimal | int | str) -> int:
    """A BTC amount as the node gives it (Decimal) in whole satoshis; refuses fractions."""
    try:
        value = Decimal(amount) * 100_000_000
    except ArithmeticError:
        raise BadNodeAnswer(f"amount {amount!r} is not a number of BTC") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise BadNodeAnswer(f"amount {amount} BTC is not a whole number of satoshis")
    return int(value)
