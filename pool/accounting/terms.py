"""Sites' prices and tenants' contracts in the database: what `farmpool site set` and
`farmpool contract set|list` change and show.

Where it sits: the hosting side of accounting. Energy rows (pool/accounting/energy.py) price
hours with the site's tariff and heat terms and the contract's hosting fee and fleet, as they
are when the hours are computed; block and PPS credits use the contract's pool fee. Every
change is validated here (TermsError names the option) and written in one transaction.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from pool.accounting.energy import (
    Machine,
    TariffError,
    fleet_json,
    load_tariff,
    make_tariff,
    micro,
)
from pool.errors import FieldError
from pool.ledger.models import Contract, Site, SiteHour, Tenant
from pool.units import ppm_to_percent

HOSTING_KINDS = ("kw_month", "kwh")


class TermsError(FieldError):
    """Input an admin must correct; `where` is the option that is wrong."""


def _site_id(conn: Any, name: str) -> int:
    found = conn.execute(select(Site.id).where(Site.name == name)).scalar()
    if found is None:
        raise TermsError("SITE", f"no site {name!r} (farmpool site list)")
    return int(found)


def _tenant_id(conn: Any, name: str) -> int:
    found = conn.execute(select(Tenant.id).where(Tenant.name == name)).scalar()
    if found is None:
        raise TermsError("TENANT", f"no tenant {name!r} (farmpool tenant list)")
    return int(found)


def set_site_terms(
    engine: Engine,
    name: str,
    *,
    timezone: str | None = None,
    currency: str | None = None,
    price: str | None = None,
    bands: list[str] | None = None,
    heat_factor: str | None = None,
    heat_price: str | None = None,
    hosting_terms: str | None = None,
) -> dict[str, Any]:
    """Change a site's prices and terms; returns the site as `site_terms` shows it."""
    changes: dict[str, Any] = {}
    if currency is not None:
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise TermsError("--currency", f"an ISO 4217 code such as EUR, got {currency!r}")
        changes["currency"] = currency
    if price is not None or bands:
        if price is None:
            raise TermsError("--price", "give the base price with the bands")
        try:
            changes["tariff"] = make_tariff(price, bands or []).to_json()
        except TariffError as exc:
            raise TermsError("--price/--band", str(exc)) from None
    if heat_factor is not None:
        try:
            factor = micro(heat_factor, "heat factor")
        except TariffError as exc:
            raise TermsError("--heat-factor", str(exc)) from None
        if factor > 1_000_000:
            raise TermsError("--heat-factor", f"at most 1 (all the energy), got {heat_factor}")
        changes["heat_factor_ppm"] = factor
    if heat_price is not None:
        try:
            changes["heat_price_micro"] = micro(heat_price, "heat price")
        except TariffError as exc:
            raise TermsError("--heat-price", str(exc)) from None
    if hosting_terms is not None:
        changes["hosting_terms"] = hosting_terms
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise TermsError("--timezone", f"unknown IANA time zone {timezone!r}") from None
        changes["timezone"] = timezone
    if not changes:
        raise TermsError("options", "nothing to change")
    with engine.begin() as conn:
        site_id = _site_id(conn, name)
        if "timezone" in changes:
            used = conn.execute(
                select(SiteHour.id).where(SiteHour.site_id == site_id).limit(1)
            ).first()
            current = conn.execute(select(Site.timezone).where(Site.id == site_id)).scalar()
            if used is not None and current != changes["timezone"]:
                raise TermsError(
                    "--timezone",
                    f"site {name} already has reports in {current}; a new site is needed",
                )
        conn.execute(update(Site).where(Site.id == site_id).values(**changes))
    return site_terms(engine, name)


def site_terms(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                Site.name,
                Site.timezone,
                Site.currency,
                Site.tariff,
                Site.heat_factor_ppm,
                Site.heat_price_micro,
                Site.hosting_terms,
            ).where(Site.name == name)
        ).first()
    if row is None:
        raise TermsError("SITE", f"no site {name!r} (farmpool site list)")
    tariff = load_tariff(row.tariff)
    return {
        "name": row.name,
        "timezone": row.timezone,
        "currency": row.currency,
        "price": None if tariff is None else str(Decimal(tariff.price_micro) / 1_000_000),
        "bands": [
            f"{b.start:02d}:00-{b.end:02d}:00={Decimal(b.price_micro) / 1_000_000}"
            for b in (tariff.bands if tariff else ())
        ],
        "heat_factor": str(Decimal(row.heat_factor_ppm) / 1_000_000),
        "heat_price": str(Decimal(row.heat_price_micro) / 1_000_000),
        "hosting_terms": row.hosting_terms,
    }


@dataclass(frozen=True)
class ContractRow:
    tenant: str
    site: str
    fee_ppm: int | None
    hosting_fee_kind: str | None
    hosting_fee_micro: int
    fleet: str
    fleet_watts: int
    valid_from: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "site": self.site,
            "fee_percent": ppm_to_percent(self.fee_ppm),
            "hosting": self.hosting_fee_kind,
            "hosting_price": str(Decimal(self.hosting_fee_micro) / 1_000_000),
            "fleet": self.fleet,
            "fleet_watts": self.fleet_watts,
            "valid_from": self.valid_from.isoformat(),
        }


_UNSET: Any = object()


def set_contract(
    engine: Engine,
    tenant: str,
    site: str,
    *,
    fee_ppm: int | None = _UNSET,
    hosting: str | None = _UNSET,
    hosting_price: str | None = None,
    machines: list[Machine] | None = None,
    valid_from: date | None = None,
) -> ContractRow:
    """Create or change a tenant's contract at a site (valid from a local date: the start of
    that day in the site's time zone)."""
    values: dict[str, Any] = {}
    if fee_ppm is not _UNSET:
        if fee_ppm is not None and not 0 <= fee_ppm <= 1_000_000:
            raise TermsError("--fee-percent", "0 to 100")
        values["fee_ppm"] = fee_ppm
    if hosting is not _UNSET:
        if hosting is not None and hosting not in HOSTING_KINDS:
            raise TermsError("--hosting", f"one of {', '.join(HOSTING_KINDS)} or none")
        values["hosting_fee_kind"] = hosting
        if hosting is not None and hosting_price is None:
            raise TermsError("--hosting-price", "the price of the hosting fee is needed")
    if hosting_price is not None:
        try:
            values["hosting_fee_micro"] = micro(hosting_price, "hosting price")
        except TariffError as exc:
            raise TermsError("--hosting-price", str(exc)) from None
    if machines is not None:
        values["fleet"], values["fleet_watts"] = fleet_json(machines)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        tenant_id = _tenant_id(conn, tenant)
        site_id = _site_id(conn, site)
        if valid_from is not None:
            zone = zoneinfo.ZoneInfo(
                conn.execute(select(Site.timezone).where(Site.id == site_id)).scalar_one()
            )
            values["valid_from"] = datetime(
                valid_from.year, valid_from.month, valid_from.day, tzinfo=zone
            ).astimezone(UTC)
        existing = conn.execute(
            select(Contract.id).where(Contract.tenant_id == tenant_id, Contract.site_id == site_id)
        ).scalar()
        if existing is None:
            conn.execute(
                insert(Contract),
                [
                    {
                        "tenant_id": tenant_id,
                        "site_id": site_id,
                        "fee_ppm": None,
                        "hosting_fee_kind": None,
                        "hosting_fee_micro": 0,
                        "fleet": "[]",
                        "fleet_watts": 0,
                        "valid_from": now,
                        "created_at": now,
                        "updated_at": now,
                        **values,
                    }
                ],
            )
        else:
            if not values:
                raise TermsError("options", "nothing to change")
            conn.execute(
                update(Contract).where(Contract.id == existing).values(updated_at=now, **values)
            )
    return next(c for c in list_contracts(engine) if c.tenant == tenant and c.site == site)


def list_contracts(engine: Engine) -> list[ContractRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Tenant.name,
                Site.name,
                Contract.fee_ppm,
                Contract.hosting_fee_kind,
                Contract.hosting_fee_micro,
                Contract.fleet,
                Contract.fleet_watts,
                Contract.valid_from,
            )
            .join(Tenant, Tenant.id == Contract.tenant_id)
            .join(Site, Site.id == Contract.site_id)
            .order_by(Tenant.name, Site.name)
        ).all()
    return [ContractRow(*row) for row in rows]
