"""Mining blocks through the pool's own job and block assembly (regtest demos and tests).

Where it sits: `farmpool work --mine N` runs it over a running `WorkSource`. Each round takes
the current job, rolls nonces with the CPU loop (pool/chain/cpuminer.py, in a thread) for a
fresh extranonce2, submits a solution found on a job that is still current, and waits for the
work source to see the block as its new tip. A block the node refuses stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task, threads

from pool.chain.cpuminer import mine
from pool.chain.rpc import AsyncNode
from pool.chain.worksource import WorkSource
from pool.errors import OperationFailed


class BlockRejected(RuntimeError, OperationFailed):
    """The node refused a block the pool assembled."""


@dataclass(frozen=True)
class MinedBlock:
    """A block submitted to the node, with its answer."""

    height: int
    hash: str
    accepted: bool
    reason: str | None


def sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    """A Deferred that fires after `seconds` on the reactor."""
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def mine_blocks(
    source: WorkSource,
    node: AsyncNode,
    count: int,
    extranonce1: bytes,
    extranonce2_size: int,
    reactor: Any,
    on_block: Callable[[MinedBlock], None],
) -> Any:
    """Find and submit `count` blocks on the source's jobs; `on_block` is told of each as the
    node answers it. Fires with their hashes; fails with BlockRejected."""
    found: list[str] = []
    counter = 0
    while len(found) < count:
        job = source.current
        assert job is not None
        counter += 1
        extranonce2 = counter.to_bytes(extranonce2_size, "big")
        solution = yield threads.deferToThread(mine, job, extranonce1, extranonce2)
        if solution is None or source.current is not job:
            continue
        result = yield node.submit_block(solution.block(job).hex())
        block_hash = solution.hash[::-1].hex()
        on_block(MinedBlock(job.height, block_hash, result.accepted, result.reason))
        if not result.accepted:
            raise BlockRejected(f"node rejected block {block_hash}: {result.reason}")
        found.append(block_hash)
        # Wait for the work source to see its own block as the new tip.
        while source.current is job:
            yield sleep(reactor, 0.05)
    return found
