"""Accepted shares, blocks and reject counts from the stratum layer into the share ledger.

The adapter between the session's records and the ledger writer's: the miner's `true` waits
for the Deferred the writer returns, which fires once the share is committed or spooled.
"""

from __future__ import annotations

from twisted.internet import defer

from pool.hashing import hash_to_hex
from pool.ledger.records import ShareRecord
from pool.ledger.writer import BlockRecord, LedgerWriter
from pool.stratum.session import Session


class LedgerSink:
    """A ShareSink that writes through a LedgerWriter."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    def record(self, share: ShareRecord) -> defer.Deferred[None]:
        return self.writer.record(share)

    def record_block(
        self,
        share: ShareRecord,
        block_hash: str,
        reward_sat: int,
        accepted: bool,
        answer: str | None,
    ) -> defer.Deferred[None]:
        return self.writer.record(
            BlockRecord(
                hash=block_hash or hash_to_hex(share.hash),
                height=share.height,
                reward_sat=reward_sat,
                tenant=share.tenant,
                worker=share.worker,
                site=share.site,
                accepted=accepted,
                node_answer=answer,
                time=share.time,
                share=share,
            )
        )

    def count_reject(self, session: Session, reason: str, when: float) -> None:
        worker = session.submit_worker
        if worker is not None:
            self.writer.count_reject(
                worker.tenant, worker.worker, session.listener.site, reason, when
            )
