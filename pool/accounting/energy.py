"""Energy, heat and hosting per tenant, site and hour, from meter readings and declared fleets.

Where it sits: beside the money ledger. `farmpool meter import` writes readings; `update_energy`
(run by `farmpool energy update`, by `farmpool report` before it reads, and by `serve` with
the block tracker) turns readings, tariffs and contracts into `energy_hours` rows, and fills
the sites' calendars (`site_hours`: the local day and month of each UTC hour) that the report
views group by. Everything is an exact integer; the rules:

- A reading's Wh are spread over the hours it covers in proportion to the time (to the
  microsecond) it covers in each (largest remainder, ties to the earlier hour), so the hours
  add up to the reading.
- Time of an hour that no reading covers is estimated from the contract's declared fleet:
  total W x uncovered time / 1 h, rounded half up per hour (`wh_estimated`; reports flag it),
  from the first whole hour on or after the contract's start.
- Electricity: Wh x the tariff's price for the hour (the band containing the hour's local
  start, else the base price), in millionths of the currency per kWh: nano-units exactly.
- Heat: Wh x heat factor (ppm) = micro-Wh thermal exactly; its revenue x the heat price,
  rounded half up per hour to nano-units.
- Hosting: per kWh, Wh x price exactly; per kW-month, the declared kW x price for the local
  month, spread over the month's hours (equal parts, the remainder to the first hours), so a
  whole month adds up to the contract's fee.
Reports round each (tenant, site, period) sum half up to the cent, once (docs/accounting.md).
"""

from __future__ import annotations

import calendar
import json
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from pool.errors import BadInput
from pool.ledger.models import (
    Block,
    Contract,
    EnergyHour,
    MeterReading,
    Share,
    ShareHour,
    Site,
    SiteHour,
)
from pool.units import floor_hour

HOUR = timedelta(hours=1)
MICRO = 1_000_000


class TariffError(ValueError, BadInput):
    """A tariff, price or fleet an admin must correct; the message says what."""


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def micro(text: str, what: str) -> int:
    """A decimal price or factor in millionths, exactly (at most 6 decimals, not negative)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise TariffError(f"{what}: {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise TariffError(f"{what}: {text!r} must be zero or more")
    scaled = value * MICRO
    if scaled != scaled.to_integral_value():
        raise TariffError(f"{what}: {text!r} has more than 6 decimals")
    return int(scaled)


@dataclass(frozen=True)
class Band:
    start: int  # local hour of day the band starts (0-23)
    end: int  # local hour it ends (exclusive; may wrap past midnight)
    price_micro: int

    def covers(self, hour: int) -> bool:
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


@dataclass(frozen=True)
class Tariff:
    """Price per kWh in millionths of the currency, by local hour of day."""

    price_micro: int
    bands: tuple[Band, ...] = ()

    def price_at(self, local_hour: int) -> int:
        for band in self.bands:
            if band.covers(local_hour):
                return band.price_micro
        return self.price_micro

    def to_json(self) -> str:
        def text(m: int) -> str:
            return str(Decimal(m) / MICRO)

        return json.dumps(
            {
                "price": text(self.price_micro),
                "bands": [
                    {
                        "from": f"{b.start:02d}:00",
                        "to": f"{b.end:02d}:00",
                        "price": text(b.price_micro),
                    }
                    for b in self.bands
                ],
            }
        )


def _band_hour(text: str, what: str) -> int:
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts[1] != "00":
        raise TariffError(f"{what}: {text!r} must be a whole local hour, HH:00")
    hour = int(parts[0])
    if not 0 <= hour <= 24:
        raise TariffError(f"{what}: {text!r} is not an hour of the day")
    return hour % 24


def parse_band(spec: str) -> Band:
    """`HH:00-HH:00=PRICE` (local time; a band may wrap past midnight)."""
    span, eq, price = spec.partition("=")
    start, dash, end = span.partition("-")
    if not eq or not dash:
        raise TariffError(f"band {spec!r}: expected HH:00-HH:00=PRICE")
    band = Band(
        _band_hour(start.strip(), f"band {spec!r}"),
        _band_hour(end.strip(), f"band {spec!r}"),
        micro(price, f"band {spec!r} price"),
    )
    if band.start == band.end:
        raise TariffError(f"band {spec!r}: it starts and ends at the same hour")
    return band


def make_tariff(price: str, bands: Iterable[str] = ()) -> Tariff:
    parsed = tuple(parse_band(b) for b in bands)
    for i, a in enumerate(parsed):
        for b in parsed[i + 1 :]:
            if any(a.covers(h) and b.covers(h) for h in range(24)):
                raise TariffError(f"bands {a.start:02d}:00 and {b.start:02d}:00 overlap")
    return Tariff(micro(price, "price"), parsed)


def load_tariff(stored: str | None) -> Tariff | None:
    if not stored:
        return None
    data = json.loads(stored)
    return make_tariff(
        data["price"], [f"{b['from']}-{b['to']}={b['price']}" for b in data.get("bands", [])]
    )


@dataclass(frozen=True)
class Machine:
    model: str
    count: int
    ths: Decimal
    watts: int


def parse_machine(spec: str) -> Machine:
    """`MODEL:COUNT:THS:WATTS` (nominal TH/s and W per machine)."""
    parts = spec.split(":")
    if len(parts) != 4 or not parts[0].strip():
        raise TariffError(f"fleet {spec!r}: expected MODEL:COUNT:THS:WATTS")
    model, count, ths, watts = (p.strip() for p in parts)
    if not count.isdigit() or int(count) < 1:
        raise TariffError(f"fleet {spec!r}: the count must be a whole number, 1 or more")
    if not watts.isdigit() or int(watts) < 1:
        raise TariffError(f"fleet {spec!r}: the watts must be a whole number, 1 or more")
    try:
        th = Decimal(ths)
    except InvalidOperation:
        raise TariffError(f"fleet {spec!r}: TH/s {ths!r} is not a number") from None
    if not th.is_finite() or th <= 0:
        raise TariffError(f"fleet {spec!r}: TH/s must be positive")
    return Machine(model, int(count), th, int(watts))


def fleet_json(machines: Iterable[Machine]) -> tuple[str, int]:
    """The fleet as stored (JSON) and its total watts."""
    items = [
        {"model": m.model, "count": m.count, "ths": str(m.ths), "watts": m.watts} for m in machines
    ]
    return json.dumps(items), sum(m.count * m.watts for m in machines)


# --- spreading and the hour rows -----------------------------------------------------------


#: Microseconds in an hour: readings cover hours to the microsecond.
HOUR_US = 3_600_000_000


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def spread(wh: int, start: datetime, end: datetime) -> dict[datetime, tuple[int, int]]:
    """UTC hour -> (Wh, microseconds covered) of a reading over [start, end) (end > start)."""
    covered: dict[datetime, int] = {}
    hour = floor_hour(start)
    while hour < end:
        part = _us(min(end, hour + HOUR) - max(start, hour))
        if part > 0:
            covered[hour] = part
        hour += HOUR
    total = sum(covered.values())
    parts = {h: wh * us // total for h, us in covered.items()}
    left = wh - sum(parts.values())
    by_remainder = sorted(covered, key=lambda h: (-((wh * covered[h]) % total), h))
    for h in by_remainder[:left]:
        parts[h] += 1
    return {h: (parts[h], covered[h]) for h in covered}


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass
class SiteTerms:
    id: int
    zone: zoneinfo.ZoneInfo
    tariff: Tariff | None
    heat_factor_ppm: int
    heat_price_micro: int

    def local(self, hour: datetime) -> datetime:
        return hour.astimezone(self.zone)

    def month_hours(self, local_month: str) -> list[datetime]:
        """The UTC hours whose local start falls in the month (743, 744 or 745 of them)."""
        year, month = (int(x) for x in local_month.split("-"))
        first = datetime(year, month, 1, tzinfo=self.zone).astimezone(UTC)
        last_day = calendar.monthrange(year, month)[1]
        after = (datetime(year, month, last_day, tzinfo=self.zone) + timedelta(days=1)).astimezone(
            UTC
        )
        hours = []
        hour = floor_hour(first)
        while hour < after:
            if self.local(hour).strftime("%Y-%m") == local_month:
                hours.append(hour)
            hour += HOUR
        return hours


def _site_terms(conn: Connection, site_id: int) -> SiteTerms:
    row = conn.execute(
        select(Site.timezone, Site.tariff, Site.heat_factor_ppm, Site.heat_price_micro).where(
            Site.id == site_id
        )
    ).one()
    return SiteTerms(site_id, zoneinfo.ZoneInfo(row[0]), load_tariff(row[1]), row[2], row[3])


def _hour_rows(
    conn: Connection,
    site: SiteTerms,
    tenant_id: int,
    contract: Any,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """The energy_hours rows of one tenant at one site for the hours [start, end)."""
    metered: dict[datetime, int] = {}
    covered: dict[datetime, int] = {}
    for wh, r_start, r_end in conn.execute(
        select(MeterReading.wh, MeterReading.period_start, MeterReading.period_end).where(
            MeterReading.site_id == site.id,
            MeterReading.tenant_id == tenant_id,
            MeterReading.period_end > start,
            MeterReading.period_start < end,
        )
    ):
        for hour, (part, micros) in spread(wh, r_start, r_end).items():
            metered[hour] = metered.get(hour, 0) + part
            covered[hour] = covered.get(hour, 0) + micros
    watts = contract.fleet_watts if contract is not None else 0
    # Terms start at the first whole hour on or after valid_from (a site whose offset is not
    # whole hours starts its day at :30 or :45 UTC: that part-hour is not charged).
    since = ceil_hour(contract.valid_from) if contract is not None else None
    kind = contract.hosting_fee_kind if contract is not None else None
    fee = contract.hosting_fee_micro if contract is not None else 0
    month_cache: dict[str, list[datetime]] = {}
    rows = []
    hour = start
    while hour < end:
        in_contract = since is not None and hour >= since
        wh_metered = metered.get(hour, 0)
        uncovered = max(0, HOUR_US - covered.get(hour, 0))
        wh_estimated = _half_up(watts * uncovered, HOUR_US) if in_contract else 0
        if hour not in metered and not in_contract:
            hour += HOUR
            continue
        local = site.local(hour)
        wh = wh_metered + wh_estimated
        price = site.tariff.price_at(local.hour) if site.tariff is not None else 0
        heat_uwh = wh * site.heat_factor_ppm
        hosting = 0
        if in_contract and kind == "kwh":
            hosting = wh * fee
        elif in_contract and kind == "kw_month":
            month = local.strftime("%Y-%m")
            hours = month_cache.get(month)
            if hours is None:
                hours = month_cache[month] = site.month_hours(month)
            whole, rest = divmod(watts * fee, len(hours))
            hosting = whole + (1 if hours.index(hour) < rest else 0)
        rows.append(
            {
                "site_id": site.id,
                "tenant_id": tenant_id,
                "hour": hour,
                "local_day": local.strftime("%Y-%m-%d"),
                "local_month": local.strftime("%Y-%m"),
                "wh_metered": wh_metered,
                "wh_estimated": wh_estimated,
                "cost_nano": wh * price,
                "heat_uwh": heat_uwh,
                "heat_nano": _half_up(heat_uwh * site.heat_price_micro, MICRO),
                "hosting_nano": hosting,
            }
        )
        hour += HOUR
    return rows


def rebuild(conn: Connection, site_id: int, tenant_id: int, start: datetime, end: datetime) -> int:
    """Write the energy rows of one tenant at one site for [start, end) afresh."""
    start, end = floor_hour(start), floor_hour(end - timedelta(microseconds=1)) + HOUR
    site = _site_terms(conn, site_id)
    contract = conn.execute(
        select(Contract).where(Contract.site_id == site_id, Contract.tenant_id == tenant_id)
    ).first()
    rows = _hour_rows(conn, site, tenant_id, contract, start, end)
    conn.execute(
        delete(EnergyHour).where(
            EnergyHour.site_id == site_id,
            EnergyHour.tenant_id == tenant_id,
            EnergyHour.hour >= start,
            EnergyHour.hour < end,
        )
    )
    if rows:
        conn.execute(insert(EnergyHour), rows)
    return len(rows)


def fill_calendar(conn: Connection, site_id: int, start: datetime, end: datetime) -> int:
    """Add the site's calendar hours in [start, end) it does not have yet."""
    start = floor_hour(start)
    if start >= end:
        return 0
    count = conn.execute(
        select(func.count()).where(
            SiteHour.site_id == site_id, SiteHour.hour >= start, SiteHour.hour < end
        )
    ).scalar()
    if count == -(-(end - start) // HOUR):
        return 0  # complete already
    site = _site_terms(conn, site_id)
    have = set(
        conn.execute(
            select(SiteHour.hour).where(
                SiteHour.site_id == site_id, SiteHour.hour >= start, SiteHour.hour < end
            )
        ).scalars()
    )
    rows = []
    hour = floor_hour(start)
    while hour < end:
        if hour not in have:
            local = site.local(hour)
            rows.append(
                {
                    "site_id": site_id,
                    "hour": hour,
                    "local_day": local.strftime("%Y-%m-%d"),
                    "local_month": local.strftime("%Y-%m"),
                }
            )
        hour += HOUR
    if rows:
        conn.execute(insert(SiteHour), rows)
    return len(rows)


def update_energy(engine: Engine, until: datetime | None = None) -> int:
    """Bring every site's calendar and every contract's energy rows up to `until` (default:
    the start of the current hour; only whole hours). Returns the energy rows written."""
    end = floor_hour(until or datetime.now(UTC))
    written = 0
    with engine.begin() as conn:
        sites = list(conn.execute(select(Site.id)).scalars())
        for site_id in sites:
            first = _first_activity(conn, site_id)
            if first is not None and first <= end:
                # The calendar includes the hour under way: its shares and blocks count in
                # today's report at once (its energy only once the hour is complete).
                fill_calendar(conn, site_id, first, end + HOUR)
        pairs = conn.execute(
            select(Contract.site_id, Contract.tenant_id, Contract.valid_from)
        ).all()
        for site_id, tenant_id, valid_from in pairs:
            begin = ceil_hour(valid_from)
            if begin >= end:
                continue
            rows = conn.execute(
                select(func.count()).where(
                    EnergyHour.site_id == site_id,
                    EnergyHour.tenant_id == tenant_id,
                    EnergyHour.hour >= begin,
                    EnergyHour.hour < end,
                )
            ).scalar()
            if rows == (end - begin) // HOUR:
                continue  # every hour has its row: the usual case, one index count
            present = set(
                conn.execute(
                    select(EnergyHour.hour).where(
                        EnergyHour.site_id == site_id,
                        EnergyHour.tenant_id == tenant_id,
                        EnergyHour.hour >= begin,
                        EnergyHour.hour < end,
                    )
                ).scalars()
            )
            for lo, hi in _missing_runs(begin, end, present):
                written += rebuild(conn, site_id, tenant_id, lo, hi)
    return written


def _missing_runs(
    begin: datetime, end: datetime, present: set[datetime]
) -> list[tuple[datetime, datetime]]:
    """The runs of hours in [begin, end) that have no row yet."""
    runs: list[tuple[datetime, datetime]] = []
    hour = begin
    while hour < end:
        if hour in present:
            hour += HOUR
            continue
        start = hour
        while hour < end and hour not in present:
            hour += HOUR
        runs.append((start, hour))
    return runs


def _first_activity(conn: Connection, site_id: int) -> datetime | None:
    """The earliest hour anything happened at a site (shares, blocks, readings, contracts)."""
    candidates = [
        conn.execute(select(func.min(Share.created_at)).where(Share.site_id == site_id)).scalar(),
        conn.execute(select(func.min(ShareHour.hour)).where(ShareHour.site_id == site_id)).scalar(),
        conn.execute(select(func.min(Block.created_at)).where(Block.site_id == site_id)).scalar(),
        conn.execute(
            select(func.min(MeterReading.period_start)).where(MeterReading.site_id == site_id)
        ).scalar(),
        conn.execute(
            select(func.min(Contract.valid_from)).where(Contract.site_id == site_id)
        ).scalar(),
    ]
    found = [c for c in candidates if c is not None]
    return floor_hour(min(found)) if found else None
