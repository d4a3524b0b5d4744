"""Fixtures for the integration tests: `farmpool work` processes (the regtest nodes come from
tests/conftest.py)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class WorkProcess:
    """`farmpool work` as a separate process; its JSON events are read by a thread into a
    queue, its log goes to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pool", "-c", str(config), "work", "--seconds", "60"],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put(None)

    def next_event(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no event from farmpool work within {timeout} s; log:\n{self.log_text()}"
            ) from None
        if event is None:
            raise AssertionError(f"farmpool work ended; log:\n{self.log_text()}")
        return event

    def log_text(self) -> str:
        self._log_file.flush()
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


@pytest.fixture
def work_process(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], WorkProcess]]:
    """Start `farmpool work` with a config (a dict); every process is stopped at the end."""
    started: list[WorkProcess] = []

    def start(config: dict[str, Any]) -> WorkProcess:
        n = len(started)
        path = tmp_path / f"farmpool-{n}.yaml"
        path.write_text(json.dumps(config))
        process = WorkProcess(path, tmp_path / f"farmpool-{n}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
