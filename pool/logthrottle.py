"""Log lines about what miners do, at a rate a flood cannot drive up.

A misbehaving fleet (or an attacker) can make the share path refuse, close or ban thousands of
times a second; a log line for each would fill the disk and hide everything else. Each kind
of event gets at most `burst` lines per `period_s`; what is held back is counted and the next
line of that kind that gets through says how many were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ThrottledLog:
    """`burst` lines per `period_s` for each kind of event, then a count."""

    logger: logging.Logger
    clock: Callable[[], float]
    burst: int = 10
    period_s: float = 60.0
    # kind -> (window start, lines logged, lines held back)
    _windows: dict[str, tuple[float, int, int]] = field(default_factory=dict, repr=False)

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = self.clock()
        start, logged, held = self._windows.get(kind, (now, 0, 0))
        if now - start >= self.period_s:
            start, logged = now, 0
        if logged >= self.burst:
            self._windows[kind] = (start, logged, held + 1)
            return
        if held:
            message += f" (and {held} more like it not logged)"
        self._windows[kind] = (start, logged + 1, 0)
        self.logger.log(level, message, *args)

    def warning(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)

    def info(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.INFO, kind, message, *args)
