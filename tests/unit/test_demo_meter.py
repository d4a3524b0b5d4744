"""scripts/demo.py's meter reading falls inside the month its statement reports, whatever the
date: on the first day of a month (yesterday is last month), in its first seconds, and mid-month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from demo import meter_period


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 12, 1, 0, 0, 0, 250_000, tzinfo=UTC),
        datetime(2026, 12, 1, 0, 0, 40, tzinfo=UTC),
        datetime(2026, 12, 1, 11, 25, 10, tzinfo=UTC),
        datetime(2027, 1, 1, 5, 0, tzinfo=UTC),
        datetime(2026, 9, 17, 18, 3, 9, 999_999, tzinfo=UTC),
        datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_the_meter_reading_lies_in_the_reported_month(now: datetime) -> None:
    start, end = meter_period(now)
    assert start < end
    assert (start.year, start.month) == (now.year, now.month)
    assert (end.year, end.month) == (now.year, now.month)
    assert end <= max(now, start + timedelta(seconds=1))  # a reading of the past
    assert end - start <= timedelta(hours=12)
