"""Idle and slow clients, end to end: a session that says nothing for `idle_timeout_s` is
closed while a talkative one stays; a client that stops reading is cut off once
`max_send_buffer_bytes` waits for it, while the server goes on serving everyone else.

One `farmpool serve` process with a 2 s idle timeout and a 64 KiB send buffer limit.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.stratum_client import StratumClient

IDLE_S = 2.0


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = dict(bcoin_config)
    config["listeners"] = [fixed_listener()]
    config["stratum"] = {"idle_timeout_s": IDLE_S, "max_send_buffer_bytes": 65536}
    return serve_factory(config)


def test_a_silent_session_is_closed_and_a_talking_one_stays(
    connect: Callable[..., StratumClient],
) -> None:
    silent, talker = connect(), connect()
    for client in (silent, talker):
        client.start("acme.idle")
    started = time.monotonic()
    while time.monotonic() - started < IDLE_S + 2.5:
        assert talker.call("mining.extranonce.subscribe", []) is True
        time.sleep(0.5)
    assert silent.wait_closed(0.5), "a session silent for longer than the timeout is open"
    assert talker.submit(talker.find_accepted())["result"] is True


def test_a_client_that_does_not_read_is_cut_off(
    server: ServeProcess, connect: Callable[..., StratumClient]
) -> None:
    bystander = connect()
    bystander.start("globex.fine")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: a slow reader
    slow.connect(("127.0.0.1", server.port("main")))
    request = json.dumps({"id": 1, "method": "mining.extranonce.subscribe", "params": []})
    burst = (request + "\n").encode() * 20_000  # ~1 MB of replies it will never read
    closed = False
    deadline = time.monotonic() + 30
    slow.settimeout(1.0)
    while time.monotonic() < deadline and not closed:
        try:
            slow.sendall(burst)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        except TimeoutError:
            pass  # the server stopped reading us: its buffers are full; look for the cut
        try:
            slow.setblocking(False)
            slow.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionResetError:
            closed = True
        finally:
            slow.settimeout(1.0)
        if "does not read what the pool sends" in server.log_text():
            closed = True
    slow.close()
    assert closed, f"a client that never reads was not cut off\n{server.log_tail()}"
    assert "does not read what the pool sends" in server.log_text()
    # Everyone else is served as before.
    assert bystander.submit(bystander.find_accepted())["result"] is True
