"""Shared helpers for the server benchmarks (stratum_submit, notify_fanout, connections).

Each benchmark starts a real regtest node (bcoin, or the Bitcoin SV pair for ZMQ), writes a
JSON config (JSON is YAML) into a temporary directory, runs `python -m pool -c CONFIG serve`
as a separate process with stdout piped (its JSON event lines are collected by a reader
thread) and stderr in a log file, and stops everything at the end. The load itself comes from
scripts/loadgen.py, imported as a module into the benchmark process.

Only 127.0.0.1 is used. Open files are capped per process; `raise_nofile` lifts the soft limit
to the hard one (and the server inherits it).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import loadgen  # noqa: E402
import regtest_peers  # noqa: E402
from regtest_peers import RegtestNode  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TENANT = "acme"

__all__ = [
    "TENANT",
    "CpuMeter",
    "Nodes",
    "ServerProcess",
    "figure",
    "loadgen",
    "percent",
    "print_result",
    "raise_nofile",
    "running_server",
    "self_cpu",
    "server_config",
    "start_nodes",
]


def raise_nofile(need: int = 0) -> int:
    """Raise this process's open-file soft limit to the hard limit; return the new soft limit.

    Raises SystemExit when even the hard limit is below `need`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if need and soft < need:
        raise SystemExit(f"need {need} open files, the hard limit is {soft}")
    return soft


def figure(value: float | None, unit: str, target: float | None, better: str) -> dict[str, Any]:
    return {
        "value": None if value is None else round(value, 3),
        "unit": unit,
        "target": target,
        "better": better,
    }


def print_result(name: str, figures: dict[str, Any]) -> None:
    """The benchmark's last line: one JSON object."""
    print(json.dumps({"benchmark": name, "figures": figures}), flush=True)


# --- nodes -----------------------------------------------------------------------------------


class Nodes:
    """The pool's node (and, for the SV pair, the peer that mines competing blocks)."""

    def __init__(self, kind: str, pool_node: RegtestNode, miner: RegtestNode) -> None:
        self.kind = kind
        self.pool_node = pool_node
        self.miner = miner  # bcoin: the same node; svnode: the second node of the pair
        self._address: str | None = None

    @property
    def payout_address(self) -> str:
        if self._address is None:
            self._address = self.pool_node.new_address()
        return self._address

    def node_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"url": self.pool_node.rpc_url}
        if self.pool_node.zmq_hashblock:
            config["zmq_hashblock"] = self.pool_node.zmq_hashblock
        return config

    def mine_block(self) -> tuple[float, float, str]:
        """Mine one block where the pool learns of it as from the network.

        bcoin: on the pool's node itself (its long-poll answers); SV pair: on the second node,
        so the first learns of it by P2P and tells the pool by ZMQ. Returns the wall-clock
        times before and after the RPC and the block hash.
        """
        address = self.miner.new_address() if self.kind == "svnode" else self.payout_address
        before = time.time()
        hashes = self.miner.rpc("generatetoaddress", 1, address)
        after = time.time()
        return before, after, str(hashes[0])

    def stop(self) -> None:
        if self.miner is not self.pool_node:
            self.miner.stop()
        self.pool_node.stop()


def start_nodes(kind: str, workdir: Path) -> Nodes:
    if kind == "bcoin":
        regtest_peers.install_bcoin()
        node = regtest_peers.start_bcoin(workdir / "bcoin", log_level="info")
        nodes = Nodes("bcoin", node, node)
        # one block first, so that the chain is not at genesis
        node.rpc("generatetoaddress", 1, nodes.payout_address)
        return nodes
    if kind == "svnode":
        regtest_peers.install_svnode()
        first, second = regtest_peers.start_svnode_pair(workdir / "svnode")
        nodes = Nodes("svnode", first, second)
        second.rpc("generatetoaddress", 1, second.new_address())
        first.wait_for(lambda: first.rpc("getblockcount") >= 1, timeout=10)
        return nodes
    raise ValueError(f"unknown node kind {kind!r}")


# --- the server --------------------------------------------------------------------------------


def server_config(
    path: Path,
    nodes: Nodes,
    *,
    difficulty: dict[str, float],
    vardiff: bool,
    node_extra: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Path:
    """Write a config for one 127.0.0.1 listener on a free port, limits opened up for load."""
    data_dir = path.parent / "data"
    config = {
        "network": "regtest",
        "node": {**nodes.node_config(), "refresh_interval_s": 120, **(node_extra or {})},
        "pool": {"payout_address": nodes.payout_address},
        "sites": ["bench"],
        "tenants": [{"name": TENANT}],
        "listeners": [
            {
                "name": "bench",
                "site": "bench",
                "bind": "127.0.0.1",
                "port": 0,
                "difficulty": difficulty,
                "vardiff": {"enabled": vardiff},
            }
        ],
        "stratum": {
            "max_connections_per_ip": 100_000,
            "subscribe_timeout_s": 600,
            "ban": {"invalid_shares": 1_000_000, "ban_s": 0},
        },
        "data_dir": str(data_dir),
        "database_url": database_url or f"sqlite:///{data_dir / 'farmpool.sqlite3'}",
        "log_level": "info",
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def _raise_nofile_in_child() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ServerProcess:
    """`python -m pool -c CONFIG serve` with its stdout events collected as they come."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._log = log_path.open("ab")
        subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(config), "db", "upgrade"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            check=True,
            cwd=config.parent,
            timeout=300,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pool", "-c", str(config), "serve", "--wait-node", "30"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=config.parent,
            preexec_fn=_raise_nofile_in_child,
        )
        self._reader = threading.Thread(target=self._read, name="server-stdout", daemon=True)
        self._reader.start()
        self.port = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            received = time.time()
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                event["_received_at"] = received
                self.events.append(event)
                self._queue.put(event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_event(
        self,
        name: str,
        timeout: float,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The next event `name` (matching `predicate`) from now on; RuntimeError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"server: no {name!r} event within {timeout:g} s\n{self.log_tail()}"
                )
            if self.proc.poll() is not None and self._queue.empty():
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} waiting for {name!r}\n"
                    f"{self.log_tail()}"
                )
            try:
                event = self._queue.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if event.get("event") == name and (predicate is None or predicate(event)):
                return event

    def wait_listening(self, timeout: float = 60.0) -> int:
        event = self.wait_event("listening", timeout)
        self.port = int(next(iter(event["ports"].values())))
        return self.port

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server process (all its threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def status(self, key: str) -> str:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
        return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the server says client.reconnect to everyone and exits 0), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running_server(
    workdir: Path,
    nodes: Nodes,
    *,
    difficulty: dict[str, float],
    vardiff: bool,
    node_extra: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Iterator[ServerProcess]:
    config = server_config(
        workdir / "farmpool.json",
        nodes,
        difficulty=difficulty,
        vardiff=vardiff,
        node_extra=node_extra,
        database_url=database_url,
    )
    server = ServerProcess(config, workdir / "farmpool.log")
    try:
        server.wait_listening()
        yield server
    finally:
        code = server.stop()
        if code not in (0, None):
            print(f"server exited with {code}; log tail:\n{server.log_tail()}", file=sys.stderr)


def _proc_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_cpu() -> tuple[float, float]:
    """(busy outside softirq, softirq) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        v = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + v[5] + v[7]
    return busy / CLK_TCK, v[6] / CLK_TCK


class CpuMeter:
    """Who used the CPUs between start() and stop(), in % of one core: the server, this
    process (the load generator), the node(s), softirq (mostly our own loopback traffic)
    and everything else on the machine (other processes compete for the 2 cores)."""

    def __init__(self, server: ServerProcess, nodes: Nodes) -> None:
        self.server = server
        self.node_pids = [
            n.pid for n in {id(x): x for x in (nodes.pool_node, nodes.miner)}.values()
        ]
        self._start: tuple[float, ...] = ()

    def _snapshot(self) -> tuple[float, ...]:
        user, system = self_cpu()
        busy, softirq = _machine_cpu()
        nodes = sum(_proc_cpu(pid) for pid in self.node_pids)
        return (time.monotonic(), _proc_cpu(self.server.pid), user + system, nodes, busy, softirq)

    def start(self) -> None:
        self._start = self._snapshot()

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        wall, server, gen, nodes, busy, softirq = (
            b - a for a, b in zip(self._start, end, strict=True)
        )
        other = busy - server - gen - nodes
        return {
            "server": round(percent(server, wall), 1),
            "loadgen": round(percent(gen, wall), 1),
            "node": round(percent(nodes, wall), 1),
            "softirq": round(percent(softirq, wall), 1),
            "other": round(max(0.0, percent(other, wall)), 1),
        }


def self_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process (the load generator) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0
