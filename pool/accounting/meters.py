"""`farmpool meter import FILE.csv`: meter readings into the ledger, all or nothing.

Where it sits: readings are the metered side of energy (pool/accounting/energy.py spreads
them over hours and prices them). The file is RFC 4180 CSV with a header row naming the
columns site, tenant, period_start, period_end, kwh (any order, other columns refused).
Times are ISO 8601; without an offset they are the site's local time (one the clocks skip
when they spring forward does not exist and is refused, naming the jump). kWh has at most 3
decimals (stored exactly as Wh). Every line is checked before anything is written; every
problem is reported with its line number; a file with any problem writes nothing. A reading
that overlaps another of the same tenant at the same site (in the file or already imported)
is refused.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import Engine, insert, select

from pool.accounting.energy import fill_calendar, rebuild
from pool.errors import BadInput
from pool.ledger.models import MeterReading, Site, Tenant

COLUMNS = ("site", "tenant", "period_start", "period_end", "kwh")
#: Lines (readings) one file may hold at most.
MAX_LINES = 1_000_000


class MeterFileError(ValueError, BadInput):
    """A file that cannot be imported; `problems` are (line, message), line 0 for the file."""

    def __init__(self, path: str, problems: list[tuple[int, str]]) -> None:
        shown = "\n".join(
            f"  {path}:{line}: {message}" if line else f"  {path}: {message}"
            for line, message in problems[:50]
        )
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{path}: {len(problems)} problem(s), nothing imported:\n{shown}{more}")
        self.problems = problems


@dataclass(frozen=True)
class Reading:
    line: int
    site_id: int
    tenant_id: int
    start: datetime
    end: datetime
    wh: int


class LocalTimeGap(ValueError):
    """A local time the clocks skip (spring forward): it never happens at the site."""


def _time(text: str, zone: zoneinfo.ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        local = moment.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment:
            raise LocalTimeGap(_gap(moment, zone))
        moment = local
    return moment.astimezone(UTC)


def _gap(moment: datetime, zone: zoneinfo.ZoneInfo) -> str:
    """Where the clocks jump around a local time that does not exist ("from 02:00 to 03:00
    on 2026-03-29"): the transition lies between the two readings of the time (the offset
    before it and the offset after it); found to the second by bisection."""
    before = moment.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
    after = moment.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    naive = moment.replace(tzinfo=None)
    lo, hi = naive - max(before, after), naive - min(before, after)  # UTC, as naive datetimes
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.replace(tzinfo=UTC).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    jump = hi.replace(microsecond=0)
    start, end = jump + before, jump + after
    if start.date() != end.date():  # a whole day skipped (Pacific/Apia, 2011-12-30)
        return f"the clocks jump from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    return f"the clocks jump from {start:%H:%M} to {end:%H:%M} on {end:%Y-%m-%d}"


def parse(engine: Engine, path: Path) -> list[Reading]:
    """Read and check the whole file; MeterFileError lists every problem."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MeterFileError(name, [(0, f"cannot read it: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MeterFileError(
            name, [(0, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    with engine.connect() as conn:
        sites = {
            n: (i, zoneinfo.ZoneInfo(tz))
            for i, n, tz in conn.execute(select(Site.id, Site.name, Site.timezone))
        }
        tenants = dict(conn.execute(select(Tenant.name, Tenant.id)).all())
    problems: list[tuple[int, str]] = []
    readings: list[Reading] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise MeterFileError(name, [(1, f"not valid CSV: {exc}")]) from None
    if header is None:
        raise MeterFileError(
            name, [(0, "the file is empty: expected a header row " + ",".join(COLUMNS))]
        )
    columns = [h.strip().lower() for h in header]
    if sorted(columns) != sorted(COLUMNS):
        raise MeterFileError(
            name, [(1, f"the header must name the columns {', '.join(COLUMNS)}; got {header}")]
        )
    at = {c: columns.index(c) for c in COLUMNS}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (a trailing newline) are not readings
            if len(readings) + len(problems) >= MAX_LINES:
                problems.append((line, f"more than {MAX_LINES} readings in one file"))
                break
            if len(row) != len(COLUMNS):
                problems.append((line, f"expected {len(COLUMNS)} fields, got {len(row)}"))
                continue
            cell = {c: row[at[c]].strip() for c in COLUMNS}
            bad = []
            site = sites.get(cell["site"])
            if site is None:
                bad.append(f"site {cell['site']!r} does not exist (farmpool site list)")
            tenant_id = tenants.get(cell["tenant"])
            if tenant_id is None:
                bad.append(f"tenant {cell['tenant']!r} does not exist (farmpool tenant list)")
            zone = site[1] if site else zoneinfo.ZoneInfo("UTC")
            start = end = None
            for key in ("period_start", "period_end"):
                try:
                    value = _time(cell[key], zone)
                except LocalTimeGap as exc:
                    bad.append(
                        f"{key} {cell[key]!r} does not exist in {zone.key}: {exc} (the "
                        "spring-forward gap); give the time with its UTC offset"
                    )
                    continue
                except ValueError:
                    bad.append(f"{key} {cell[key]!r} is not an ISO 8601 time")
                    continue
                if key == "period_start":
                    start = value
                else:
                    end = value
            if start is not None and end is not None and end <= start:
                bad.append("period_end must be after period_start")
            wh = None
            try:
                kwh = Decimal(cell["kwh"])
                if not kwh.is_finite() or kwh < 0:
                    raise InvalidOperation
                if kwh * 1000 != (kwh * 1000).to_integral_value():
                    bad.append(f"kwh {cell['kwh']!r} has more than 3 decimals")
                else:
                    wh = int(kwh * 1000)
            except InvalidOperation:
                bad.append(f"kwh {cell['kwh']!r} is not a number of kWh (0 or more)")
            if bad:
                problems.extend((line, message) for message in bad)
                continue
            assert site is not None and tenant_id is not None and start and end and wh is not None
            readings.append(Reading(line, site[0], tenant_id, start, end, wh))
    except csv.Error as exc:
        problems.append((reader.line_num, f"not valid CSV: {exc}"))
    if not readings and not problems:
        problems.append((0, "no readings in the file"))
    problems.extend(_overlaps(engine, readings))
    if problems:
        raise MeterFileError(name, sorted(problems))
    return readings


def _overlaps(engine: Engine, readings: list[Reading]) -> list[tuple[int, str]]:
    problems = []
    by_pair: dict[tuple[int, int], list[Reading]] = {}
    for r in readings:
        by_pair.setdefault((r.site_id, r.tenant_id), []).append(r)
    with engine.connect() as conn:
        for (site_id, tenant_id), items in by_pair.items():
            items.sort(key=lambda r: (r.start, r.line))
            longest = items[0]  # of the readings so far, the one that ends last
            for r in items[1:]:
                if r.start < longest.end:
                    problems.append((r.line, f"overlaps the reading on line {longest.line}"))
                if r.end > longest.end:
                    longest = r
            lo, hi = items[0].start, max(r.end for r in items)
            existing = conn.execute(
                select(
                    MeterReading.period_start, MeterReading.period_end, MeterReading.source
                ).where(
                    MeterReading.site_id == site_id,
                    MeterReading.tenant_id == tenant_id,
                    MeterReading.period_end > lo,
                    MeterReading.period_start < hi,
                )
            ).all()
            for r in items:
                for start, end, source in existing:
                    if r.start < end and start < r.end:
                        problems.append((r.line, f"overlaps a reading already imported ({source})"))
                        break
    return problems


def import_readings(engine: Engine, path: Path) -> list[Reading]:
    """Check the whole file, then write its readings and their energy hours in one
    transaction (nothing at all if anything is wrong)."""
    readings = parse(engine, path)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(MeterReading),
            [
                {
                    "site_id": r.site_id,
                    "tenant_id": r.tenant_id,
                    "period_start": r.start,
                    "period_end": r.end,
                    "wh": r.wh,
                    "source": f"{path.name}:{r.line}"[:255],
                    "imported_at": now,
                }
                for r in readings
            ],
        )
        spans: dict[tuple[int, int], tuple[datetime, datetime]] = {}
        for r in readings:
            lo, hi = spans.get((r.site_id, r.tenant_id), (r.start, r.end))
            spans[(r.site_id, r.tenant_id)] = (min(lo, r.start), max(hi, r.end))
        for (site_id, tenant_id), (lo, hi) in spans.items():
            fill_calendar(conn, site_id, lo, hi)
            rebuild(conn, site_id, tenant_id, lo, hi)
    return readings
