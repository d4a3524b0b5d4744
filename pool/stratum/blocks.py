"""Block submission: a share that meets the network target becomes a block at the node.

Where it sits in the share path: after the judge's verdict "block". The block is assembled
from the one parsed `Submit` (the same fields the share was judged on), sent to the node's
submitblock, and the node's answer (or the failure to reach it) is recorded with the share:
the share first, then the block, so a block row in the ledger always has its share. The
miner's reply waits for all of it. A block is never thrown away: one the node did not take
is still recorded, with the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer

from pool.chain.rpc import SubmitResult
from pool.hashing import hash_to_hex
from pool.ledger.records import ShareRecord
from pool.stratum.jobs import JobEntry
from pool.stratum.judge import Submit

if TYPE_CHECKING:
    from pool.stratum.session import Session

log = logging.getLogger(__name__)


class BlockNode(Protocol):
    """What block submission needs of the node (pool.chain.rpc.AsyncNode)."""

    def submit_block(self, block_hex: str) -> defer.Deferred[SubmitResult]: ...


@dataclass(frozen=True)
class FoundBlock:
    """A block a miner found, with the node's answer (or why it never got one)."""

    share: ShareRecord
    hash: str
    reward_sat: int
    accepted: bool
    answer: str | None


#: Records a found block's share, then the block (StratumServer.record_found); the miner's
#: reply waits for the Deferred.
RecordFound = Callable[[FoundBlock], "defer.Deferred[Any] | None"]


class BlockSubmitter:
    """Assembles, submits and records the blocks miners find."""

    def __init__(
        self,
        node: BlockNode,
        record_found: RecordFound,
        stats: Counter[str],
        on_block: Callable[[], None] | None = None,
    ) -> None:
        self.node = node
        self.record_found = record_found
        self.stats = stats
        self.on_block = on_block

    def found(
        self,
        session: Session,
        entry: JobEntry,
        share: ShareRecord,
        submit: Submit,
        version: int,
    ) -> defer.Deferred[None]:
        """Assemble the block from the parsed submit, submit it, record the answer; the reply
        waits for all that."""
        job = entry.job
        work = job.work
        root = work.merkle_root(session.extranonce1, submit.extranonce2)
        header = work.header(root, submit.ntime, submit.nonce, version)
        block = job.block(session.extranonce1 + submit.extranonce2, header)
        block_hash = hash_to_hex(share.hash)
        reward_sat = job.template.coinbasevalue
        log.info(
            "block candidate %s at height %d from %s.%s",
            block_hash,
            job.height,
            share.tenant,
            share.worker,
        )
        self.stats["blocks_found"] += 1
        d = self.node.submit_block(block.hex())

        def answered(result: SubmitResult) -> defer.Deferred[Any] | None:
            if result.accepted:
                self.stats["blocks_accepted"] += 1
                log.info("block %s accepted by the node", block_hash)
            else:
                self.stats["blocks_rejected"] += 1
                log.error("block %s rejected by the node: %s", block_hash, result.reason)
            if self.on_block is not None:
                self.on_block()
            return self.record_found(
                FoundBlock(share, block_hash, reward_sat, result.accepted, result.reason)
            )

        def failed(failure: Any) -> defer.Deferred[Any] | None:
            self.stats["blocks_unsubmitted"] += 1
            why = failure.getErrorMessage()
            log.error("block %s could not be submitted: %s", block_hash, why)
            return self.record_found(
                FoundBlock(share, block_hash, reward_sat, False, f"submit failed: {why}")
            )

        recorded: defer.Deferred[Any] = d.addCallbacks(answered, failed)
        return recorded
