"""Extranonce1 prefix leases: each stratum node on one database leases a prefix byte for good.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 07:14:27.226117
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extranonce_prefix", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_nodes_extranonce_prefix"), ["extranonce_prefix"]
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_nodes_extranonce_prefix"), type_="unique")
        batch_op.drop_column("extranonce_prefix")
