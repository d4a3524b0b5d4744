"""A newcomer's first steps, as processes: a second `scripts/bootstrap` and `farmpool db
upgrade` print nothing but their outcome; a failed command leaves no database file behind and
`.gitignore` covers what a run does leave; `scripts/dev-node` starts bcoin where the embedded
defaults look for a node, and `farmpool serve` with no config gives a miner a job on it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import regtest_peers
from sqlalchemy.engine import make_url

from pool.chain.rpc import NodeRPC
from pool.config import DEFAULT_CONFIG, Settings, load_settings
from tests.e2e.farmpool_serve import ServeProcess
from tests.e2e.stratum_client import StratumClient, stratum_prevhash
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
CLOSED_NODE = "http://u:p@127.0.0.1:9"  # the discard port: nothing answers RPC there


def farmpool(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_a_second_bootstrap_and_db_upgrade_print_no_noise(tmp_path: Path) -> None:
    subprocess.run(["scripts/bootstrap"], cwd=REPO, capture_output=True, check=True, timeout=900)
    again = subprocess.run(
        ["scripts/bootstrap"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", ""), "nothing to install, so nothing to say"
    upgrade = farmpool(tmp_path, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stderr == "", "log lines at the default level"
    assert upgrade.stdout.splitlines() == [
        f"{Settings.database_url}: at {head_revision()} (up to date)"
    ]


def head_revision() -> str | None:
    from pool.ledger import db

    return db.head_revision(Settings.database_url)


def test_a_failed_command_leaves_no_database_behind(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "pool.yaml"  # the defaults, with a node that is not there
    config.write_text(
        json.dumps({**DEFAULT_CONFIG, "node": {"url": CLOSED_NODE, "rpc_timeout_s": 2}})
    )
    nested = tmp_path / "nested.yaml"
    nested.write_text(json.dumps({**DEFAULT_CONFIG, "database_url": "sqlite:///db/pool.sqlite3"}))
    for args in (
        ["balances"],  # the embedded defaults
        ["-c", str(config), "blocks", "update"],
        ["-c", str(config), "serve", "--wait-node", "0"],
        ["-c", str(nested), "site", "list"],
    ):
        run = farmpool(work, *args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "create it with `farmpool db upgrade`" in run.stderr, (args, run.stderr)
        assert list(work.iterdir()) == [], (args, "left behind")


def test_gitignore_covers_what_farmpool_and_the_scripts_leave() -> None:
    database = make_url(Settings.database_url).database
    assert database
    left = [
        database,
        f"{database}-wal",
        f"{database}-shm",
        f"{database}.tracker.lock",
        f"{database}.payout.lock",
        f"{Settings.data_dir}/ledger-spool.jsonl",
        ".venv/bin/python",
        ".peers/bcoin/package.json",
        ".run/bcoin/bcoin.log",
        "farmpool.egg-info/PKG-INFO",
        "pool/__pycache__/cli.cpython-311.pyc",
    ]
    run = subprocess.run(
        ["git", "check-ignore", "--no-index", *left], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode in (0, 1), run.stderr  # 1: none ignored
    assert sorted(run.stdout.splitlines()) == sorted(left)


@contextlib.contextmanager
def default_ports() -> Iterator[list[int]]:
    """The fixed ports of the embedded defaults and the dev node, for this test alone on the
    machine (other checkouts' test runs wait for the lock); each must be free."""
    settings = load_settings(None)
    ports = [
        urlsplit(settings.node.url).port or 0,
        regtest_peers.DEV_WALLET_PORT,
        *(listener.port for listener in settings.listeners),
        settings.api.port,
    ]
    with open("/tmp/farmpool-default-ports.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for port in ports:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    pytest.fail(
                        f"127.0.0.1:{port} (an embedded default) is taken by another program"
                    )
        yield ports


def test_the_dev_node_serves_the_embedded_defaults(tmp_path: Path) -> None:
    with default_ports():
        node_log = (tmp_path / "dev-node.log").open("w")
        dev_node = subprocess.Popen(
            ["scripts/dev-node", "--workdir", str(tmp_path / "node")],
            cwd=REPO, stdout=node_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            settings = load_settings(None)
            rpc = NodeRPC(settings.node.url, 5)
            deadline = time.monotonic() + 60
            while True:
                assert dev_node.poll() is None, (tmp_path / "dev-node.log").read_text()
                with contextlib.suppress(Exception):
                    tip = rpc.call("getbestblockhash")
                    break
                assert time.monotonic() < deadline, "no node at the defaults' node.url"
                time.sleep(0.2)
            (tmp_path / "pool").mkdir()
            pool = ServeProcess(None, tmp_path / "pool")  # db upgrade, serve: no -c
            try:
                listener = settings.listeners[0]
                with StratumClient(pool.port(listener.name), log=pool.log_tail) as miner:
                    job = miner.start(f"{settings.tenants[0].name}.rig1")
                    assert job.prevhash == stratum_prevhash(tip)
                    # Regtest blocks are easy: one found by the miner lands in the chain.
                    block = miner.find_block()
                    assert miner.submit(block)["result"] is True
                    wait_until(
                        lambda: rpc.call("getbestblockhash") == block.block_hash,
                        10,
                        lambda: "the block is not the tip",
                        step=0.1,
                    )
            finally:
                assert pool.terminate() == 0, pool.log_tail()
        finally:
            dev_node.send_signal(signal.SIGINT)
            code = dev_node.wait(timeout=30)
            node_log.close()
        assert code == 0, (tmp_path / "dev-node.log").read_text()
