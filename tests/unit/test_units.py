"""pool/units.py: the one home of money and work units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pool import units


@pytest.mark.parametrize(
    ("sat", "text"),
    [
        (0, "0.00000000"),
        (1, "0.00000001"),
        (-150, "-0.00000150"),
        (units.MAX_MONEY_SAT, "21000000.00000000"),
    ],
)
def test_btc_text_is_exact(sat: int, text: str) -> None:
    assert units.btc_text(sat) == text
    assert Decimal(text) * units.SAT_PER_BTC == sat


@pytest.mark.parametrize(
    ("text", "ppm"), [("0", 0), ("1.5", 15_000), ("0.0001", 1), ("100", 1_000_000)]
)
def test_percent_to_ppm(text: str, ppm: int) -> None:
    assert units.percent_to_ppm(text) == ppm
    assert units.percent_to_ppm(Decimal(text)) == ppm


@pytest.mark.parametrize("text", ["-1", "100.0001", "0.00001", "NaN", "Infinity", "x", ""])
def test_percent_to_ppm_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        units.percent_to_ppm(text)


def test_floor_hour_is_utc() -> None:
    local = datetime(2026, 3, 29, 3, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert units.floor_hour(local) == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_bits_to_target() -> None:
    assert units.bits_to_target(0x1D00FFFF) == units.DIFF1_TARGET
    assert units.bits_to_target(0x207FFFFF) == 0x7FFFFF << (8 * 29)
    assert units.bits_to_target(0x03000000) == 0
    with pytest.raises(ValueError, match="negative"):
        units.bits_to_target(0x1D80FFFF)


@pytest.mark.parametrize(("ppm", "text"), [(None, None), (0, "0"), (15_000, "1.5"), (1, "0.0001")])
def test_ppm_to_percent_is_the_inverse_of_percent_to_ppm(ppm: int | None, text: str | None) -> None:
    assert units.ppm_to_percent(ppm) == text
    if text is not None:
        assert units.percent_to_ppm(text) == ppm


def test_json_fields_keeps_the_order_and_writes_times_in_iso() -> None:
    from dataclasses import dataclass

    from pool.jsonrows import json_fields

    @dataclass
    class Row:
        name: str
        at: datetime
        gone: datetime | None

    moment = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    shown = json_fields(Row("north", moment, None))
    assert list(shown) == ["name", "at", "gone"]
    assert shown == {"name": "north", "at": "2026-12-01T14:00:00+00:00", "gone": None}
