"""Every place the pool relies on how Twisted's TCP transport works inside, in one module.

The Stratum protocol (pool/stratum/protocol.py) writes replies straight to the socket when
nothing is queued for it, and closes a miner that does not read what it is sent. Twisted has
no public API for either, so both read the transport's write queue, which is not public
API. This module holds those reads; nothing else in pool/ touches a private Twisted
attribute. tests/unit/test_twisted_compat.py checks each reliance on a real TCP connection,
and fails if a Twisted release changes one. pyproject.toml caps Twisted below its next year's
release for the same reason. Before raising the cap, run that test against the new release.

What is relied on (twisted.internet.abstract.FileDescriptor, the base of tcp.Server):

* `write()` appends to `_tempDataBuffer` (a list) and adds to `_tempDataLen`. `doWrite()`
  later moves that into `dataBuffer` (bytes) and sends from there. A transport has nothing
  queued when both are empty. Twisted's own `_isSendBufferFull()` counts the queue as
  `len(dataBuffer) + _tempDataLen`, as `unsent_bytes` does.
* `tcp.Server.socket` is the connected non-blocking socket (also given by `getHandle()`).
* `disconnecting` is true once `loseConnection()` has been called (documented for
  `_ConsumerMixin`, and kept by StringTransport and TLSMemoryBIOProtocol too).
* A TLS connection is a TLSMemoryBIOProtocol whose `transport` is the tcp.Server.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

__all__ = ["disconnecting", "send_now", "unsent_bytes"]


def disconnecting(transport: Any) -> bool:
    """The transport is closing (loseConnection or abortConnection was called) or closed."""
    return bool(transport.disconnecting)


def send_now(transport: Any, data: bytes) -> bytes | None:
    """Send `data` straight to the socket when nothing is queued for it, bypassing the
    reactor round that `transport.write` takes (order is kept: the queue is empty).

    Returns the bytes the caller must still give to `transport.write`: all of `data` when
    the transport is not a plain TCP server connection, already has bytes queued, or is
    closing; the remainder after a partial send. Returns None when nothing is left to write:
    everything was sent, or the socket failed (the reactor will see the connection die)."""
    if (
        type(transport) is tcp.Server
        and not transport._tempDataBuffer
        and not transport.dataBuffer
        and not transport.disconnecting
    ):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return None
        if sent == len(data):
            return None
        return data[sent:]
    return data


def unsent_bytes(transport: Any) -> int:
    """Bytes written to a connection that the kernel has not taken yet (TCP, or TLS over
    TCP: the TLS layer's TCP transport); 0 where the transport does not say."""
    total = 0
    for layer in (transport, getattr(transport, "transport", None)):
        if type(layer) is tcp.Server:
            total += len(layer.dataBuffer) + layer._tempDataLen
    return total
