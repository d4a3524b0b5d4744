"""The local spool: where accepted shares go, durably, while the database cannot take them.

An append-only file of JSON lines, flushed and fsync'd before the shares in it are
acknowledged. Loading it back is idempotent (every share is keyed by its header hash), so the
file is emptied only after everything in it has been committed, and a crash at any point
loads it again without doubling anything. A torn last line (the process died while writing
it) was never acknowledged and is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The kind `read_from` gives a line that is not JSON (`{"t": UNREADABLE, "line": ...}`).
UNREADABLE = "unreadable"


class Spool:
    """Append-only JSON-lines file of ledger records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write records and fsync; returns how many. Raises OSError if the disk refuses."""
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        if not data:
            return 0
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        return data.count(b"\n")

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_from(self, offset: int, max_bytes: int = 4 << 20) -> tuple[list[dict[str, Any]], int]:
        """Complete records from `offset` (about max_bytes of them) and the offset after them.

        Only the writer that appends reads, so a last line without its newline at the end of the
        file is torn (the process died writing it, before the fsync that would have
        acknowledged it): it is skipped. A line that is not JSON comes back as
        `{"t": UNREADABLE, "line": ...}`.
        """
        try:
            with self.path.open("rb") as file:
                file.seek(offset)
                data = file.read(max_bytes)
                if data and b"\n" not in data:
                    data += file.readline()  # one line longer than max_bytes: all of it
                at_end = not file.read(1)
        except FileNotFoundError:
            return [], offset
        cut = data.rfind(b"\n") + 1
        consumed = cut
        if cut < len(data) and at_end:
            log.warning(
                "spool %s: skipping a torn last line (%d bytes)", self.path, len(data) - cut
            )
            consumed = len(data)
        records: list[dict[str, Any]] = []
        for line in data[:cut].split(b"\n"):
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError):
                # Not a record: handed on as it is, for the reader to quarantine.
                records.append({"t": UNREADABLE, "line": line.decode("utf-8", "backslashreplace")})
        return records, offset + consumed

    def read(self) -> Iterator[dict[str, Any]]:
        """Every complete record; a torn last line is skipped (it was never acknowledged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        lines = raw.split(b"\n")
        if lines and lines[-1]:
            log.warning("spool %s: skipping a torn last line (%d bytes)", self.path, len(lines[-1]))
        for number, line in enumerate(lines[:-1], start=1):
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                log.error(
                    "spool %s line %d is not JSON; skipped: %r", self.path, number, line[:200]
                )

    def clear(self, expected_size: int) -> bool:
        """Empty the file if it still has `expected_size` bytes (nothing appended since it was
        read); returns whether it did."""
        with self._lock:
            if self.size() != expected_size:
                return False
            fd = os.open(self.path, os.O_WRONLY)
            try:
                os.ftruncate(fd, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
