"""pool.accounting.schemes: compact bits and network difficulty, the PPLNS window and weights,
largest-remainder allocation, pool fees, reward splits, PPS values and the block subsidy.

Every expected number is a hand-computed literal; the comment beside it shows the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import pytest

from pool.accounting.schemes import (
    DIFF1_TARGET,
    SchemeError,
    Split,
    WindowWeights,
    allocate,
    network_difficulty,
    pplns_weights,
    pplns_window_work,
    pps_credits,
    score_scale,
    share_value,
    solo_split,
    split_reward,
    subsidy_sat,
    take_fee,
    target_from_bits,
)

# Tenant ids used in the PPLNS examples.
A, B, C = 1, 2, 3

MAINNET_DIFF1_BITS = 0x1D00FFFF
DIFF256_BITS = 0x1C00FFFF
REGTEST_BITS = 0x207FFFFF


# --- target_from_bits / network_difficulty ---------------------------------------------------


def test_diff1_bits_expand_to_the_diff1_target() -> None:
    # exponent 0x1d = 29, mantissa 0xffff: 0xffff << 8 * (29 - 3) = 0xffff << 208
    assert target_from_bits(MAINNET_DIFF1_BITS) == 0xFFFF << 208
    assert DIFF1_TARGET == 0xFFFF << 208


def test_diff1_bits_are_difficulty_exactly_one() -> None:
    difficulty = network_difficulty(MAINNET_DIFF1_BITS)
    assert isinstance(difficulty, Fraction)
    assert difficulty == 1


def test_one_byte_smaller_exponent_is_difficulty_256() -> None:
    # 0x1c00ffff: 0xffff << 200, so the diff-1 target (0xffff << 208) over it is 2^8 = 256
    assert target_from_bits(DIFF256_BITS) == 0xFFFF << 200
    assert network_difficulty(DIFF256_BITS) == 256


def test_regtest_bits() -> None:
    # exponent 0x20 = 32, mantissa 0x7fffff: 0x7fffff << 8 * 29 = 0x7fffff << 232
    assert target_from_bits(REGTEST_BITS) == 0x7FFFFF << 232
    difficulty = network_difficulty(REGTEST_BITS)
    assert difficulty == Fraction(0xFFFF << 208, 0x7FFFFF << (8 * 29))
    # 0xffff / (0x7fffff * 2^24) = 65535 / ((2^23 - 1) * 2^24) = 65535 / (2^47 - 2^24)
    #   = 65535 / 140_737_471_578_112 (65535 = 3*5*17*257 and 2^23 - 1 = 47*178481: coprime)
    assert difficulty == Fraction(65_535, 140_737_471_578_112)
    assert math.isclose(float(difficulty), 4.6565423739e-10, rel_tol=1e-10)


def test_mainnet_block_702861_difficulty() -> None:
    # Block 702861's header bits (../shared/vectors/blocks.json) are 0x170ed0eb:
    # target = 0x0ed0eb << 8 * (23 - 3) = 970_987 << 160, so
    # difficulty = 0xffff << 208 / (970_987 << 160) = 65535 * 2^48 / 970_987
    #   = (2^64 - 2^48) / 970_987 = 18_446_462_598_732_840_960 / 970_987 (already in lowest terms)
    #   ~ 18_997_641_161_758.95
    difficulty = network_difficulty(0x170ED0EB)
    assert difficulty == Fraction(18_446_462_598_732_840_960, 970_987)
    assert math.isclose(float(difficulty), 18_997_641_161_758.953, rel_tol=1e-12)


def test_bits_0x170e2632_difficulty() -> None:
    # target = 0x0e2632 << 160 = 927_282 << 160
    # difficulty = 18_446_462_598_732_840_960 / 927_282; gcd = 102 (927_282 = 102 * 9_091)
    #   = 180_847_672_536_596_480 / 9_091 ~ 19_893_045_048_575.13
    difficulty = network_difficulty(0x170E2632)
    assert difficulty == Fraction(180_847_672_536_596_480, 9_091)
    assert math.isclose(float(difficulty), 19_893_045_048_575.13, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("bits", "target"),
    [
        (0x03123456, 0x123456),  # exponent 3: the mantissa as is
        (0x02123456, 0x1234),  # exponent 2: 0x123456 >> 8
        (0x01123456, 0x12),  # exponent 1: 0x123456 >> 16
        (0x04123456, 0x12345600),  # exponent 4: 0x123456 << 8
    ],
)
def test_small_exponents(bits: int, target: int) -> None:
    assert target_from_bits(bits) == target


@pytest.mark.parametrize(
    "bits",
    [
        0x1D80FFFF,  # the sign flag 0x00800000 set
        0x1D800000,  # sign flag and zero mantissa
        0x1D000000,  # zero mantissa
        0x04000000,  # zero mantissa, small exponent
        0x00000000,
    ],
)
def test_bad_bits_raise(bits: int) -> None:
    with pytest.raises(SchemeError):
        target_from_bits(bits)
    with pytest.raises(SchemeError):
        network_difficulty(bits)


def test_bits_whose_mantissa_shifts_to_zero_raise_scheme_error() -> None:
    # 0x01003456: exponent 1, mantissa 0x003456 >> 16 = 0, a zero target; it encodes no
    # positive target, so it should be refused like a zero mantissa is.
    with pytest.raises(SchemeError):
        network_difficulty(0x01003456)


# --- pplns_window_work -----------------------------------------------------------------------


def test_window_n2_at_difficulty_1() -> None:
    # 2 x 1 x 65536 = 131_072
    assert pplns_window_work(Fraction(2), MAINNET_DIFF1_BITS) == 131_072


def test_window_accepts_int_n() -> None:
    assert pplns_window_work(2, MAINNET_DIFF1_BITS) == 131_072  # type: ignore[arg-type]


def test_window_at_difficulty_256() -> None:
    # 3/2 x 256 x 65536 = 384 x 65536 = 25_165_824
    assert pplns_window_work(Fraction(3, 2), DIFF256_BITS) == 25_165_824


def test_window_fraction_rounds_up() -> None:
    # 1/3 x 65536 = 21_845.33.. -> 21_846
    assert pplns_window_work(Fraction(1, 3), MAINNET_DIFF1_BITS) == 21_846
    # 10/65536 x 65536 = 10 exactly: no rounding
    assert pplns_window_work(Fraction(10, 65_536), MAINNET_DIFF1_BITS) == 10


def test_window_on_regtest_is_at_least_one() -> None:
    # 1 x 65535 / 140_737_471_578_112 x 65536 = 65535 / 2_147_483_392 ~ 3.05e-5 -> ceil 1
    assert pplns_window_work(Fraction(1), REGTEST_BITS) == 1
    # 1/1000 of that is still 1
    assert pplns_window_work(Fraction(1, 1000), REGTEST_BITS) == 1


def test_window_on_regtest_large_n() -> None:
    # 2^40 x 65535 / ((2^23 - 1) x 2^24) x 2^16 = 65535 x 2^32 / (2^23 - 1)
    #   = 33_553_920 x 2^23 / (2^23 - 1)                     (65535 x 2^9 = 33_553_920)
    #   = 33_553_920 + 33_553_920 / 8_388_607 = 33_553_920 + 3 + 8_388_099 / 8_388_607
    #   -> ceil 33_553_924
    assert pplns_window_work(Fraction(2**40), REGTEST_BITS) == 33_553_924


@pytest.mark.parametrize("n", [Fraction(0), Fraction(-1), Fraction(-1, 2)])
def test_window_nonpositive_n_raises(n: Fraction) -> None:
    with pytest.raises(SchemeError):
        pplns_window_work(n, MAINNET_DIFF1_BITS)


# --- pplns_weights ---------------------------------------------------------------------------

# Shares newest first, one share per step.
SHARES = [[(A, 4)], [(B, 3)], [(A, 5)], [(C, 7)]]


def test_weights_boundary_share_counts_pro_rata() -> None:
    # window 10: A 4 (filled 4), B 3 (filled 7), then A's 5 with 3 units of room: 5 x 3/5 = 3
    # -> A = 4 + 3 = 7, B = 3; full; C's share is never reached.
    result = pplns_weights(SHARES, 10)
    assert result.weights == {A: 7, B: 3}
    assert C not in result.weights
    assert result.filled == 10
    assert result.window == 10
    assert result.full is True


def test_weights_boundary_at_a_share_edge() -> None:
    # window 7: A 4 + B 3 = 7 fills it exactly; the third share (A, 5) adds nothing.
    result = pplns_weights(SHARES, 7)
    assert result.weights == {A: 4, B: 3}
    assert result.filled == 7
    assert result.full is True


def test_weights_window_larger_than_all_shares() -> None:
    # all shares: A = 4 + 5 = 9, B = 3, C = 7; total 19 < 100
    result = pplns_weights(SHARES, 100)
    assert result.weights == {A: 9, B: 3, C: 7}
    assert result.filled == 19
    assert result.window == 100
    assert result.full is False


def test_weights_no_shares() -> None:
    result = pplns_weights([], 10)
    assert result == WindowWeights({}, Fraction(0), 10)
    assert result.full is False


def test_weights_compacted_hour_crossing_the_boundary() -> None:
    # window 10: A 6 (room 4 left), then an hour of 4 + 12 = 16 units: scale 4/16
    # -> B = 4 x 4/16 = 1, C = 12 x 4/16 = 3
    result = pplns_weights([[(A, 6)], [(B, 4), (C, 12)]], 10)
    assert result.weights == {A: 6, B: 1, C: 3}
    assert result.filled == 10
    assert result.full is True


def test_weights_compacted_hour_with_fractional_parts() -> None:
    # window 10: A 3 (room 7), then an hour of 4 + 5 = 9: scale 7/9
    # -> B = 4 x 7/9 = 28/9, C = 5 x 7/9 = 35/9; 28/9 + 35/9 = 63/9 = 7
    result = pplns_weights([[(A, 3)], [(B, 4), (C, 5)]], 10)
    assert result.weights == {A: 3, B: Fraction(28, 9), C: Fraction(35, 9)}
    assert result.filled == 10


def test_weights_compacted_hour_fully_inside() -> None:
    # window 22: A 6, then the whole hour B 4 + C 12 = 16 fits the room of 16 exactly
    # (6 + 16 = 22): every row at full weight, and the later (A, 100) adds nothing
    result = pplns_weights([[(A, 6)], [(B, 4), (C, 12)], [(A, 100)]], 22)
    assert result.weights == {A: 6, B: 4, C: 12}
    assert result.filled == 22


def test_weights_same_tenant_twice_in_a_boundary_step() -> None:
    # window 4, one hour of A 2 + A 6 = 8: scale 4/8 -> A = 1 + 3 = 4
    result = pplns_weights([[(A, 2), (A, 6)]], 4)
    assert result.weights == {A: 4}
    assert result.filled == 4


def test_weights_first_share_larger_than_window() -> None:
    # window 3, block share of 12: 12 x 3/12 = 3
    result = pplns_weights([[(B, 12)], [(A, 1)]], 3)
    assert result.weights == {B: 3}
    assert result.filled == 3


def test_weights_zero_work_steps_are_skipped() -> None:
    # [(A, 0)] and [] have no work; only B's 5 counts
    result = pplns_weights([[(A, 0)], [], [(B, 5)]], 10)
    assert result.weights == {B: 5}
    assert A not in result.weights
    assert result.filled == 5
    assert result.full is False


def test_weights_stop_reading_steps_once_full() -> None:
    def steps() -> Iterator[list[tuple[int, int]]]:
        yield [(A, 4)]
        yield [(B, 6)]
        raise AssertionError("read past a full window")

    result = pplns_weights(steps(), 10)
    assert result.weights == {A: 4, B: 6}
    assert result.full is True


def test_weights_negative_work_raises() -> None:
    # step 5 + (-2) = 3 > 0, so its rows are read and the negative one is refused
    with pytest.raises(SchemeError):
        pplns_weights([[(A, 5), (B, -2)]], 10)


@pytest.mark.parametrize(
    "steps",
    [
        [[(A, -5)], [(B, 3)]],  # a one-row step of negative work
        [[(A, 5), (B, -5)], [(C, 4)]],  # rows summing to zero
    ],
)
def test_weights_negative_work_in_a_nonpositive_step_raises(
    steps: list[list[tuple[int, int]]],
) -> None:
    with pytest.raises(SchemeError):
        pplns_weights(steps, 10)


@pytest.mark.parametrize("window", [0, -1])
def test_weights_nonpositive_window_raises(window: int) -> None:
    with pytest.raises(SchemeError):
        pplns_weights(SHARES, window)


# --- allocate --------------------------------------------------------------------------------


def test_score_scale_is_the_ratio_of_targets() -> None:
    # A share mined at difficulty 256 counts 1/256 of its work in a window of a difficulty-1
    # block, and 256 times in the other direction; unknown bits (0) and the block's count 1.
    assert score_scale(DIFF256_BITS, MAINNET_DIFF1_BITS) == Fraction(1, 256)
    assert score_scale(MAINNET_DIFF1_BITS, DIFF256_BITS) == 256
    assert score_scale(0, MAINNET_DIFF1_BITS) == 1
    assert score_scale(REGTEST_BITS, REGTEST_BITS) == 1
    # Two mainnet targets two weeks apart: 0x02f128 x 2^160 and 0x031abe x 2^160.
    assert score_scale(0x1702F128, 0x17031ABE) == Fraction(0x02F128, 0x031ABE)


def test_weights_of_shares_scored_by_their_network_difficulty() -> None:
    # Window 10 units of the block's difficulty. A: 4 at the block's difficulty; B: 12 at
    # twice it (scores 6, fills the window exactly); C: 8 at the block's, not reached.
    half = score_scale(0x1B7FFF80, DIFF256_BITS)  # target 0x7fff80 x 2^192: D x 2, exactly
    assert half == Fraction(1, 2)
    steps = [[(A, 4)], [(B, 12 * half)], [(C, 8)]]
    result = pplns_weights(steps, 10)
    assert result.weights == {A: 4, B: 6} and result.full
    # Not full: the shares there are, by their scores (the reward is split over them).
    result = pplns_weights(steps[:2], 20)
    assert result.weights == {A: 4, B: 6} and result.filled == 10 and not result.full


def test_allocate_equal_thirds_tie_to_lowest_key() -> None:
    # 100/3 = 33 r 1/3 each; floors 99, 1 left, equal remainders -> key 1
    assert allocate(100, {1: 1, 2: 1, 3: 1}) == {1: 34, 2: 33, 3: 33}


def test_allocate_tie_among_the_largest_remainders() -> None:
    # 2 x {2, 1, 1}/4 = 1, 1/2, 1/2: floors 1, 0, 0; 1 left; remainders 0, 1/2, 1/2 -> key 2
    assert allocate(2, {1: 2, 2: 1, 3: 1}) == {1: 1, 2: 1, 3: 0}


def test_allocate_exact_division() -> None:
    # 100 x {1, 2, 3, 4}/10 = 10, 20, 30, 40
    assert allocate(100, {1: 1, 2: 2, 3: 3, 4: 4}) == {1: 10, 2: 20, 3: 30, 4: 40}


def test_allocate_largest_remainder_beats_key_order() -> None:
    # 1000 x {7, 11, 13}/31:
    #   7000/31 = 225 r 25, 11000/31 = 354 r 26, 13000/31 = 419 r 11
    #   floors 998, 2 left -> remainders 26 (key 2), then 25 (key 1)
    assert allocate(1000, {1: 7, 2: 11, 3: 13}) == {1: 226, 2: 355, 3: 419}


def test_allocate_string_keys() -> None:
    # 7 x {1, 2}/3 = 2 r 1/3, 4 r 2/3: 1 left -> "b"
    assert allocate(7, {"a": 1, "b": 2}) == {"a": 2, "b": 5}


def test_allocate_fraction_weights() -> None:
    # 10 x {1/2, 1/3, 1/6} = 5, 3 r 1/3, 1 r 2/3: floors 9, 1 left -> key 3
    weights = {1: Fraction(1, 2), 2: Fraction(1, 3), 3: Fraction(1, 6)}
    assert allocate(10, weights) == {1: 5, 2: 3, 3: 2}


def test_allocate_zero_weights_get_no_key() -> None:
    # 9 x {1, 2}/3 = 3, 6; key 1 has weight 0
    assert allocate(9, {1: 0, 2: 1, 3: 2}) == {2: 3, 3: 6}


def test_allocate_zero_amount() -> None:
    assert allocate(0, {1: 1, 2: 2}) == {1: 0, 2: 0}


@pytest.mark.parametrize(
    ("amount", "weights"),
    [
        (1, {1: 1, 2: 1, 3: 1}),
        (10, {1: 1, 2: 1, 3: 1}),
        (312_500_000, {1: 3, 2: 1}),
        (312_500_001, {1: 7, 2: 11, 3: 13, 4: 17, 5: 19}),
        (999, {1: Fraction(1, 7), 2: Fraction(2, 9), 3: Fraction(5, 11)}),
        (5_000_000_000, {i: i * i for i in range(1, 30)}),
        (97, {1: Fraction(28, 9), 2: Fraction(35, 9), 3: 3, 4: 0}),
    ],
)
def test_allocate_parts_add_up(amount: int, weights: dict[int, Fraction | int]) -> None:
    parts = allocate(amount, weights)
    assert sum(parts.values()) == amount
    assert set(parts) == {k for k, w in weights.items() if w > 0}
    assert all(part >= 0 for part in parts.values())


def test_allocate_all_zero_weights_raise() -> None:
    with pytest.raises(SchemeError):
        allocate(100, {1: 0, 2: 0})
    with pytest.raises(SchemeError):
        allocate(100, {})


def test_allocate_negative_amount_raises() -> None:
    with pytest.raises(SchemeError):
        allocate(-1, {1: 1})


def test_allocate_negative_weight_raises() -> None:
    with pytest.raises(SchemeError):
        allocate(100, {1: 1, 2: -1})


# --- take_fee --------------------------------------------------------------------------------


def test_take_fee_one_percent_of_a_block() -> None:
    # 5_000_000_000 x 990_000 / 10^6 = 4_950_000_000; fee 5e9 - 4.95e9 = 50_000_000
    assert take_fee(5_000_000_000, 10_000) == (4_950_000_000, 50_000_000)


def test_take_fee_net_rounds_down() -> None:
    # 101 x 0.99 = 99.99 -> 99; fee 101 - 99 = 2
    assert take_fee(101, 10_000) == (99, 2)
    # 1 x 0.999999 -> 0; the fee takes the whole satoshi
    assert take_fee(1, 1) == (0, 1)


def test_take_fee_zero_and_full() -> None:
    assert take_fee(101, 0) == (101, 0)
    assert take_fee(101, 1_000_000) == (0, 101)
    assert take_fee(0, 10_000) == (0, 0)


@pytest.mark.parametrize("fee_ppm", [-1, 1_000_001])
def test_take_fee_out_of_range_raises(fee_ppm: int) -> None:
    with pytest.raises(SchemeError):
        take_fee(100, fee_ppm)


# --- split_reward / solo_split ---------------------------------------------------------------


def test_split_reward_worked_block() -> None:
    # 312_500_000 x 3/4 = 234_375_000, x 1/4 = 78_125_000
    # tenant 1 at 1%: 234_375_000 x 0.99 = 232_031_250, fee 2_343_750
    # tenant 2 at 0%: 78_125_000, fee 0
    splits = split_reward(312_500_000, {1: 3, 2: 1}, {1: 10_000, 2: 0})
    assert splits == [
        Split(1, 232_031_250, 2_343_750, Fraction(3)),
        Split(2, 78_125_000, 0, Fraction(1)),
    ]
    # 232_031_250 + 2_343_750 + 78_125_000 = 312_500_000
    assert sum(s.amount_sat + s.fee_sat for s in splits) == 312_500_000


def test_split_reward_largest_remainder() -> None:
    # 10 x 1/3 each: 3 r 1/3, floors 9, 1 left -> tenant 1: gross 4, 3, 3
    splits = split_reward(10, {1: 1, 2: 1, 3: 1}, {1: 0, 2: 0, 3: 0})
    assert [(s.tenant_id, s.amount_sat, s.fee_sat) for s in splits] == [
        (1, 4, 0),
        (2, 3, 0),
        (3, 3, 0),
    ]


def test_split_reward_remainders_and_fees() -> None:
    # gross 4, 3, 3 as above; tenant 1 at 25%: 4 x 0.75 = 3, fee 1;
    # tenant 3 at 50%: 3 x 0.5 = 1.5 -> 1, fee 2; 3 + 1 + 3 + 0 + 1 + 2 = 10
    splits = split_reward(10, {1: 1, 2: 1, 3: 1}, {1: 250_000, 2: 0, 3: 500_000})
    assert [(s.amount_sat, s.fee_sat) for s in splits] == [(3, 1), (3, 0), (1, 2)]
    assert sum(s.amount_sat + s.fee_sat for s in splits) == 10


def test_split_reward_sorted_by_tenant_and_zero_weight_dropped() -> None:
    # 90 x {1, 2}/3 = 30, 60; tenant 5 has no work and needs no fee entry
    splits = split_reward(90, {3: 2, 1: 1, 5: 0}, {1: 0, 3: 0})
    assert splits == [Split(1, 30, 0, Fraction(1)), Split(3, 60, 0, Fraction(2))]


def test_split_reward_from_pplns_window() -> None:
    # window 10/65536 x 1 x 65536 = 10 units; weights A 7, B 3 (see the pro-rata test above)
    # 1000 x 7/10 = 700, x 3/10 = 300; A at 2%: 700 x 0.98 = 686, fee 14
    window = pplns_window_work(Fraction(10, 65_536), MAINNET_DIFF1_BITS)
    weights = pplns_weights(SHARES, window).weights
    splits = split_reward(1000, weights, {A: 20_000, B: 0})
    assert splits == [Split(A, 686, 14, Fraction(7)), Split(B, 300, 0, Fraction(3))]


def test_solo_split() -> None:
    # 312_500_000 at 2%: 312_500_000 x 0.98 = 306_250_000, fee 6_250_000
    assert solo_split(312_500_000, 7, 20_000) == [Split(7, 306_250_000, 6_250_000, Fraction(0))]
    assert solo_split(101, 7, 10_000) == [Split(7, 99, 2, Fraction(0))]
    assert solo_split(101, 7, 0) == [Split(7, 101, 0, Fraction(0))]


def test_solo_split_bad_fee_raises() -> None:
    with pytest.raises(SchemeError):
        solo_split(100, 7, 1_000_001)


# --- share_value / pps_credits ---------------------------------------------------------------


def test_share_value_diff1_share_at_diff1() -> None:
    # d = 65536 / 65536 = 1, D = 1: 1/1 x 5_000_000_000
    assert share_value(65_536, MAINNET_DIFF1_BITS, 5_000_000_000) == 5_000_000_000


def test_share_value_at_difficulty_256() -> None:
    # 1/256 x 5_000_000_000 = 19_531_250 (5e9 = 2^9 x 5^10, / 2^8 = 2 x 5^10)
    assert share_value(65_536, DIFF256_BITS, 5_000_000_000) == 19_531_250
    # a share at the network difficulty (256 x 65536 = 16_777_216 units) is worth the reward
    assert share_value(16_777_216, DIFF256_BITS, 312_500_000) == 312_500_000


def test_share_value_is_exact() -> None:
    # 1 unit = 1/65536 of difficulty 1: 5e9 / 2^16 = 2^9 x 5^10 / 2^16 = 5^10 / 2^7
    #   = 9_765_625 / 128 = 76_293.9453125
    assert share_value(1, MAINNET_DIFF1_BITS, 5_000_000_000) == Fraction(9_765_625, 128)
    assert share_value(0, MAINNET_DIFF1_BITS, 5_000_000_000) == 0


def test_pps_credits_floor_then_fee() -> None:
    # 1001/10 = 100.1 -> gross 100; 100 x 0.99 = 99, fee 1
    assert pps_credits({1: Fraction(1001, 10)}, {1: 10_000}) == {1: (99, 1)}


def test_pps_credits_floor_once_per_tenant() -> None:
    # three 1-unit shares summed: 3 x 9_765_625/128 = 29_296_875/128 = 228_881 + 107/128
    # -> 228_881 (flooring each share first would give 3 x 76_293 = 228_879)
    total = sum((share_value(1, MAINNET_DIFF1_BITS, 5_000_000_000) for _ in range(3)), Fraction(0))
    assert total == Fraction(29_296_875, 128)
    assert pps_credits({1: total}, {1: 0}) == {1: (228_881, 0)}


def test_pps_credits_several_tenants() -> None:
    # tenant 1: 7 at 0% -> (7, 0); tenant 2: 5/2 -> 2 at 50% -> 1, fee 1; tenant 3: 0
    credits = pps_credits(
        {2: Fraction(5, 2), 1: Fraction(7), 3: Fraction(0)}, {1: 0, 2: 500_000, 3: 10_000}
    )
    assert credits == {1: (7, 0), 2: (1, 1), 3: (0, 0)}
    assert list(credits) == [1, 2, 3]


def test_pps_credits_negative_raises() -> None:
    with pytest.raises(SchemeError):
        pps_credits({1: Fraction(-1, 2)}, {1: 0})


def test_pps_credits_bad_fee_raises() -> None:
    with pytest.raises(SchemeError):
        pps_credits({1: Fraction(10)}, {1: -1})


# --- subsidy_sat -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "subsidy"),
    [
        (0, 5_000_000_000),
        (209_999, 5_000_000_000),
        (210_000, 2_500_000_000),  # 5e9 / 2
        (420_000, 1_250_000_000),  # 5e9 / 4
        (630_000, 625_000_000),  # 5e9 / 8
        (840_000, 312_500_000),  # 5e9 / 16
        (32 * 210_000, 1),  # 5e9 >> 32 = floor(5e9 / 4_294_967_296) = floor(1.16) = 1
        (33 * 210_000, 0),  # 5e9 >> 33 = floor(0.58) = 0
        (64 * 210_000, 0),
        (100 * 210_000, 0),
    ],
)
def test_subsidy_mainnet(height: int, subsidy: int) -> None:
    assert subsidy_sat(height) == subsidy


@pytest.mark.parametrize(
    ("height", "subsidy"),
    [
        (0, 5_000_000_000),
        (149, 5_000_000_000),
        (150, 2_500_000_000),
        (299, 2_500_000_000),
        (300, 1_250_000_000),
        (64 * 150, 0),
    ],
)
def test_subsidy_regtest(height: int, subsidy: int) -> None:
    assert subsidy_sat(height, halving_interval=150) == subsidy
