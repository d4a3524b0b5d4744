"""Stratum error codes and the exception that carries one back to the miner.

Codes as miners and pools use them: 20 other (malformed, ntime, version bits), 21 job not
found (stale), 22 duplicate share, 23 low difficulty share, 24 unauthorized worker, 25 not
subscribed. Each reply carries `[code, message, null]`.
"""

from __future__ import annotations

from typing import Any

OTHER = 20
JOB_NOT_FOUND = 21
DUPLICATE = 22
LOW_DIFFICULTY = 23
UNAUTHORIZED = 24
NOT_SUBSCRIBED = 25

#: Short names of reject reasons, for logs and counters.
REASONS = {
    OTHER: "other",
    JOB_NOT_FOUND: "stale",
    DUPLICATE: "duplicate",
    LOW_DIFFICULTY: "low-difficulty",
    UNAUTHORIZED: "unauthorized",
    NOT_SUBSCRIBED: "not-subscribed",
}


class StratumError(Exception):
    """A request the pool answers with an error; the session goes on."""

    __slots__ = ("code", "message", "result")

    def __init__(self, code: int, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result  # authorize answers false with its error, others null

    def as_json(self) -> list[Any]:
        return [self.code, self.message, None]

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, "other")
