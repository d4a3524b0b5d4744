"""`farmpool report tenant|site|pool`: the statements, read from the report views.

Where it sits: the end of the money path, for accountants. Energy and calendars are brought
up to date first (pool/accounting/energy.py), then one view is read (pool/accounting/views.py),
so that the command and the views never disagree. Derived figures are computed here from the
views' integers, with Decimal: average hashrate = work x 65536 / seconds (H/s, work being
difficulty x 2^16); share of the pool = work / the pool's work in the period; reject rate =
rejects / (accepted shares + rejects).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Engine, text

from pool.accounting.energy import update_energy
from pool.errors import BadInput
from pool.units import HASHES_PER_WORK, btc_text

PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])(?:-(0[1-9]|[12]\d|3[01]))?")
LEVELS = ("tenant", "site", "pool")


class ReportError(ValueError, BadInput):
    """Arguments a report cannot be made from; the message names the option."""


@dataclass(frozen=True)
class Query:
    level: str
    period: str
    site: str | None = None
    tenant: str | None = None

    @property
    def kind(self) -> str:
        return "day" if len(self.period) == 10 else "month"


def check(level: str, period: str, site: str | None, tenant: str | None) -> Query:
    if level not in LEVELS:
        raise ReportError(f"the report is one of {', '.join(LEVELS)}, got {level!r}")
    if not PERIOD.fullmatch(period):
        raise ReportError(f"--period: YYYY-MM or YYYY-MM-DD, got {period!r}")
    if level == "pool" and (site or tenant):
        raise ReportError("--site/--tenant: the pool report covers every site and tenant")
    if level == "site" and tenant:
        raise ReportError("--tenant: a site report covers all its tenants (use: report tenant)")
    return Query(level, period, site, tenant)


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def _kwh(wh: int) -> str:
    return f"{Decimal(wh) / 1000:.3f}"


def _ratio(part: int, whole: int) -> str:
    if whole == 0:
        return ""
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _hashrate(work: int, seconds: int) -> str:
    if seconds <= 0:
        return ""
    ths = Decimal(work) * HASHES_PER_WORK / Decimal(seconds) / Decimal(10**12)
    return str(ths.quantize(Decimal("0.000001"), ROUND_HALF_UP))


def _rows(engine: Engine, q: Query) -> list[dict[str, Any]]:
    view = {"tenant": "report_tenant_site", "site": "report_site", "pool": "report_pool"}[q.level]
    where = ["period = :period"]
    params: dict[str, Any] = {"period": q.period}
    if q.site:
        where.append("site = :site")
        params["site"] = q.site
    if q.tenant:
        where.append("tenant = :tenant")
        params["tenant"] = q.tenant
    order = {"tenant": "site, tenant", "site": "site", "pool": "currency"}[q.level]
    sql = f"SELECT * FROM {view}_{q.kind} WHERE {' AND '.join(where)} ORDER BY {order}"
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(sql), params)]
        pool_work = {
            r[0]: int(r[1] or 0)
            for r in conn.execute(
                text(
                    f"SELECT currency, SUM(work) FROM report_tenant_site_{q.kind} "
                    "WHERE period = :period GROUP BY currency"
                ),
                {"period": q.period},
            )
        }
        total_work = sum(pool_work.values())
        if q.level == "pool":
            seconds = conn.execute(
                text(f"SELECT MAX(seconds) FROM report_site_{q.kind} WHERE period = :period"),
                {"period": q.period},
            ).scalar()
            for r in rows:
                r["seconds"] = int(seconds or 0)
    for r in rows:
        r["pool_work"] = total_work
    return rows


def statement(engine: Engine, q: Query, *, update: bool = True) -> list[dict[str, Any]]:
    """The report's rows: the views' integers plus the derived, formatted figures."""
    if update:
        update_energy(engine)
    out = []
    for r in _rows(engine, q):
        row: dict[str, Any] = {}
        if q.level in ("tenant", "site"):
            row["site"] = r["site"]
        if q.level == "tenant":
            row["tenant"] = r["tenant"]
        row["period"] = r["period"]
        row["currency"] = r["currency"]
        shares, rejects = int(r["shares"]), int(r["rejects"])
        row.update(
            {
                "shares": shares,
                "work": int(r["work"]),
                "hashrate_ths": _hashrate(int(r["work"]), int(r["seconds"] or 0)),
                "pool_share_percent": _ratio(int(r["work"]), int(r["pool_work"])),
                "rejects": rejects,
                "reject_percent": _ratio(rejects, shares + rejects),
                "blocks": int(r["blocks"]),
                "credited_btc": btc_text(int(r["credited_sat"])),
                "matured_btc": btc_text(int(r["matured_sat"])),
                "paid_btc": btc_text(int(r["paid_sat"])),
                "pool_fee_btc": btc_text(int(r["fee_sat"])),
                "energy_kwh": _kwh(int(r["wh_metered"]) + int(r["wh_estimated"])),
                "estimated_kwh": _kwh(int(r["wh_estimated"])),
                "energy_cost": _money(int(r["energy_cost_cents"])),
                "hosting_fee": _money(int(r["hosting_fee_cents"])),
                "heat_kwh": f"{Decimal(int(r['heat_uwh'])) / 10**9:.3f}",
                "heat_revenue": _money(int(r["heat_revenue_cents"])),
                "net": _money(int(r["net_cents"])),
            }
        )
        out.append(row)
    return out


#: The figures of every report row, after its site, tenant, period and currency.
FIGURES = [
    "shares",
    "work",
    "hashrate_ths",
    "pool_share_percent",
    "rejects",
    "reject_percent",
    "blocks",
    "credited_btc",
    "matured_btc",
    "paid_btc",
    "pool_fee_btc",
    "energy_kwh",
    "estimated_kwh",
    "energy_cost",
    "hosting_fee",
    "heat_kwh",
    "heat_revenue",
    "net",
]


def columns(level: str) -> list[str]:
    keys = {"tenant": ["site", "tenant"], "site": ["site"], "pool": []}[level]
    return [*keys, "period", "currency", *FIGURES]


def render(rows: list[dict[str, Any]], fmt: str, level: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    header = columns(level)
    if not rows and fmt != "csv":
        return "nothing in this period"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[h] for h in header])
        return buffer.getvalue()
    # A table: one block per row (the figures are many), aligned.
    width = max(len(h) for h in header)
    blocks = []
    for row in rows:
        blocks.append("\n".join(f"{h.ljust(width)}  {row[h]}" for h in header))
    return "\n\n".join(blocks)
