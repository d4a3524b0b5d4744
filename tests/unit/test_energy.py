"""The pure parts of hosting accounting: spreading readings over hours, tariff bands, fleets,
prices as exact integers (pool/accounting/energy.py)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from pool.accounting.energy import (
    SiteTerms,
    TariffError,
    fleet_json,
    make_tariff,
    micro,
    parse_machine,
    spread,
)

H = timedelta(hours=1)
T = datetime(2026, 9, 1, tzinfo=UTC)


def test_a_reading_spreads_by_time_and_adds_up() -> None:
    # 10 Wh over 00:30-02:00: 1,800 s in the first hour and 3,600 in the second: 10 x 1/3 =
    # 3.33 and 6.67 -> floors 3 + 6, the leftover Wh to the larger remainder (.67).
    parts = spread(10, T + H / 2, T + 2 * H)
    assert parts == {T: (3, 1_800_000_000), T + H: (7, 3_600_000_000)}
    # Half a second is a reading too (microseconds, not whole seconds).
    assert spread(1, T, T + timedelta(milliseconds=500)) == {T: (1, 500_000)}
    # Equal remainders go to the earlier hour: 5 Wh over 3 whole hours -> 2, 2, 1.
    assert [wh for wh, _ in spread(5, T, T + 3 * H).values()] == [2, 2, 1]
    assert (
        sum(wh for wh, _ in spread(1_234_567, T + timedelta(minutes=7), T + 50 * H).values())
        == 1_234_567
    )


def test_tariff_bands_by_local_hour_wrap_midnight_and_refuse_overlaps() -> None:
    tariff = make_tariff("0.10", ["22:00-06:00=0.05", "08:00-20:00=0.15"])
    assert [tariff.price_at(h) for h in (21, 22, 23, 0, 5, 6, 7, 8, 19, 20)] == [
        100_000,
        50_000,
        50_000,
        50_000,
        50_000,
        100_000,
        100_000,
        150_000,
        150_000,
        100_000,
    ]
    with pytest.raises(TariffError, match="overlap"):
        make_tariff("0.10", ["08:00-20:00=0.15", "19:00-21:00=0.2"])
    for bad in ("08:30-20:00=0.1", "8-20=0.1", "08:00-08:00=0.1", "08:00-20:00=abc"):
        with pytest.raises(TariffError):
            make_tariff("0.10", [bad])
    with pytest.raises(TariffError, match="more than 6 decimals"):
        micro("0.1234567", "price")
    with pytest.raises(TariffError, match="zero or more"):
        micro("-1", "price")
    assert micro("0.0734", "price") == 73_400


def test_fleet_declarations() -> None:
    machines = [parse_machine("S19:2:95:3250"), parse_machine("M30S:3:88.5:3400")]
    stored, watts = fleet_json(machines)
    assert watts == 2 * 3250 + 3 * 3400
    assert '"ths": "88.5"' in stored
    for bad in ("S19:0:95:3250", "S19:2:x:3250", "S19:2:95", ":2:95:3250", "S19:2:95:-5"):
        with pytest.raises(TariffError):
            parse_machine(bad)


def test_a_dst_month_has_745_local_hours() -> None:
    site = SiteTerms(1, zoneinfo.ZoneInfo("Europe/Berlin"), None, 0, 0)
    assert len(site.month_hours("2026-10")) == 745  # the clocks go back on 25 October
    assert len(site.month_hours("2026-03")) == 743  # and forward on 29 March
    assert len(site.month_hours("2026-09")) == 720
    assert site.month_hours("2026-09")[0] == datetime(2026, 8, 31, 22, tzinfo=UTC)
