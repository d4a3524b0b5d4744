"""The stratum listeners: the ports miners connect to, opened, reloaded and closed.

Where it sits in the share path: the first step. Each configured listener (plain TCP or
stratum+ssl) gets a port whose factory builds a `StratumProtocol` per connection with that
listener's settings (difficulty, vardiff, site, PROXY protocol). A reload keeps every
connected miner: a listener whose socket is unchanged only hands its new settings to new
sessions; one whose socket or TLS changed is reopened; one that is gone stops accepting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet import defer, protocol

from pool.config import ListenerSettings

log = logging.getLogger(__name__)

#: Builds the protocol of one new connection on a listener.
ProtocolBuilder = Callable[[ListenerSettings], protocol.Protocol]


class StratumFactory(protocol.Factory):
    """One listener's factory: its current settings go to every new connection."""

    def __init__(self, build: ProtocolBuilder, listener: ListenerSettings) -> None:
        self.build = build
        self.listener = listener

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        return self.build(self.listener)


class _ServerTLS:
    """A TLS context for a stratum+ssl listener: the certificate chain and key from PEM files,
    TLS 1.2 or newer."""

    def __init__(self, certificate: str, key: str) -> None:
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(certificate.encode())
        context.use_privatekey_file(key.encode())
        context.check_privatekey()
        self._context = context

    def getContext(self) -> Any:
        return self._context


def tls_context(certificate: str, key: str) -> _ServerTLS:
    return _ServerTLS(certificate, key)


def _socket_of(listener: ListenerSettings) -> tuple[str, int, str | None, str | None]:
    return (listener.bind, listener.port, listener.tls_certificate, listener.tls_key)


class ListenerSet:
    """The open listeners of one process, by name."""

    def __init__(self, reactor: Any, build: ProtocolBuilder) -> None:
        self.reactor = reactor
        self.build = build
        # name -> (its settings, its factory, its listening port)
        self._open: dict[str, tuple[ListenerSettings, StratumFactory, Any]] = {}
        self._bound: dict[str, int] = {}

    @property
    def bound_ports(self) -> Mapping[str, int]:
        """The port each open listener is bound to (read-only)."""
        return self._bound

    def port_of(self, listener: ListenerSettings) -> int:
        """The port a listener is bound to (its configured port once it is closed)."""
        return self._bound.get(listener.name, listener.port)

    def open_all(self, listeners: Sequence[ListenerSettings]) -> list[int]:
        """Open every listener; returns the bound ports (0 in config = any)."""
        return [self.open(listener) for listener in listeners]

    def open(self, listener: ListenerSettings) -> int:
        factory = StratumFactory(self.build, listener)
        if listener.tls_certificate and listener.tls_key:
            port = self.reactor.listenSSL(
                listener.port,
                factory,
                tls_context(listener.tls_certificate, listener.tls_key),
                backlog=1024,
                interface=listener.bind,
            )
        else:
            port = self.reactor.listenTCP(
                listener.port, factory, backlog=1024, interface=listener.bind
            )
        self._open[listener.name] = (listener, factory, port)
        bound = int(port.getHost().port)
        self._bound[listener.name] = bound
        log.info(
            "listening on %s %s:%d (listener %s, site %s, difficulty %g [%g..%g])",
            "stratum+ssl" if listener.tls_certificate else "stratum+tcp",
            listener.bind,
            bound,
            listener.name,
            listener.site,
            listener.start_difficulty,
            listener.min_difficulty,
            listener.max_difficulty,
        )
        return bound

    def reload(self, listeners: Sequence[ListenerSettings]) -> defer.Deferred[dict[str, int]]:
        """Apply reloaded listeners without dropping a connected miner (their sessions stay
        wherever their listener went); fires with the bound ports."""
        wanted = {listener.name: listener for listener in listeners}
        stopping = []
        for name, (listener, factory, port) in list(self._open.items()):
            new = wanted.get(name)
            if new is not None and _socket_of(new) == _socket_of(listener):
                factory.listener = new  # new sessions get the new difficulty and vardiff
                self._open[name] = (new, factory, port)
                continue
            del self._open[name]
            self._bound.pop(name, None)
            stopping.append(defer.maybeDeferred(port.stopListening))
            log.info("listener %s closed by a reload (its sessions stay)", name)

        def open_new(_: Any) -> dict[str, int]:
            for name, listener in wanted.items():
                if name not in self._open:
                    self.open(listener)
            return dict(self._bound)

        return defer.DeferredList(stopping).addCallback(open_new)

    def close_all(self) -> defer.Deferred[None]:
        """Stop accepting on every listener (connected miners stay)."""
        stopped = [defer.maybeDeferred(port.stopListening) for _, _, port in self._open.values()]
        self._open.clear()
        done: defer.Deferred[None] = defer.DeferredList(stopped).addCallback(lambda _: None)
        return done
