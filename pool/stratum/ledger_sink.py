"""Accepted shares, blocks and reject counts from the stratum layer into the share ledger.

The adapter between the session's records and the ledger writer's: the miner's `true` waits
for the Deferred the writer returns, which fires once the share is committed or spooled.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from pool.hashing import hash_to_hex
from pool.ledger.records import ShareRecord
from pool.ledger.writer import BlockRecord, LedgerWriter, NotRecorded
from pool.stratum import errors as E
from pool.stratum.blocks import FoundBlock
from pool.stratum.errors import StratumError
from pool.stratum.session import Session


def _not_recorded(failure: Failure) -> Any:
    """The ledger could not keep the share: the miner gets error 20 (the writer has logged
    why, once), not a traceback per share."""
    if not isinstance(failure.value, NotRecorded):
        return failure
    raise StratumError(E.OTHER, f"Share not recorded: {failure.getErrorMessage()[:200]}")


class LedgerSink:
    """A ShareSink that writes through a LedgerWriter."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    def record(self, share: ShareRecord) -> defer.Deferred[None]:
        return self.writer.record(share).addErrback(_not_recorded)

    def record_block(self, block: FoundBlock) -> defer.Deferred[None]:
        share = block.share
        return self.writer.record(
            BlockRecord(
                hash=block.hash or hash_to_hex(share.hash),
                height=share.height,
                reward_sat=block.reward_sat,
                tenant=share.tenant,
                worker=share.worker,
                site=share.site,
                accepted=block.accepted,
                node_answer=block.answer,
                time=share.time,
                share=share,
            )
        ).addErrback(_not_recorded)

    def count_reject(self, session: Session, reason: str, when: float) -> None:
        worker = session.submit_worker
        if worker is not None:
            self.writer.count_reject(
                worker.tenant, worker.worker, session.listener.site, reason, when
            )
