"""Money and work units, once: every layer of the share and money path (ledger, schemes,
wallet, reports, config, CLI) takes its constants and conversions from here.

- Satoshis are integers; a BTC amount in text is exact (no float ever holds money).
- A share of pool difficulty D is D x 2^16 work units (a hash of difficulty 1 is about 2^32
  hashes; the ledger counts in units of 2^16 hashes so that small regtest difficulties are
  still whole numbers); hashrate = work x 65536 / seconds.
- Fees are parts per million (a percent with up to 4 decimals).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

#: Satoshis in one bitcoin.
SAT_PER_BTC = 100_000_000
#: All the bitcoin there will ever be, in satoshis.
MAX_MONEY_SAT = 21_000_000 * SAT_PER_BTC
#: Work units per unit of pool difficulty (as in the share ledger). Work is difficulty in fixed
#: point (1/65536): whole numbers whose sums are exact, and whose sums fit SQLite's 64-bit
#: integers up to 1.4e14 difficulty (about a week of 1 EH/s; PostgreSQL sums bigints as
#: numeric, with no limit). Expected hashes would overflow SQLite's SUM in two minutes.
WORK_PER_DIFFICULTY = 2**16
#: Hashes per work unit: hashrate (H/s) = work x HASHES_PER_WORK / seconds.
HASHES_PER_WORK = 2**16
#: The target of pool difficulty 1 (0x00000000ffff0000...0000, nBits 0x1d00ffff).
DIFF1_TARGET = 0xFFFF << 208
#: Parts per million.
PPM = 1_000_000
#: Parts per million in one percent.
PPM_PER_PERCENT = 10_000


def btc_text(sat: int) -> str:
    """Satoshis as an exact BTC amount in text (what a node's JSON reads without floats)."""
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), SAT_PER_BTC)
    return f"{sign}{whole}.{frac:08d}"


def percent_to_ppm(percent: Decimal | str) -> int:
    """A percentage from 0 to 100 with at most 4 decimals, as parts per million; ValueError
    naming the rule for anything else."""
    try:
        value = Decimal(percent)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not a number: {percent!r}") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError(f"a percentage is 0 to 100, got {percent}")
    scaled = value * PPM_PER_PERCENT
    if scaled % 1:
        raise ValueError(f"a percentage has at most 4 decimals, got {percent}")
    return int(scaled)


def ppm_to_percent(ppm: int | None) -> str | None:
    """Parts per million as a percentage in text (the inverse of percent_to_ppm); None stays
    None (no value of its own)."""
    return None if ppm is None else str(Decimal(ppm) / PPM_PER_PERCENT)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` is in (aware, UTC)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bits_to_target(bits: int) -> int:
    """Expand a compact nBits value into the full 256-bit target (0 when the mantissa is 0;
    ValueError for the sign bit)."""
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if bits & 0x00800000:
        raise ValueError(f"nBits {bits:08x} is negative")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))
