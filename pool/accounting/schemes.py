"""The reward schemes as pure arithmetic: who gets how many satoshis of a reward.

Where it sits: the block tracker (pool/accounting/tracker.py) reads the shares a block's split
needs from the ledger and hands them here as (tenant, work) units; PPS crediting
(pool/accounting/pps.py) hands the work of new shares with the network difficulty it was
mined at. Nothing here touches the database or the node, so every rule is unit-tested with
hand-computed numbers (tests/unit/test_schemes.py; the worked examples in docs/payouts.md).

Rules, in integers and exact fractions (never floats):
- Work is share difficulty x 2^16 (the ledger's integer work column).
- PPLNS: walking the shares newest first (the block's own share first), each share adds its
  score until the window is full; the share that crosses the boundary counts only for the
  part that fits (pro rata). A share's score is its difficulty over the network difficulty
  it was mined at (Rosenfeld's d / D), kept in work units of the found block's difficulty:
  work x D_block / D_share = work x target_share / target_block (exact), so the window is
  N x D_block x 2^16 of those units (N blocks' worth of expected work). Where the window
  reaches into compacted hours, a whole hour is one step, and the boundary hour's rows count
  pro rata. A window that cannot be filled is split over the shares there are.
- The gross reward is divided in proportion to each tenant's weight by the largest-remainder
  method: every tenant gets floor(reward x weight / total); the satoshis left over go one each
  to the largest remainders (ties: the lower tenant id). The parts add up to the reward.
- The pool fee comes out of each tenant's gross: net = floor(gross x (10^6 - fee_ppm) / 10^6),
  fee = gross - net. So credits + fees = reward, to the satoshi, for every block.
- PPS: a share of difficulty d mined at network difficulty D is worth d / D x subsidy
  (FPPS: x (subsidy + average block fees)); D = difficulty-1 target / target, exactly. A
  tenant's value over a crediting run is summed exactly, then floored once: the fraction of
  a satoshi below it stays with the pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

from pool.errors import OperationFailed
from pool.units import DIFF1_TARGET, MAX_MONEY_SAT, PPM, WORK_PER_DIFFICULTY, bits_to_target

K = TypeVar("K", int, str)


class SchemeError(ValueError, OperationFailed):
    """Inputs a scheme cannot split (no shares, a negative amount, an empty window)."""


def target_from_bits(bits: int) -> int:
    """The target a block header's compact `bits` encodes."""
    if bits & 0x00800000 or bits & 0x007FFFFF == 0:
        raise SchemeError(f"bits {bits:08x} do not encode a positive target")
    target = bits_to_target(bits)
    if target == 0:
        raise SchemeError(f"bits {bits:08x} encode a zero target")
    return target


def network_difficulty(bits: int) -> Fraction:
    """The network difficulty of `bits`, exactly."""
    return Fraction(DIFF1_TARGET, target_from_bits(bits))


def score_scale(share_bits: int, block_bits: int) -> Fraction | int:
    """What a work unit of a share mined at `share_bits` counts for in a PPLNS window of a
    block found at `block_bits`: D_block / D_share = target_share / target_block, exactly (1
    when the share's bits are not known, 0, or the block's own)."""
    if share_bits in (0, block_bits):
        return 1
    return Fraction(target_from_bits(share_bits), target_from_bits(block_bits))


def pplns_window_work(n: Fraction, bits: int) -> int:
    """The PPLNS window in work units: N x network difficulty x 2^16, rounded up, at least 1."""
    if n <= 0:
        raise SchemeError(f"the PPLNS N must be positive, got {n}")
    window = n * network_difficulty(bits) * WORK_PER_DIFFICULTY
    return max(1, -(-window.numerator // window.denominator))


@dataclass
class WindowWeights:
    """The (scored) work each tenant has in a PPLNS window, and whether it was filled."""

    weights: dict[int, Fraction]
    filled: Fraction
    window: int

    @property
    def full(self) -> bool:
        return self.filled >= self.window


def pplns_weights(steps: Iterable[list[tuple[int, int | Fraction]]], window: int) -> WindowWeights:
    """Walk `steps`, newest first, until `window` work units are taken.

    A step is a list of (tenant_id, work) rows taken together: one share (one row), or one
    compacted hour (its rows); work already scored (score_scale). A step that crosses the
    boundary counts pro rata: each of its rows for (room left / the step's work) of its work.
    """
    if window <= 0:
        raise SchemeError(f"the window must be positive, got {window}")
    weights: dict[int, Fraction] = {}
    filled = Fraction(0)
    for rows in steps:
        for tenant, work in rows:
            if work < 0:
                raise SchemeError(f"negative work {work} for tenant {tenant}")
        step = sum(work for _, work in rows)
        if step == 0:
            continue
        room = window - filled
        scale = Fraction(1) if step <= room else room / step
        for tenant, work in rows:
            if work:
                weights[tenant] = weights.get(tenant, Fraction(0)) + work * scale
        filled += step * scale
        if filled >= window:
            break
    return WindowWeights(weights, filled, window)


def allocate(amount: int, weights: Mapping[K, Fraction | int]) -> dict[K, int]:
    """Divide `amount` satoshis in proportion to `weights` (largest remainder; ties to the
    lower key). Keys of zero weight get nothing; the parts add up to `amount` exactly."""
    if amount < 0:
        raise SchemeError(f"cannot divide a negative amount ({amount})")
    positive = {k: Fraction(w) for k, w in weights.items() if w > 0}
    for k, w in weights.items():
        if w < 0:
            raise SchemeError(f"negative weight {w} for {k!r}")
    total = sum(positive.values(), Fraction(0))
    if total == 0:
        raise SchemeError("nothing to divide by: every weight is zero")
    shares: dict[K, int] = {}
    remainders: list[tuple[Fraction, K]] = []
    for k in sorted(positive):
        exact = amount * positive[k] / total
        whole = exact.numerator // exact.denominator
        shares[k] = whole
        remainders.append((exact - whole, k))
    left = amount - sum(shares.values())
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _, k in remainders[:left]:
        shares[k] += 1
    return shares


def take_fee(gross: int, fee_ppm: int) -> tuple[int, int]:
    """(net, fee) of a gross amount: the net is rounded down, the fee takes the rest."""
    if not 0 <= fee_ppm <= PPM:
        raise SchemeError(f"the fee must be 0 to {PPM} ppm, got {fee_ppm}")
    net = gross * (PPM - fee_ppm) // PPM
    return net, gross - net


@dataclass(frozen=True)
class Split:
    """One tenant's part of a reward: what it is credited, the fee, the work it paid for."""

    tenant_id: int
    amount_sat: int
    fee_sat: int
    work: Fraction


def split_reward(
    reward_sat: int, weights: Mapping[int, Fraction | int], fee_ppm: Mapping[int, int]
) -> list[Split]:
    """Split a block's reward by weight, then take each tenant's fee (fee_ppm[tenant]).
    Sum of amount + fee over the result is `reward_sat`."""
    gross = allocate(reward_sat, weights)
    out = []
    for tenant in sorted(gross):
        net, fee = take_fee(gross[tenant], fee_ppm[tenant])
        out.append(Split(tenant, net, fee, Fraction(weights[tenant])))
    return out


def solo_split(reward_sat: int, tenant_id: int, fee_ppm: int) -> list[Split]:
    """SOLO: the finder's tenant takes the reward, less its fee."""
    net, fee = take_fee(reward_sat, fee_ppm)
    return [Split(tenant_id, net, fee, Fraction(0))]


def share_value(work: int, bits: int, reward_sat: int) -> Fraction:
    """What `work` units of shares mined at `bits` are worth under PPS, for a block reward
    of `reward_sat` (the subsidy; FPPS adds the average fees): d / D x reward."""
    return Fraction(work * reward_sat, WORK_PER_DIFFICULTY) / network_difficulty(bits)


def pps_credits(
    values: Mapping[int, Fraction], fee_ppm: Mapping[int, int]
) -> dict[int, tuple[int, int]]:
    """Tenant -> (credit, fee) for exact PPS values: the gross is floored once per tenant,
    then the fee is taken from it."""
    out = {}
    for tenant in sorted(values):
        value = values[tenant]
        if value < 0:
            raise SchemeError(f"negative PPS value for tenant {tenant}")
        gross = value.numerator // value.denominator
        if gross > MAX_MONEY_SAT:
            raise SchemeError(
                f"tenant {tenant}'s shares are worth {gross} sat, more than all bitcoin: "
                "share difficulty far above the network's (regtest's is 4.7e-10)"
            )
        out[tenant] = take_fee(gross, fee_ppm[tenant])
    return out


def subsidy_sat(height: int, halving_interval: int = 210_000) -> int:
    """The block subsidy at `height` (regtest halves every 150 blocks)."""
    halvings = height // halving_interval
    return 0 if halvings >= 64 else (50 * 100_000_000) >> halvings
