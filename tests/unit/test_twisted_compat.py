"""The Twisted internals the pool relies on (pool/stratum/twisted_compat.py), checked on a
real TCP connection of a real (not running, iterated by hand) epoll reactor: if a Twisted
release changes how its transport queues writes, this fails before the share path does."""

from __future__ import annotations

import contextlib
import socket
import struct
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from twisted.internet import protocol, ssl, tcp
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory

from pool.stratum.twisted_compat import disconnecting, send_now, unsent_bytes

REPO = Path(__file__).resolve().parents[2]


class Connection:
    """One accepted connection: the server side's Twisted transport, the client's socket."""

    def __init__(self, reactor: EPollReactor, transport: tcp.Server, client: socket.socket):
        self.reactor = reactor
        self.transport = transport
        self.client = client

    def spin(self, until: Callable[[], bool], rounds: int = 500) -> None:
        for _ in range(rounds):
            if until():
                return
            self.reactor.iterate(0.01)
        raise AssertionError("the reactor never got there")

    def receive(self, size: int) -> bytes:
        """Read exactly `size` bytes on the client, turning the reactor meanwhile."""
        self.client.setblocking(False)
        got = b""
        for _ in range(2000):
            try:
                got += self.client.recv(size - len(got))
            except BlockingIOError:
                self.reactor.iterate(0.005)
            if len(got) == size:
                return got
        raise AssertionError(f"received {len(got)} of {size} bytes")


@pytest.fixture(scope="module")
def reactor() -> EPollReactor:
    """One reactor for the module (each holds an epoll descriptor and a waker pipe)."""
    return EPollReactor()


@pytest.fixture
def connect(reactor: EPollReactor) -> Iterator[Callable[..., Connection]]:
    accepted: list[protocol.Protocol] = []
    cleanup: list[Callable[[], object]] = []

    class Keep(protocol.Protocol):
        def connectionMade(self) -> None:
            accepted.append(self)

    def make(client_rcvbuf: int | None = None) -> Connection:
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Keep), interface="127.0.0.1")
        cleanup.append(port.stopListening)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if client_rcvbuf is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_rcvbuf)
        client.connect(("127.0.0.1", port.getHost().port))
        cleanup.append(client.close)
        conn = Connection(reactor, None, client)  # type: ignore[arg-type]
        conn.spin(lambda: bool(accepted))
        conn.transport = accepted.pop().transport  # type: ignore[assignment]
        cleanup.append(conn.transport.abortConnection)
        return conn

    yield make
    for step in reversed(cleanup):
        step()
    for _ in range(5):
        reactor.iterate(0)


def test_the_transport_is_tcp_server_with_an_empty_write_queue(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    transport = conn.transport
    assert type(transport) is tcp.Server  # what send_now and unsent_bytes look for
    assert transport._tempDataBuffer == [] and transport._tempDataLen == 0
    assert transport.dataBuffer == b""
    assert transport.socket is transport.getHandle()
    assert not disconnecting(transport) and unsent_bytes(transport) == 0


def test_send_now_writes_to_the_socket_without_a_reactor_round(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    assert send_now(conn.transport, b"hello\n") is None
    conn.client.settimeout(5)
    assert conn.client.recv(100) == b"hello\n"  # the reactor did not turn


def test_write_queues_in_temp_buffer_and_send_now_keeps_the_order(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    transport = conn.transport
    transport.write(b"first\n")
    assert transport._tempDataBuffer == [b"first\n"] and transport._tempDataLen == 6
    assert unsent_bytes(transport) == 6
    assert send_now(transport, b"second\n") == b"second\n"  # queued bytes go first
    transport.write(b"second\n")
    assert conn.receive(13) == b"first\nsecond\n"
    assert unsent_bytes(transport) == 0 and transport._tempDataBuffer == []


def test_a_partial_send_leaves_the_rest_and_the_queue_moves_to_data_buffer(
    connect: Callable[..., Connection],
) -> None:
    conn = connect(client_rcvbuf=4096)  # the client reads nothing: the kernel fills up
    transport = conn.transport
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytes(8 << 20)
    rest = send_now(transport, data)
    assert rest is not None and 0 < len(rest) < len(data)
    assert data.endswith(rest)
    transport.write(rest)
    assert unsent_bytes(transport) == len(rest)
    # The client reads a little: the socket is writable, and doWrite moves the queue into
    # dataBuffer (sending what the kernel takes, from `offset`).
    conn.client.setblocking(False)

    def moved() -> bool:
        with contextlib.suppress(BlockingIOError):
            conn.client.recv(65536)
        return transport._tempDataLen == 0

    conn.spin(moved)
    assert transport._tempDataBuffer == []
    assert isinstance(transport.dataBuffer, bytes) and len(transport.dataBuffer) == len(rest)
    assert unsent_bytes(transport) == len(transport.dataBuffer)
    assert send_now(transport, b"later\n") == b"later\n"  # something is still queued


def test_disconnecting_after_lose_connection_and_no_direct_send(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    transport = conn.transport
    transport.loseConnection()
    assert disconnecting(transport)
    assert send_now(transport, b"late\n") == b"late\n"


def test_send_now_on_a_reset_socket_gives_nothing_to_write(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    # The client resets the connection (linger 0); the reactor has not noticed yet.
    conn.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.client.close()
    outcomes = {send_now(conn.transport, b"x" * 100) for _ in range(3)}
    assert outcomes == {None}


def test_unsent_bytes_looks_through_tls_to_its_tcp_transport(
    connect: Callable[..., Connection],
) -> None:
    conn = connect()
    factory = TLSMemoryBIOFactory(
        ssl.CertificateOptions(), False, protocol.Factory.forProtocol(protocol.Protocol)
    )
    tls = factory.buildProtocol(None)
    tls.makeConnection(conn.transport)
    assert tls.transport is conn.transport
    before = unsent_bytes(tls)
    conn.transport.write(b"abc")
    assert unsent_bytes(tls) == before + 3


def test_other_transports_are_left_to_twisted() -> None:
    transport = StringTransport()
    assert send_now(transport, b"data") == b"data"
    assert unsent_bytes(transport) == 0 and not disconnecting(transport)
    transport.loseConnection()
    assert disconnecting(transport)


def test_the_installed_twisted_is_within_pyprojects_cap() -> None:
    """pyproject.toml caps Twisted where these internals were last checked; the version
    this suite runs with must be inside it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (twisted,) = [
        Requirement(r) for r in project["dependencies"] if Requirement(r).name == "twisted"
    ]
    assert any(spec.operator == "<" for spec in twisted.specifier), twisted
    assert twisted.specifier.contains(version("twisted")), (version("twisted"), twisted)
