"""A CPU loop that mines a job: for regtest demos and tests, never for real difficulty.

It plays the miner's side of the share path (pick extranonce2, roll nonces, hash the header)
with the same hashing core the pool validates with, so a block it finds has gone through
exactly the code a share from an ASIC goes through.
"""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.job import Job


@dataclass(frozen=True)
class Solution:
    extranonce1: bytes
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int
    header: bytes
    hash: bytes

    def block(self, job: Job) -> bytes:
        return job.block(self.extranonce1 + self.extranonce2, self.header)


def mine(
    job: Job,
    extranonce1: bytes,
    extranonce2: bytes,
    target: int | None = None,
    max_nonces: int = 1 << 22,
) -> Solution | None:
    """Roll the nonce until the header hash meets `target` (default: the network target)."""
    goal = job.network_target if target is None else target
    work = job.work
    ntime = job.ntime
    for nonce in range(max_nonces):
        digest, value = work.hash_share(extranonce1, extranonce2, ntime, nonce, work.version)
        if value <= goal:
            root = work.merkle_root(extranonce1, extranonce2)
            header = work.header(root, ntime, nonce, work.version)
            return Solution(extranonce1, extranonce2, ntime, nonce, work.version, header, digest)
    return None
