"""Sites and tenants in the database: what admins add and list, and what the config seeds.

The server authorizes miners against the tenants here. Every change is validated first (names,
payout addresses for the network) and written in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from pool.config import Settings
from pool.ledger.models import Site, Tenant


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
                conn.execute(insert(Site), [{"name": name, "timezone": "UTC", "created_at": now}])
                added_sites.append(name)
        tenants = set(conn.execute(select(Tenant.name)).scalars())
        for tenant in settings.tenants:
            if tenant.name not in tenants:
                conn.execute(
                    insert(Tenant),
                    [
                        {
                            "name": tenant.name,
                            "payout_address": tenant.payout_address,
                            "active": True,
                            "created_at": now,
                        }
                    ],
                )
                added_tenants.append(tenant.name)
    return added_sites, added_tenants


def active_tenants(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Tenant.name).where(Tenant.active.is_(True))).scalars())
