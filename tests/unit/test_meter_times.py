"""Meter times without an offset are the site's local time; one the clocks skip is refused
with where they jump (pool/accounting/meters.py)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from pool.accounting.meters import LocalTimeGap, _time


@pytest.mark.parametrize(
    ("zone", "text", "jump"),
    [
        ("Europe/Berlin", "2026-03-29T02:00:00", "from 02:00 to 03:00 on 2026-03-29"),
        ("Europe/Berlin", "2026-03-29T02:59:59.999999", "from 02:00 to 03:00 on 2026-03-29"),
        ("America/New_York", "2026-03-08T02:30", "from 02:00 to 03:00 on 2026-03-08"),
        ("Australia/Lord_Howe", "2026-10-04T02:10", "from 02:00 to 02:30 on 2026-10-04"),
        ("Pacific/Apia", "2011-12-30T12:00", "from 2011-12-30 00:00 to 2011-12-31 00:00"),
    ],
)
def test_a_time_in_a_gap_names_the_jump(zone: str, text: str, jump: str) -> None:
    with pytest.raises(LocalTimeGap) as caught:
        _time(text, zoneinfo.ZoneInfo(zone))
    assert str(caught.value) == f"the clocks jump from {jump.removeprefix('from ')}"


@pytest.mark.parametrize(
    ("zone", "text", "utc"),
    [
        ("Europe/Berlin", "2026-03-29T01:59:59", "2026-03-29T00:59:59"),  # just before the gap
        ("Europe/Berlin", "2026-03-29T03:00:00", "2026-03-29T01:00:00"),  # just after it
        ("Europe/Berlin", "2026-10-25T02:30:00", "2026-10-25T00:30:00"),  # repeated: the first
        ("Europe/Berlin", "2026-03-29T02:30:00+01:00", "2026-03-29T01:30:00"),  # an offset
        ("UTC", "2026-03-29T02:30:00", "2026-03-29T02:30:00"),
    ],
)
def test_times_outside_a_gap_are_read_as_before(zone: str, text: str, utc: str) -> None:
    assert _time(text, zoneinfo.ZoneInfo(zone)) == datetime.fromisoformat(utc).replace(tzinfo=UTC)
