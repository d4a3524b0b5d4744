"""Stratum wire protocol: newline-framed JSON-RPC over one TCP connection.

The first step of the share path. It frames lines (with a maximum length), parses JSON, echoes
each request's id unchanged whatever its type, answers every request with both `result` and
`error`, hands methods to the Session and writes replies, followed by whatever the session
queued to push (difficulty, jobs). Malformed JSON or binary garbage gets error 20 and the
connection goes on; only an oversized line (the stream cannot be re-synchronised) closes it.
JSON's non-finite extensions (`NaN`, `Infinity`, a number too large for a float) are malformed
too. Once the connection is closing (a ban, a flood, an oversized line) the rest of what it
sent is not read, and a reply that is ready after the connection is gone is dropped (and
counted). Only a complete, well-formed request resets the idle timer.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, protocol
from twisted.python.failure import Failure

from pool.config import ListenerSettings
from pool.netlists import in_networks, networks_of
from pool.stratum import errors as E
from pool.stratum.errors import StratumError
from pool.stratum.proxyproto import ProxyHeaderError, parse_proxy_header
from pool.stratum.session import Session
from pool.stratum.twisted_compat import disconnecting, send_now, unsent_bytes

if TYPE_CHECKING:
    from pool.stratum.server import StratumServer

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class NonFiniteNumber(ValueError):
    """NaN, Infinity or a number beyond a float's range in a miner's JSON."""


def _no_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf and nan - nan are nan
        raise NonFiniteNumber(f"{text[:32]} is beyond the range of a number")
    return value


#: Standard JSON only: Python's json module also takes NaN, Infinity and -Infinity, and reads
#: 1e400 as infinity; none of them may enter a session.
_loads = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float).decode
_TRUE_TAIL = b',"result":true,"error":null}\n'

#: How long a connection on a PROXY listener may take to send its header.
PROXY_HEADER_TIMEOUT_S = 10.0


def _id_json(request_id: Any) -> bytes:
    if type(request_id) is int:  # the common case, without the JSON encoder
        return b"%d" % request_id
    return _dumps(request_id).encode()


def encode_reply(request_id: Any, result: Any) -> bytes:
    if result is True:
        return b'{"id":' + _id_json(request_id) + _TRUE_TAIL
    return (
        b'{"id":'
        + _id_json(request_id)
        + b',"result":'
        + _dumps(result).encode()
        + b',"error":null}\n'
    )


def encode_error(request_id: Any, error: StratumError) -> bytes:
    return (
        b'{"id":'
        + _id_json(request_id)
        + b',"result":'
        + _dumps(error.result).encode()
        + b',"error":'
        + _dumps(error.as_json()).encode()
        + b"}\n"
    )


class StratumProtocol(protocol.Protocol):
    """One miner connection."""

    transport: Any  # a twisted.internet.tcp.Server (or TLS) once connected

    def __init__(self, server: StratumServer, listener: ListenerSettings) -> None:
        self.server = server
        self.listener = listener
        self.session: Session | None = None
        self.peer = ""
        self._buffer = b""
        self._max_line = server.settings.stratum.max_line_bytes
        self._awaiting_proxy = False
        self._proxy_timer: Any = None
        self._proxy_peer: str | None = None  # the balancer's address, counted while waiting
        self._closing = False  # close() was called
        self._lost = False  # the connection is gone
        self.last_request_at = server.clock()

    # --- connection ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        # Replies are small and each waits for the miner's next request otherwise: without
        # TCP_NODELAY, Nagle plus delayed ACKs held some sessions' every reply ~40 ms.
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", "")
        if self.listener.proxy_protocol:
            # The load balancer's PROXY header comes first and names the miner: admission
            # (limits, bans) waits for it, a few seconds at most. Only the listener's trusted
            # proxies may name one; a waiting connection counts against the balancer's cap.
            if not in_networks(self.peer, networks_of(self.listener.trusted_proxies)):
                self.server.gate.refused_untrusted_proxy(self.peer, self.listener.name)
                self.transport.abortConnection()
                return
            if not self.server.gate.admit_pending(self):
                self.transport.abortConnection()
                return
            self._proxy_peer = self.peer
            self._awaiting_proxy = True
            self._proxy_timer = self.server.reactor.callLater(
                PROXY_HEADER_TIMEOUT_S, self._proxy_timeout
            )
            return
        self._admit()

    def _admit(self) -> None:
        if not self.server.gate.admit(self):
            self._closing = True
            self.transport.abortConnection()
            return
        self.session = Session(self.server, self.listener, self, self.peer, self.server.clock())

    def _proxy_done(self) -> None:
        """The PROXY header arrived, or never will: the balancer's count is released."""
        self._awaiting_proxy = False
        if self._proxy_timer is not None and self._proxy_timer.active():
            self._proxy_timer.cancel()
        if self._proxy_peer is not None:
            self.server.gate.release_pending(self._proxy_peer)
            self._proxy_peer = None

    def _proxy_timeout(self) -> None:
        if self._awaiting_proxy:
            self.server.events.info(
                "proxy_timeout",
                "no PROXY header from %s within %g s: closed",
                self.peer,
                PROXY_HEADER_TIMEOUT_S,
            )
            self._proxy_done()
            self._closing = True
            self.transport.abortConnection()

    def _proxy_header(self, data: bytes) -> bytes | None:
        """Take the PROXY header off the stream; the bytes after it, or None (more needed,
        or the connection was closed)."""
        buffer = self._buffer + data
        try:
            header = parse_proxy_header(buffer)
        except ProxyHeaderError as exc:
            self.server.events.warning(
                "proxy_header_errors", "closed %s on a PROXY listener: %s", self.peer, exc
            )
            self.server.stats["proxy_header_errors"] += 1
            self._proxy_done()
            self._buffer = b""
            self._closing = True
            self.transport.abortConnection()
            return None
        if header is None:
            self._buffer = buffer
            return None
        self._proxy_done()
        if header.source is not None:
            self.peer = header.source[0]
        self._buffer = b""
        self._admit()
        return buffer[header.length :] if self.session is not None else None

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._lost = self._closing = True
        self._proxy_done()
        if self.session is not None:
            self.server.session_closed(self.session)
            self.session = None

    # --- receiving ---------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The connection is being closed or is gone: nothing more it sent is read."""
        return self._closing or disconnecting(self.transport)

    def close(self) -> None:
        """Close after what is queued for the miner is sent; stop reading its lines."""
        if self._closing:
            return
        self._closing = True
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._awaiting_proxy:
            rest = self._proxy_header(data)
            if not rest:
                return
            data = rest
        buffer = self._buffer + data if self._buffer else data
        if b"\n" not in buffer:
            self._buffer = buffer
            if len(buffer) > self._max_line:
                self._oversized()
            return
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        out: list[bytes] = []
        session = self.session
        transport = self.transport
        for line in lines:
            if session is None:
                return
            if len(line) > self._max_line:
                break
            if self._closing or disconnecting(transport):  # banned or closed mid-packet
                break
            reply = self._line(line, session)
            if reply is not None:
                out.append(reply)
            if session.outbox:
                out.extend(session.outbox)
                session.outbox.clear()
        if out:
            self.push(b"".join(out))
        if self._closing:
            return
        if len(self._buffer) > self._max_line or any(len(x) > self._max_line for x in lines):
            self._oversized()

    def _line(self, line: bytes, session: Session) -> bytes | None:
        line = line.strip()
        if not line:
            return None
        try:
            message = _loads(line.decode())
        except NonFiniteNumber as exc:
            self.server.gate.note_invalid(session, "malformed")
            return encode_error(None, StratumError(E.OTHER, f"Parse error: {exc}"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
            self.server.gate.note_invalid(session, "malformed")
            return encode_error(None, StratumError(E.OTHER, "Parse error: not a JSON line"))
        if not isinstance(message, dict):
            self.server.gate.note_invalid(session, "malformed")
            return encode_error(None, StratumError(E.OTHER, "Expected a JSON object"))
        request_id = message.get("id")
        method = message.get("method")
        if method is None and ("result" in message or "error" in message):
            return None  # a reply from the miner to something we sent; nothing to answer
        params = message.get("params", [])
        if params is None:
            params = []
        if not isinstance(method, str) or not isinstance(params, list):
            self.server.gate.note_invalid(session, "malformed")
            return encode_error(
                request_id, StratumError(E.OTHER, "Expected a method name and a params list")
            )
        self.last_request_at = self.server.clock()  # a whole, well-formed request
        try:
            result = session.handle(method, params)
        except StratumError as error:
            self.server.gate.note_rejected(session, method, error)
            return encode_error(request_id, error)
        except Exception:
            log.exception("%s from %s failed", method, self.peer)
            return encode_error(request_id, StratumError(E.OTHER, "Internal error"))
        if isinstance(result, defer.Deferred):
            result.addCallbacks(
                self._deferred_reply,
                self._deferred_failure,
                callbackArgs=(request_id,),
                errbackArgs=(request_id, method),
            )
            return None
        if result is None:
            result = True
        return encode_reply(request_id, result)

    def _deferred_reply(self, result: Any, request_id: Any) -> None:
        self.send(encode_reply(request_id, True if result is None else result))

    def _deferred_failure(self, failure: Failure, request_id: Any, method: str) -> None:
        if self._lost:
            self.server.stats["replies_dropped"] += 1
            return
        error = failure.value
        if not isinstance(error, StratumError):
            log.error("%s from %s failed: %s", method, self.peer, failure.getTraceback())
            error = StratumError(E.OTHER, "Internal error")
        self.send(encode_error(request_id, error))

    def _oversized(self) -> None:
        session = self.session
        if session is not None:
            self.server.gate.note_invalid(session, "oversized")
        self._buffer = b""
        self.send(
            encode_error(
                None, StratumError(E.OTHER, f"Line longer than {self._max_line} bytes; closing")
            )
        )
        self.close()
        self.session = None
        if session is not None:
            self.server.session_closed(session)

    # --- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write now (the reply and anything the session queued); dropped (and counted) once
        the connection is gone, as a reply that was ready too late is."""
        if self._lost:
            self.server.stats["replies_dropped"] += 1
            return
        session = self.session
        if session is not None and session.outbox:
            data += b"".join(session.outbox)
            session.outbox.clear()
        if data:
            self.push(data)

    def push(self, data: bytes) -> None:
        """Write, trying the socket directly when nothing is queued for it.

        Twisted's transport.write only queues and registers the socket for writing; the send
        happens a reactor round later, and the register/unregister pair was a third of the
        server's CPU at 15k shares/s. A direct send when the queue is empty keeps ordering (the
        queue is empty) and leaves any remainder to the transport. The same path serves the
        fan-out of one notify to thousands of sessions. (The queue is Twisted's internals:
        pool/stratum/twisted_compat.py.)
        """
        if self._lost:
            return
        transport = self.transport
        rest = send_now(transport, data)
        if rest is None:
            return  # all sent, or the socket failed (the reactor will see it die)
        transport.write(rest)
        if unsent_bytes(transport) > self.server.settings.stratum.max_send_buffer_bytes:
            # A client that does not read: what waits for it would grow without bound.
            self.server.events.warning(
                "closed_slow", "closed %s: it does not read what the pool sends", self.peer
            )
            self.server.stats["closed_slow"] += 1
            self._closing = True
            transport.abortConnection()
