"""Tenants' API tokens: made, listed and revoked by the operator (`farmpool tenant token`),
looked up for every request a tenant makes to the API.

A token is `fpt_` and 43 characters of URL-safe base64 (256 random bits). Only its SHA-256
is stored: a copy of the database gives no one a token, and since a token is random and
long, a salted slow hash would add nothing. The token itself is shown once, when it is made.
Blocking (database): the API calls `tenant_for` in a thread.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from pool.errors import BadInput
from pool.jsonrows import json_fields
from pool.ledger.models import Tenant, TenantToken

PREFIX = "fpt_"
_SHAPE = re.compile(r"fpt_[A-Za-z0-9_-]{43}")
#: How often a token's last use is written (not on every request).
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(ValueError, BadInput):
    """A token command that cannot be done; the message says why."""


@dataclass(frozen=True)
class TokenRow:
    id: int
    tenant: str
    prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True)
class TenantAccess:
    """Who a valid tenant token speaks for."""

    tenant_id: int
    tenant: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tenant_id(conn: Connection, tenant: str) -> int:
    tenant_id = conn.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar()
    if tenant_id is None:
        raise TokenError(f"no tenant named {tenant!r}")
    return int(tenant_id)


@contextmanager
def _tenant_rows(engine: Engine, tenant: str, write: bool) -> Iterator[tuple[Connection, int]]:
    """A connection (a transaction when `write`) and the tenant's id; TokenError if none."""
    with engine.begin() if write else engine.connect() as conn:
        yield conn, _tenant_id(conn, tenant)


def create_token(engine: Engine, tenant: str, label: str | None = None) -> tuple[str, TokenRow]:
    """A new token for the tenant: (the token, to show once; its row)."""
    if label is not None and len(label) > 128:
        raise TokenError("--label: at most 128 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with _tenant_rows(engine, tenant, write=True) as (conn, tenant_id):
        token_id = conn.execute(
            insert(TenantToken)
            .values(
                tenant_id=tenant_id,
                token_sha256=digest(token),
                prefix=token[:10],
                label=label,
                created_at=now,
            )
            .returning(TenantToken.id)
        ).scalar_one()
    return token, TokenRow(int(token_id), tenant, token[:10], label, now, None, None)


def list_tokens(engine: Engine, tenant: str) -> list[TokenRow]:
    with _tenant_rows(engine, tenant, write=False) as (conn, tenant_id):
        rows = conn.execute(
            select(
                TenantToken.id,
                TenantToken.prefix,
                TenantToken.label,
                TenantToken.created_at,
                TenantToken.revoked_at,
                TenantToken.last_used_at,
            )
            .where(TenantToken.tenant_id == tenant_id)
            .order_by(TenantToken.id)
        ).all()
    return [TokenRow(r[0], tenant, r[1], r[2], r[3], r[4], r[5]) for r in rows]


def revoke_token(engine: Engine, tenant: str, token_id: int) -> TokenRow:
    """Revoke one of the tenant's tokens (by the id `--list` shows); it stops working at once."""
    now = datetime.now(UTC)
    with _tenant_rows(engine, tenant, write=True) as (conn, tenant_id):
        changed = conn.execute(
            update(TenantToken)
            .where(
                TenantToken.id == token_id,
                TenantToken.tenant_id == tenant_id,
                TenantToken.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        ).rowcount
    if not changed:
        raise TokenError(f"tenant {tenant} has no token {token_id} that is not revoked already")
    return next(row for row in list_tokens(engine, tenant) if row.id == token_id)


def tenant_for(engine: Engine, token: str) -> TenantAccess | None:
    """The tenant a token speaks for, or None (not a token, unknown, revoked)."""
    if not _SHAPE.fullmatch(token):
        return None
    now = datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(
            select(TenantToken.id, TenantToken.last_used_at, Tenant.id, Tenant.name)
            .join(Tenant, Tenant.id == TenantToken.tenant_id)
            .where(TenantToken.token_sha256 == digest(token), TenantToken.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        token_id, last_used, tenant_id, name = row
        if last_used is None or now - last_used >= LAST_USED_EVERY:
            conn.execute(
                update(TenantToken).where(TenantToken.id == token_id).values(last_used_at=now)
            )
            conn.commit()
    return TenantAccess(int(tenant_id), str(name))


def tenant_id(engine: Engine, tenant: str) -> int | None:
    """A tenant's id by name (for the operator reading a tenant's endpoints)."""
    with engine.connect() as conn:
        found = conn.execute(select(Tenant.id).where(Tenant.name == tenant)).scalar()
    return None if found is None else int(found)
