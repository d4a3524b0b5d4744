"""Sites and tenants in the database: what admins add and list, and what the config seeds.

The server authorizes miners against the tenants here. Every change is validated first (names,
time zones, payout addresses for the network), in this module only, and written in one
transaction; bad input raises AdminError naming the field, and nothing is written.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from pool.chain.addresses import AddressError, address_to_script
from pool.config import NAME_PATTERN, Settings, dust_floor_problem
from pool.errors import FieldError
from pool.jsonrows import json_fields
from pool.ledger.dialect import insert_ignore
from pool.ledger.models import Site, Tenant
from pool.units import PPM, ppm_to_percent

#: Longest time zone name the sites table holds.
TIMEZONE_MAX = 64
#: Names zoneinfo loads that are not fixed IANA zones (they follow the host's setting).
_HOST_ZONES = frozenset({"localtime", "posixrules"})


class Unset:
    """The value of an optional change that was not asked for (None means "the pool's")."""


UNSET = Unset()


class AdminError(FieldError):
    """Input an admin must correct; `where` is the field that is wrong (name, timezone,
    payout_address, changes)."""


@dataclass(frozen=True)
class SiteRow:
    name: str
    timezone: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True)
class TenantRow:
    name: str
    payout_address: str | None
    active: bool
    created_at: datetime
    fee_ppm: int | None = None
    payout_threshold_sat: int | None = None
    solo: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "payout_address": self.payout_address,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "fee_percent": ppm_to_percent(self.fee_ppm),
            "payout_threshold_sat": self.payout_threshold_sat,
            "solo": self.solo,
        }


# --- validation ------------------------------------------------------------------------------


def check_name(kind: str, name: object) -> str:
    """A site or tenant name (config.NAME_PATTERN); `kind` is "site" or "tenant"."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise AdminError("name", f"a {kind} name is 1-64 letters, digits, _ or -, got {name!r}")
    return name


def check_timezone(timezone: object) -> str:
    """An IANA time zone name that this host's zone database knows (e.g. Europe/Berlin)."""
    expected = "expected an IANA time zone such as UTC or Europe/Berlin"
    if not isinstance(timezone, str) or not timezone or len(timezone) > TIMEZONE_MAX:
        raise AdminError("timezone", f"{expected}, got {timezone!r}")
    if timezone in _HOST_ZONES:
        raise AdminError("timezone", f"{timezone!r} follows the host's setting; {expected}")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise AdminError("timezone", f"unknown time zone {timezone!r}; {expected}") from None
    return timezone


def check_payout_address(address: object, network: str) -> str:
    """An address that address_to_script accepts for `network`."""
    if not isinstance(address, str):
        raise AdminError("payout_address", f"expected an address, got {address!r}")
    try:
        address_to_script(address, network)
    except AddressError as exc:
        raise AdminError("payout_address", f"not valid on network {network}: {exc}") from None
    return address


# --- sites -----------------------------------------------------------------------------------


def add_site(engine: Engine, name: str, timezone: str = "UTC") -> SiteRow:
    """Add a site; AdminError if the input is bad or the site exists (nothing written)."""
    check_name("site", name)
    check_timezone(timezone)
    row = SiteRow(name, timezone, datetime.now(UTC))
    try:
        with engine.begin() as conn:
            if conn.execute(select(Site.id).where(Site.name == name)).first() is not None:
                raise _exists("site", name)
            conn.execute(
                insert(Site), [{"name": name, "timezone": timezone, "created_at": row.created_at}]
            )
    except IntegrityError:  # added by someone else since the check
        raise _exists("site", name) from None
    return row


def list_sites(engine: Engine) -> list[SiteRow]:
    with engine.connect() as conn:
        rows = conn.execute(select(Site.name, Site.timezone, Site.created_at).order_by(Site.name))
        return [SiteRow(name, timezone, created) for name, timezone, created in rows]


# --- tenants ---------------------------------------------------------------------------------


def add_tenant(
    engine: Engine, name: str, network: str, payout_address: str | None = None
) -> TenantRow:
    """Add an active tenant; AdminError if the input is bad or the tenant exists."""
    check_name("tenant", name)
    if payout_address is not None:
        check_payout_address(payout_address, network)
    row = TenantRow(name, payout_address, True, datetime.now(UTC))
    try:
        with engine.begin() as conn:
            if conn.execute(select(Tenant.id).where(Tenant.name == name)).first() is not None:
                raise _exists("tenant", name)
            conn.execute(
                insert(Tenant),
                [
                    {
                        "name": name,
                        "payout_address": payout_address,
                        "active": True,
                        "created_at": row.created_at,
                    }
                ],
            )
    except IntegrityError:
        raise _exists("tenant", name) from None
    return row


def set_tenant(
    engine: Engine,
    name: str,
    network: str,
    *,
    payout_address: str | None = None,
    active: bool | None = None,
    fee_ppm: int | Unset | None = UNSET,
    payout_threshold_sat: int | Unset | None = UNSET,
    solo: bool | None = None,
) -> TenantRow:
    """Change a tenant's payout address, whether it may mine, and its payout terms (a fee or
    threshold of None goes back to the pool's); returns the new row."""
    check_name("tenant", name)
    changes: dict[str, Any] = {}
    if payout_address is not None:
        changes["payout_address"] = check_payout_address(payout_address, network)
    if active is not None:
        changes["active"] = active
    if not isinstance(fee_ppm, Unset):
        if fee_ppm is not None and not 0 <= fee_ppm <= PPM:
            raise AdminError("fee_ppm", f"a fee is 0 to 100 percent, got {fee_ppm / 10_000}")
        changes["fee_ppm"] = fee_ppm
    if not isinstance(payout_threshold_sat, Unset):
        problem = None if payout_threshold_sat is None else dust_floor_problem(payout_threshold_sat)
        if problem is not None:
            raise AdminError("payout_threshold_sat", problem)
        changes["payout_threshold_sat"] = payout_threshold_sat
    if solo is not None:
        changes["solo"] = solo
    if not changes:
        raise AdminError("changes", "nothing to change")
    with engine.begin() as conn:
        changed = conn.execute(update(Tenant).where(Tenant.name == name).values(**changes))
        if changed.rowcount != 1:
            raise AdminError("name", f"no tenant {name!r} (`farmpool tenant list` shows them)")
        tenant = conn.execute(select(*_TENANT_COLUMNS).where(Tenant.name == name)).one()
    return TenantRow(*tenant)


_TENANT_COLUMNS = (
    Tenant.name,
    Tenant.payout_address,
    Tenant.active,
    Tenant.created_at,
    Tenant.fee_ppm,
    Tenant.payout_threshold_sat,
    Tenant.solo,
)


def list_tenants(engine: Engine) -> list[TenantRow]:
    with engine.connect() as conn:
        rows = conn.execute(select(*_TENANT_COLUMNS).order_by(Tenant.name))
        return [TenantRow(*row) for row in rows]


def _exists(kind: str, name: str) -> AdminError:
    return AdminError("name", f"{kind} {name!r} exists already (`farmpool {kind} list`)")


# --- the config ------------------------------------------------------------------------------


def _insert_missing(engine: Engine, table: Any) -> Any:
    """INSERT that skips rows whose name exists (another node may seed at the same time)."""
    return insert_ignore(engine, table, ["name"])


def seed_from_config(engine: Engine, settings: Settings) -> tuple[list[str], list[str]]:
    """Add the config's sites and tenants that the database does not have yet; returns the
    names added. Existing rows are left as they are (the database is the source of truth)."""
    now = datetime.now(UTC)
    added_sites: list[str] = []
    added_tenants: list[str] = []
    with engine.begin() as conn:
        sites = set(conn.execute(select(Site.name)).scalars())
        for name in settings.sites:
            if name not in sites:
                result = conn.execute(
                    _insert_missing(engine, Site.__table__),
                    {"name": name, "timezone": "UTC", "created_at": now},
                )
                if result.rowcount:
                    added_sites.append(name)
        tenants = set(conn.execute(select(Tenant.name)).scalars())
        for tenant in settings.tenants:
            if tenant.name not in tenants:
                result = conn.execute(
                    _insert_missing(engine, Tenant.__table__),
                    {
                        "name": tenant.name,
                        "payout_address": tenant.payout_address,
                        "active": True,
                        "created_at": now,
                        "fee_ppm": tenant.fee_ppm,
                        "payout_threshold_sat": tenant.payout_threshold_sat,
                        "solo": tenant.solo,
                    },
                )
                if result.rowcount:
                    added_tenants.append(tenant.name)
    return added_sites, added_tenants


def active_tenants(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Tenant.name).where(Tenant.active.is_(True))).scalars())
