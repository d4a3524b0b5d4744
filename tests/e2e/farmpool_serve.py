"""`farmpool serve` as a separate process for the end-to-end tests.

The config (a dict) is written as JSON (valid YAML) into a work folder; stdout's JSON event
lines are read by a thread into a list, stderr (the log) goes to a file whose tail every
assertion message can show.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import listener_config, tenants_config

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

_live: list[subprocess.Popen[str]] = []


def _kill_leftovers() -> None:
    for proc in _live:
        if proc.poll() is None:
            proc.kill()


atexit.register(_kill_leftovers)


def base_config(node_url: str, payout_address: str, workdir: Path) -> dict[str, Any]:
    """The parts of a config every test server has; tests add listeners and stratum keys."""
    return {
        "network": "regtest",
        "log_level": "debug",
        "node": {"url": node_url, "refresh_interval_s": 120, "poll_interval_ms": 200},
        "pool": {"payout_address": payout_address, "tag": "/farmpool-e2e/"},
        "sites": ["north", "south"],
        "tenants": tenants_config(),
        "data_dir": str(workdir / "data"),
        "database_url": f"sqlite:///{workdir / 'farmpool.sqlite3'}",
    }


def fixed_listener(
    name: str = "main", site: str = "north", start: float = 3e-10, low: float = 1e-11
) -> dict[str, Any]:
    """A test listener on a free localhost port without vardiff. Difficulty 3e-10 is below
    regtest's 4.66e-10: a miner finds shares that are blocks and shares that are not."""
    difficulty = {"start": start, "min": low, "max": max(start, 16)}
    return listener_config(name, site=site, difficulty=difficulty)


class ServeProcess:
    """One `python -m pool -c CONFIG serve` process; with no config, `python -m pool serve`
    on the embedded defaults, in `workdir` (where their SQLite file is)."""

    def __init__(self, config: dict[str, Any] | None, workdir: Path) -> None:
        self.config = config or {}
        self.workdir = workdir
        self.config_path = workdir / "farmpool.yaml"
        options = ["-c", str(self.config_path)] if config is not None else []
        if config is not None:
            self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = workdir / "serve.log"
        self._log = self.log_path.open("w")
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._eof = False
        migrate = subprocess.run(
            [sys.executable, "-m", "pool", *options, "db", "upgrade"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=workdir,
        )
        assert migrate.returncode == 0, f"farmpool db upgrade failed: {migrate.stderr}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pool", *options, "serve", "--wait-node", "30"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        _live.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_event(lambda e: e.get("event") == "listening", START_TIMEOUT_S)
        self.ports: dict[str, int] = listening["ports"]
        self.pid: int = listening["pid"]

    # --- events ------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first event (from the start of the run) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    state = "ended" if self._eof else f"gave no such event within {timeout} s"
                    raise AssertionError(
                        f"farmpool serve {state}; events: {self.events[-5:]}\n"
                        f"log:\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.5))

    def jobs(self) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == "job"]

    def port(self, listener: str) -> int:
        return self.ports[listener]

    # --- log and lifecycle ---------------------------------------------------------------

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def log_text(self) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; SIGKILL (and a return code of -9) if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            code = -9
        self._log.close()
        return code
