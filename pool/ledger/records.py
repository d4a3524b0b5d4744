"""The record of one accepted share, as the session makes it and the ledger stores it.

Made once per accepted share on the share path, so it is a plain slots class; names (tenant,
worker, site), not database ids, so that a share can be spooled and loaded later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShareRecord:
        return cls(
            bytes.fromhex(d["hash"]),
            d["tenant"],
            d["worker"],
            d["site"],
            d["job_id"],
            int(d["height"]),
            float(d["difficulty"]),
            float(d["share_difficulty"]),
            bool(d["is_block"]),
            float(d["time"]),
            int(d["id"]),
            int(d.get("bits") or 0),  # spool lines written before it was kept have none
        )
