"""The accountants' report views (pool/accounting/views.py): per tenant and site, per site,
and for the pool, by local day and month.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:10:00
"""

from __future__ import annotations

from alembic import op

from pool.accounting import views

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in views.create_statements(dialect):
        op.execute(statement)


def downgrade() -> None:
    for statement in views.drop_statements():
        op.execute(statement)
