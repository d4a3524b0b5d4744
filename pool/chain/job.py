"""Jobs: a template made into work a miner can hash, and a found share made into a block.

A `Job` carries everything the share path needs from one template: the `HeaderWork` the
hashing core validates against, the `mining.notify` parameters (encoded by the stratum layer
once per job), the network target, and what block assembly needs (the template's
transactions, whether the block is segwit).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from pool.chain.coinbase import CoinbaseParts, build_coinbase
from pool.chain.serialize import varint
from pool.chain.template import BlockTemplate
from pool.config import CoinbaseSettings
from pool.hashing import (
    HeaderWork,
    coinbase_merkle_branch,
    hash_to_hex,
    header_prevhash_to_stratum,
    u32_to_hex,
)


@dataclass(eq=False)
class Job:
    """One unit of work, shared by every session."""

    job_id: str
    template: BlockTemplate
    coinbase: CoinbaseParts
    work: HeaderWork
    clean: bool
    created_at: float = field(default_factory=time.time)
    #: For a clean job: when the new tip was first noticed (wall clock).
    tip_detected_at: float | None = None

    @property
    def height(self) -> int:
        """The height of the block this job mines (the template's; in `job` events)."""
        return self.template.height

    @property
    def tip_height(self) -> int:
        """The height of the chain tip this job builds on: the node's `getblockcount` when
        the template was made, one below `height`. What /api/pool and /metrics report."""
        return self.template.height - 1

    @property
    def prevhash_hex(self) -> str:
        return self.template.prevhash_hex

    @property
    def network_target(self) -> int:
        return self.work.network_target

    @property
    def segwit(self) -> bool:
        """The block carries witness data: the coinbase gets its witness reserved value."""
        return self.template.witness_commitment is not None and self.template.segwit_active

    @property
    def ntime(self) -> int:
        return self.template.curtime

    def notify_params(self, clean: bool | None = None) -> list[Any]:
        """`mining.notify` params, as miners expect them."""
        return [
            self.job_id,
            header_prevhash_to_stratum(self.template.prevhash),
            self.coinbase.coinb1.hex(),
            self.coinbase.coinb2.hex(),
            [h.hex() for h in self.work.branch],
            u32_to_hex(self.work.version),
            u32_to_hex(self.template.bits),
            u32_to_hex(self.template.curtime),
            self.clean if clean is None else clean,
        ]

    def block(self, extranonce: bytes, header: bytes) -> bytes:
        """The whole block for a header found on this job (ready for submitblock)."""
        if self.segwit:
            coinbase = self.coinbase.with_witness(extranonce)
        else:
            coinbase = self.coinbase.stripped(extranonce)
        txs = self.template.transactions
        return header + varint(len(txs) + 1) + coinbase + b"".join(tx.data for tx in txs)

    def describe(self) -> str:
        return (
            f"job {self.job_id} height {self.height} on {hash_to_hex(self.template.prevhash)[:16]}"
            f" txs {len(self.template.transactions)} clean={self.clean}"
        )


class JobFactory:
    """Builds jobs from templates with the pool's coinbase settings; short, unique job ids."""

    def __init__(self, settings: CoinbaseSettings) -> None:
        self.settings = settings
        self.extranonce_size = settings.extranonce1_size + settings.extranonce2_size
        # Start ids at a random point so that ids from before a restart are not reused soon.
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "big") << 8)

    def next_id(self) -> str:
        return f"{next(self._ids) & 0xFFFFFFFF:x}"

    def build(self, template: BlockTemplate, clean: bool) -> Job:
        parts = build_coinbase(
            height=template.height,
            coinbasevalue=template.coinbasevalue,
            outputs=[(o.script, o.percent) for o in self.settings.outputs],
            witness_commitment=template.witness_commitment,
            tag=self.settings.tag,
            extranonce_size=self.extranonce_size,
            tx_version=self.settings.tx_version,
        )
        branch = coinbase_merkle_branch([tx.txid for tx in template.transactions])
        work = HeaderWork(
            parts.coinb1, parts.coinb2, branch, template.version, template.prevhash, template.bits
        )
        return Job(self.next_id(), template, parts, work, clean)
