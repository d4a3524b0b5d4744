"""What accounting asks the node about the chain: the tip, which block holds a height, the
bits of a block, a block's transaction fees. Answers are checked (a node that answers
nonsense raises BadNodeAnswer naming the call) and cached where they cannot change.

Where it sits: the block tracker decides with it whether a found block is in the main chain
and how deep; PPS crediting reads the network difficulty each share was mined at; FPPS the
average fees of recent blocks; payout recovery looks in recent blocks for what spent a
payout's inputs. bcoin and Bitcoin Core / SV differ in small ways (bits as a
number or as hex text, getblock's verbosity argument); they are smoothed over here only.
"""

from __future__ import annotations

from typing import Any

from pool.accounting.schemes import subsidy_sat
from pool.chain.rpc import BadNodeAnswer, NodeRPC, NodeRPCError, to_satoshis

#: Blocks between halvings, per network (regtest halves every 150).
HALVING_INTERVAL = {"main": 210_000, "test": 210_000, "regtest": 150}


def _bits(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise BadNodeAnswer(f"{where}: bits {value!r} are neither a number nor hex")


def _hash(value: Any, where: str) -> str:
    if isinstance(value, str) and len(value) == 64:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    raise BadNodeAnswer(f"{where}: {value!r} is not a block hash")


class ChainView:
    """The node's chain, as accounting needs it (blocking; call off the reactor)."""

    def __init__(self, rpc: NodeRPC, network: str) -> None:
        self.rpc = rpc
        self.halving_interval = HALVING_INTERVAL[network]
        self._bits: dict[str, int] = {}
        self._fees: dict[str, int] = {}

    def tip(self) -> int:
        height = self.rpc.call("getblockcount")
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise BadNodeAnswer(f"getblockcount answered {height!r}")
        return height

    def hash_at(self, height: int) -> str | None:
        """The main chain's block at `height`, or None above the tip."""
        try:
            answer = self.rpc.call("getblockhash", height)
        except NodeRPCError as exc:
            if exc.code == -8 or "out of range" in exc.message.lower():
                return None
            raise
        if answer is None:  # bcoin answers null above its tip
            return None
        return _hash(answer, f"getblockhash {height}")

    def bits_of(self, block_hash: str) -> int:
        """The compact target of a block (a block's header never changes: cached)."""
        bits = self._bits.get(block_hash)
        if bits is None:
            header = self.rpc.call("getblockheader", block_hash, True)
            if not isinstance(header, dict):
                raise BadNodeAnswer(f"getblockheader {block_hash} answered {header!r}")
            bits = self._bits[block_hash] = _bits(header.get("bits"), f"header {block_hash}")
        return bits

    def bits_at(self, height: int) -> int:
        found = self.hash_at(height)
        if found is None:
            raise BadNodeAnswer(f"the node has no block at height {height}")
        return self.bits_of(found)

    def subsidy(self, height: int) -> int:
        return subsidy_sat(height, self.halving_interval)

    def fees_of(self, block_hash: str, height: int) -> int:
        """A block's transaction fees: its coinbase's outputs less the subsidy."""
        fees = self._fees.get(block_hash)
        if fees is None:
            block = self._verbose_block(block_hash)
            txs = block.get("tx")
            if not isinstance(txs, list) or not txs or not isinstance(txs[0], dict):
                raise BadNodeAnswer(f"getblock {block_hash} has no decoded coinbase")
            outputs = txs[0].get("vout")
            if not isinstance(outputs, list):
                raise BadNodeAnswer(f"getblock {block_hash}: coinbase without outputs")
            paid = sum(to_satoshis(o["value"]) for o in outputs)
            fees = self._fees[block_hash] = max(0, paid - self.subsidy(height))
        return fees

    def block(self, block_hash: str) -> dict[str, Any]:
        """A block with its transactions decoded (`tx`: a list of objects with `txid`, `vin`,
        `vout`) and its `time` (checked here; the fields inside each transaction are checked
        by whoever reads them)."""
        block = self._verbose_block(block_hash)
        time = block.get("time")
        if (
            not isinstance(block.get("tx"), list)
            or not isinstance(time, int)
            or isinstance(time, bool)
        ):
            raise BadNodeAnswer(f"getblock {block_hash}: no decoded transactions or time")
        return block

    def _verbose_block(self, block_hash: str) -> dict[str, Any]:
        try:
            block = self.rpc.call("getblock", block_hash, 2)  # Bitcoin Core / SV
        except NodeRPCError as exc:
            if exc.code not in (-3, -1, -8):
                raise
            block = self.rpc.call("getblock", block_hash, True, True)  # bcoin
        if not isinstance(block, dict):
            raise BadNodeAnswer(f"getblock {block_hash} answered {block!r}")
        return block

    def average_fees(self, height: int, window: int) -> tuple[int, int]:
        """(total fees, blocks) of the up to `window` main-chain blocks below `height`."""
        total = count = 0
        for h in range(max(1, height - window), height):
            found = self.hash_at(h)
            if found is None:
                break
            total += self.fees_of(found, h)
            count += 1
        return total, count
