"""Listeners for production: stratum+ssl with a certificate from the config, and the PROXY
protocol (v1 and v2) behind a load balancer, whose source address is the one limits and bans
count.

One server process with three listeners: `tls` (a self-signed certificate made here with the
openssl command), `proxied` (proxy_protocol: true, at most 2 connections per address) and a
plain one, against the session's bcoin node.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.farmpool_serve import REPO, ServeProcess
from tests.e2e.stratum_client import ConnectionClosed, StratumClient


def self_signed(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "pool.crt", directory / "pool.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
            "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any],
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
    tls_files: tuple[Path, Path],
) -> ServeProcess:
    certificate, key = tls_files
    difficulty = {"start": 3e-10, "min": 1e-11, "max": 16}
    config = dict(bcoin_config)
    config["listeners"] = [
        {
            "name": "tls",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": difficulty,
            "tls": {"certificate": str(certificate), "key": str(key)},
        },
        {
            "name": "proxied",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": difficulty,
            "proxy_protocol": True,
            "trusted_proxies": ["127.0.0.1"],
        },
    ]
    config["stratum"] = {"max_connections_per_ip": 2}
    return serve_factory(config)


def test_a_miner_mines_over_stratum_ssl(server: ServeProcess, tls_files: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    with StratumClient(server.port("tls"), tls=context, log=server.log_tail) as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.start("acme.tls1")
        reply = client.submit(client.find_accepted())
        assert reply["result"] is True, reply
    # Plain text on the TLS port gets no Stratum answer: the handshake fails.
    with socket.create_connection(("127.0.0.1", server.port("tls")), timeout=5) as raw:
        raw.sendall(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
        raw.settimeout(5)
        try:
            answer = raw.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        assert b"result" not in answer


def test_the_config_check_names_a_bad_certificate(tmp_path: Path) -> None:
    import json
    import sys

    from pool.config import DEFAULT_CONFIG

    certificate, key = self_signed(tmp_path)
    bad_key = tmp_path / "other.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(bad_key)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    for tls, words in [
        ({"certificate": str(tmp_path / "missing.crt"), "key": str(key)}, "no such file"),
        ({"certificate": str(certificate), "key": str(bad_key)}, "do not load as a PEM pair"),
        ({"certificate": str(certificate)}, "listeners[0].tls.key: missing"),
    ]:
        config = json.loads(json.dumps(DEFAULT_CONFIG))
        config["listeners"][0]["tls"] = tls
        path = tmp_path / "farmpool.yaml"
        path.write_text(json.dumps(config))
        run = subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(path), "config", "check"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and words in run.stderr, (words, run.stderr)


def test_the_production_example_passes_the_config_check(tmp_path: Path) -> None:
    """config/production.yaml loads as it is once its TLS files exist: mainnet, PostgreSQL,
    a TLS listener, the node's named wallet."""
    import sys

    from pool.config import load_settings

    example = (REPO / "config" / "production.yaml").read_text()
    tls = [listener for listener in yaml.safe_load(example)["listeners"] if "tls" in listener]
    assert len(tls) == 1
    certificate, key = self_signed(tmp_path)
    text = example.replace(tls[0]["tls"]["certificate"], str(certificate))
    text = text.replace(tls[0]["tls"]["key"], str(key))
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(path), "config", "check"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "OK (network main" in run.stdout, run.stderr
    settings = load_settings(path)
    assert settings.database_url.startswith("postgresql://")
    assert [x.name for x in settings.listeners if x.tls_certificate] == [tls[0]["name"]]
    assert settings.payout.wallet == "core"
    assert (settings.payout.wallet_url or "").endswith("/wallet/farmpool-hot")


def proxy_v1(source: str, port: int) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {port} 3333\r\n".encode()


def proxy_v2(source: str, port: int) -> bytes:
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1")
    block = addresses + struct.pack("!HH", port, 3333)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block


def test_proxy_protocol_gives_the_real_address_to_limits(server: ServeProcess) -> None:
    port = server.port("proxied")
    # Two connections "from" 203.0.113.7 (v1 and v2) are admitted; a third is refused by the
    # per-address cap of 2, while another address still gets in: all four come from
    # 127.0.0.1, the load balancer.
    first = StratumClient(port, prelude=proxy_v1("203.0.113.7", 40001), log=server.log_tail)
    second = StratumClient(port, prelude=proxy_v2("203.0.113.7", 40002), log=server.log_tail)
    for client in (first, second):
        client.start("acme.behind-lb")
    reply = second.submit(second.find_accepted())
    assert reply["result"] is True, reply
    third = StratumClient(port, prelude=proxy_v1("203.0.113.7", 40003), log=server.log_tail)
    # Refused once its header names the address: the reset may beat the client's subscribe.
    with pytest.raises((ConnectionClosed, OSError)):
        third.start("acme.behind-lb")
    other = StratumClient(port, prelude=proxy_v2("198.51.100.9", 40004), log=server.log_tail)
    other.start("globex.behind-lb")
    # A connection without a PROXY header is dropped before any Stratum answer.
    bare = StratumClient(port, log=server.log_tail)
    with pytest.raises(ConnectionClosed):
        bare.start("acme.direct")
    # A PROXY header from anywhere but a trusted proxy is not believed: the connection is
    # refused (it could otherwise claim, and get banned, any farm's address).
    # The refusal is a reset as soon as the connection is accepted, which may already be what
    # the client's connect() sees.
    with (
        pytest.raises((ConnectionClosed, OSError)),
        StratumClient(
            port, source="127.0.0.9", prelude=proxy_v1("203.0.113.7", 40005), log=server.log_tail
        ) as spoofer,
    ):
        spoofer.start("acme.spoofed")
    for client in (first, second, third, other, bare):
        client.close()
