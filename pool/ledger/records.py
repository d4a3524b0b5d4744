"""The record of one accepted share, as the session makes it and the ledger stores it.

Made once per accepted share on the share path, so it is a plain slots class; names (tenant,
worker, site), not database ids, so that a share can be spooled and loaded later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Largest difficulty a share may carry (a block hash of all zero bits but one).
MAX_DIFFICULTY = 2.0**224


class RecordError(ValueError):
    """A record (from the spool, or made by a bug) that must not reach the ledger; the
    message names the field."""


def checked_difficulty(value: Any, field: str) -> float:
    """A share's difficulty: a finite number above 0 and at most MAX_DIFFICULTY."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{field}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and 0 < number <= MAX_DIFFICULTY):
        raise RecordError(f"{field}: expected a finite number above 0, got {value!r}")
    return number


def _field(d: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in d:
        raise RecordError(f"{name}: missing")
    value = d[name]
    if isinstance(value, bool) and kind is not bool:
        raise RecordError(f"{name}: expected {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise RecordError(f"{name}: expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def checked_time(value: Any, field: str = "time") -> float:
    """Epoch seconds between 2009 and 2200."""
    number = checked_number(value, field)
    if not 1_230_000_000 <= number <= 7_258_118_400:
        raise RecordError(f"{field}: expected epoch seconds, got {value!r}")
    return number


def checked_number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{field}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise RecordError(f"{field}: expected a finite number, got {value!r}")
    return number


def checked_int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecordError(f"{field}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def checked_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise RecordError(f"{field}: expected a name of 1 to 128 characters, got {value!r:.80}")
    return value


@dataclass(slots=True)
class ShareRecord:
    """An accepted share (names, not ids: ids are the ledger writer's)."""

    hash: bytes
    tenant: str
    worker: str
    site: str
    job_id: str
    height: int
    difficulty: float  # credited: the session's, or the previous one in the grace window
    share_difficulty: float  # achieved by the hash
    is_block: bool
    time: float  # epoch seconds
    id: int = 0  # node_id << 48 | sequence, given by the ledger writer before any write
    bits: int = 0  # the job's network target (compact): its network difficulty; 0: not known

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "share",
            "hash": self.hash.hex(),
            "tenant": self.tenant,
            "worker": self.worker,
            "site": self.site,
            "job_id": self.job_id,
            "height": self.height,
            "difficulty": self.difficulty,
            "share_difficulty": self.share_difficulty,
            "is_block": self.is_block,
            "id": self.id,
            "time": self.time,
            "bits": self.bits,
        }

    def check(self) -> None:
        """RecordError if a field could not be stored as it is (NaN work, say)."""
        if type(self.hash) is not bytes or len(self.hash) != 32:
            raise RecordError("hash: expected 32 bytes")
        checked_name(self.tenant, "tenant")
        checked_name(self.worker, "worker")
        checked_name(self.site, "site")
        if not isinstance(self.job_id, str) or len(self.job_id) > 64:
            raise RecordError("job_id: expected text of at most 64 characters")
        checked_int(self.height, "height", 0, 2**31 - 1)
        checked_difficulty(self.difficulty, "difficulty")
        checked_difficulty(self.share_difficulty, "share_difficulty")
        checked_time(self.time)
        checked_int(self.id, "id", 0, 2**63 - 1)
        checked_int(self.bits, "bits", 0, 2**32 - 1)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShareRecord:
        """A spooled share, every field checked (RecordError names the first bad one)."""
        if not isinstance(d, dict):
            raise RecordError(f"expected an object, got {type(d).__name__}")
        hash_hex = _field(d, "hash", str)
        try:
            digest = bytes.fromhex(hash_hex)
        except ValueError:
            raise RecordError("hash: not hex") from None
        if len(digest) != 32 or len(hash_hex) != 64:
            raise RecordError("hash: expected 64 hex digits")
        record = cls(
            digest,
            _field(d, "tenant", str),
            _field(d, "worker", str),
            _field(d, "site", str),
            _field(d, "job_id", str),
            _field(d, "height", int),
            checked_difficulty(_field(d, "difficulty", (int, float)), "difficulty"),
            checked_difficulty(_field(d, "share_difficulty", (int, float)), "share_difficulty"),
            _field(d, "is_block", bool),
            checked_time(_field(d, "time", (int, float))),
            _field(d, "id", int),
            checked_int(d.get("bits") or 0, "bits", 0, 2**32 - 1),  # none in old spool lines
        )
        record.check()
        return record
