"""What became of a recorded payout transaction that the node refuses to take again.

Where it sits: payout recovery (pool/accounting/payout.py) asks `resolve` when the node
refuses a recorded transaction and holds no unspent output of it. Then another transaction
spends (some of) its inputs, and what it pays decides:

- it pays every output of the payout (the same script, the same amount): it **is** the payout
  -- a fee bump (Bitcoin Core's bumpfee, RBF), a malleated copy, a replacement the operator
  built -- and the payout follows it: `paid` (confirmed once it is in a block);
- it pays some of the payout's outputs but not all: nothing is decided, the run stops (an
  operator must look; docs/payouts.md says what not to do to a payout);
- it pays none of them: the payout can never confirm, but it is `void` (its tenants are owed
  again) only once that transaction has VOID_AFTER_CONFIRMATIONS confirmations; never while it
  is in the mempool, or so shallow that a reorg could bring the payout back.

The spenders come from the wallet (Bitcoin Core / SV `gettransaction`: `walletconflicts`,
`replaced_by_txid`) and from the chain: each input is looked up (`gettxout`: unspent, spent
in the mempool, or spent in a block), and the blocks from the tip down to two hours before
the payout was recorded are searched for a transaction spending a spent one. An input spent
in a block where no spender is found is never taken as a reason to void. Every answer from the
node is checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pool.accounting.chainview import ChainView
from pool.accounting.wallet import Wallet, is_txid
from pool.chain.rpc import BadNodeAnswer, NodeRPCError, to_satoshis

#: Confirmations of a conflicting transaction (one that pays none of the payout's outputs)
#: after which the payout is void.
VOID_AFTER_CONFIRMATIONS = 6
#: Blocks are searched back to this long before the payout was recorded (block times may
#: lag the clock).
SCAN_SLACK = timedelta(hours=2)
#: Blocks searched at most.
MAX_SCAN_BLOCKS = 2016

Outpoint = tuple[str, int]
Outputs = Counter[tuple[bytes, int]]


@dataclass(frozen=True)
class Spender:
    """A transaction that spends an input of the payout, or (`via`) one in the way of the
    unconfirmed transaction an input comes from, which can then never confirm."""

    txid: str
    confirmations: int  # 0: in the mempool
    pays: str  # "all", "some" or "none" of the payout's outputs
    via: str | None = None  # the dead parent, for a spender in its way


#: What is in the way of a transaction (by txid) that is neither in the chain nor in the
#: mempool: (that transaction, its confirmations), or None if not known. The caller knows its
#: own recorded payouts (one replaced or void is dead for its descendants).
Blocker = Callable[[str], tuple[str, int] | None]


@dataclass(frozen=True)
class Verdict:
    """paid (by `txid`, with `confirmations`), wait (leave the payout as it is), void, or
    stop (the run must not go on); `reason` says why, for the operator."""

    action: str
    reason: str
    txid: str | None = None
    confirmations: int = 0


def decode(node: Any, raw_hex: str, where: str) -> tuple[str, list[Outpoint], Outputs]:
    """(txid, inputs, outputs as (script, satoshis)) of a raw transaction, via the node."""
    return parse_tx(node.call("decoderawtransaction", raw_hex), where)


def parse_tx(tx: Any, where: str) -> tuple[str, list[Outpoint], Outputs]:
    """(txid, inputs, outputs) of a decoded transaction (decoderawtransaction, getblock);
    a coinbase has no inputs."""
    if not isinstance(tx, dict) or not is_txid(tx.get("txid")):
        raise BadNodeAnswer(f"{where}: not a decoded transaction: {str(tx)[:200]}")
    inputs: list[Outpoint] = []
    for vin in tx.get("vin") or []:
        if not isinstance(vin, dict) or "coinbase" in vin:
            continue
        txid, n = vin.get("txid"), vin.get("vout")
        if not is_txid(txid) or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise BadNodeAnswer(f"{where}: an input of {tx['txid']} is {str(vin)[:200]}")
        inputs.append((str(txid), n))
    outputs: Outputs = Counter()
    for vout in tx.get("vout") or []:
        try:
            script = bytes.fromhex(vout["scriptPubKey"]["hex"])
            outputs[(script, to_satoshis(vout["value"]))] += 1
        except (TypeError, ValueError, KeyError, BadNodeAnswer) as exc:
            raise BadNodeAnswer(
                f"{where}: an output of {tx['txid']} is {str(vout)[:200]} ({exc})"
            ) from None
    return str(tx["txid"]), inputs, outputs


def pays(outputs: Outputs, wanted: Outputs) -> str:
    """Whether a transaction's outputs hold "all" of the payout's (each as many times), "none"
    (no output to any of its scripts, whatever the amount), or only "some"."""
    if all(outputs[key] >= n for key, n in wanted.items()):
        return "all"
    scripts = {script for script, _ in wanted}
    if any(script in scripts for script, _ in outputs):
        return "some"
    return "none"


def _input_states(
    wallet: Wallet, inputs: list[Outpoint], blocked: Blocker
) -> tuple[dict[Outpoint, str], dict[Outpoint, Spender]]:
    """Each input: "unspent", "mempool" (spent by a transaction there), "parent" (it comes
    from an unconfirmed transaction that can never confirm: the second dict says what is in
    that one's way) or "chain" (spent in a block, or gone with one)."""
    node = wallet.node
    states: dict[Outpoint, str] = {}
    dead: dict[Outpoint, Spender] = {}
    for txid, n in inputs:
        if node.call("gettxout", txid, n, True) is not None:
            states[(txid, n)] = "unspent"
        elif node.call("gettxout", txid, n, False) is not None:
            states[(txid, n)] = "mempool"
        else:
            try:
                node.call("getmempoolentry", txid)  # its parent is unconfirmed: spent there
                states[(txid, n)] = "mempool"
                continue
            except NodeRPCError:
                pass
            parent = wallet.confirmations(txid)
            blocker = None if parent is not None and parent > 0 else blocked(txid)
            if blocker is None and parent is not None and parent < 0:
                # Bitcoin Core / SV: conflicted with a transaction -N blocks deep.
                blocker = (f"a conflicting transaction of {txid}", -parent)
            if blocker is None:
                states[(txid, n)] = "chain"
            else:
                states[(txid, n)] = "parent"
                dead[(txid, n)] = Spender(blocker[0], blocker[1], "none", via=txid)
    return states, dead


def _wallet_spenders(
    wallet: Wallet, txid: str, inputs: set[Outpoint], wanted: Outputs
) -> dict[str, Spender]:
    found = {}
    for other in wallet.conflicts(txid):
        known = wallet.transaction(other)
        if known is None:
            continue
        raw, confirmations = known
        if confirmations < 0:
            continue  # itself conflicted: it will not confirm either
        other_id, spent, outputs = decode(wallet.node, raw, f"wallet transaction {other}")
        if inputs & set(spent):
            found[other_id] = Spender(other_id, confirmations, pays(outputs, wanted))
    return found


def _chain_spenders(
    chain: ChainView, inputs: set[Outpoint], wanted: Outputs, since: datetime
) -> tuple[dict[str, Spender], set[Outpoint]]:
    """The block transactions that spend `inputs`, searching from the tip down to blocks
    older than `since`; and the inputs found spent."""
    found: dict[str, Spender] = {}
    seen: set[Outpoint] = set()
    tip = chain.tip()
    oldest = since.timestamp()
    for height in range(tip, max(-1, tip - MAX_SCAN_BLOCKS), -1):
        block_hash = chain.hash_at(height)
        if block_hash is None:
            break
        block = chain.block(block_hash)
        for tx in block["tx"][1:]:
            txid, spent, outputs = parse_tx(tx, f"block {block_hash}")
            hit = inputs & set(spent)
            if hit:
                seen |= hit
                found[txid] = Spender(txid, tip - height + 1, pays(outputs, wanted))
        if seen >= inputs or block["time"] < oldest:
            break
    return found, seen


def resolve(
    wallet: Wallet,
    chain: ChainView,
    raw_hex: str,
    wanted: Outputs,
    recorded_at: datetime,
    blocked: Blocker = lambda _: None,
) -> Verdict:
    """What to do with a recorded payout the node refuses and does not hold: see the module
    docstring. `wanted`: the payout's outputs to tenants, (script, satoshis); `blocked`: what
    is in the way of the caller's own unconfirmed transactions that an input may come from."""
    txid, inputs, _ = decode(wallet.node, raw_hex, "the recorded payout transaction")
    states, dead_parents = _input_states(wallet, inputs, blocked)
    spent = {o for o, state in states.items() if state != "unspent"}
    if not spent:
        return Verdict("stop", "none of its inputs is spent, so it is refused for another reason")
    spenders = _wallet_spenders(wallet, txid, spent, wanted)
    in_chain = {o for o in spent if states[o] == "chain"}
    unexplained = in_chain
    if in_chain:
        from_chain, seen = _chain_spenders(chain, in_chain, wanted, recorded_at - SCAN_SLACK)
        spenders = {**from_chain, **spenders}
        unexplained = in_chain - seen
    replacement = max(
        (s for s in spenders.values() if s.pays == "all"),
        key=lambda s: s.confirmations,
        default=None,
    )
    if replacement is not None:
        how = "in a block" if replacement.confirmations else "in the mempool"
        return Verdict(
            "paid",
            f"{replacement.txid} ({how}) spends its inputs and pays every one of its outputs: "
            "a fee bump or a malleated copy of it",
            replacement.txid,
            replacement.confirmations,
        )
    partial = [s.txid for s in spenders.values() if s.pays == "some"]
    if partial:
        return Verdict(
            "stop",
            f"{', '.join(partial)} spends its inputs and pays some of its outputs but not all: "
            "it is neither the payout nor unrelated, so nothing is decided (docs/payouts.md)",
        )
    if any(state == "mempool" for state in states.values()):
        return Verdict(
            "wait",
            "an input of it is spent by a transaction in the mempool, which may still confirm or "
            "be replaced: not void while it is there",
        )
    if unexplained:
        shown = ", ".join(f"{t}:{n}" for t, n in sorted(unexplained))
        return Verdict(
            "stop",
            f"its input {shown} is spent in the chain, but no transaction spending it was found "
            f"in the blocks since the payout was recorded: not voided",
        )
    blockers = [*spenders.values(), *dead_parents.values()]
    shallowest = min(blockers, key=lambda s: s.confirmations)
    what = ", ".join(sorted({_blocking(s) for s in blockers}))
    if shallowest.confirmations < VOID_AFTER_CONFIRMATIONS:
        return Verdict(
            "wait",
            f"{what}; void once that has {VOID_AFTER_CONFIRMATIONS} confirmations (it has "
            f"{shallowest.confirmations})",
        )
    return Verdict(
        "void",
        f"{what} ({shallowest.confirmations}+ confirmations)",
        shallowest.txid,
        shallowest.confirmations,
    )


def _blocking(spender: Spender) -> str:
    if spender.via is not None:
        return (
            f"an input comes from {spender.via}, which can never confirm ({spender.txid} is in "
            "its way)"
        )
    return f"its inputs are spent by {spender.txid}, which pays none of its outputs"
