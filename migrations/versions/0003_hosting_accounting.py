"""Hosting accounting: site tariffs and heat, tenant contracts, meter readings, the site
calendar and hourly energy; credits and payout items per site.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 06:49:12.916039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("fee_ppm", sa.Integer(), nullable=True),
        sa.Column("hosting_fee_kind", sa.String(length=8), nullable=True),
        sa.Column("hosting_fee_micro", sa.BigInteger(), nullable=False),
        sa.Column("fleet", sa.Text(), nullable=False),
        sa.Column("fleet_watts", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_contracts_site_id_sites")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_contracts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("tenant_id", "site_id", name=op.f("uq_contracts_tenant_id_site_id")),
    )
    op.create_table(
        "energy_hours",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("local_month", sa.String(length=7), nullable=False),
        sa.Column("wh_metered", sa.BigInteger(), nullable=False),
        sa.Column("wh_estimated", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("heat_uwh", sa.BigInteger(), nullable=False),
        sa.Column("heat_nano", sa.BigInteger(), nullable=False),
        sa.Column("hosting_nano", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_energy_hours_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_energy_hours_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_energy_hours")),
        sa.UniqueConstraint(
            "site_id", "tenant_id", "hour", name=op.f("uq_energy_hours_site_id_tenant_id_hour")
        ),
    )
    with op.batch_alter_table("energy_hours", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_energy_hours_site_id_local_month"),
            ["site_id", "local_month"],
            unique=False,
        )

    op.create_table(
        "meter_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("wh", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_meter_readings_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_meter_readings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_readings")),
    )
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_readings_site_id_tenant_id_period_start"),
            ["site_id", "tenant_id", "period_start"],
            unique=False,
        )

    op.create_table(
        "site_hours",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("local_month", sa.String(length=7), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_hours_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_hours")),
        sa.UniqueConstraint("site_id", "hour", name=op.f("uq_site_hours_site_id_hour")),
    )
    with op.batch_alter_table("site_hours", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_site_hours_site_id_local_month"),
            ["site_id", "local_month"],
            unique=False,
        )

    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_credits_accrual_id_tenant_id"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_credits_block_id_tenant_id_kind"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_credits_accrual_id_tenant_id_site_id"),
            ["accrual_id", "tenant_id", "site_id"],
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_credits_block_id_tenant_id_site_id_kind"),
            ["block_id", "tenant_id", "site_id", "kind"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_credits_site_id_sites"), "sites", ["site_id"], ["id"]
        )

    # Credits written before this migration: a block's credits go to the block's site.
    op.execute(
        "UPDATE credits SET site_id = (SELECT blocks.site_id FROM blocks "
        "WHERE blocks.id = credits.block_id) WHERE block_id IS NOT NULL"
    )
    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_payout_items_payout_id_tenant_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_payout_items_payout_id_tenant_id_site_id"),
            ["payout_id", "tenant_id", "site_id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_payout_items_site_id_sites"), "sites", ["site_id"], ["id"]
        )

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("currency", sa.String(length=3), nullable=False, server_default="EUR")
        )
        batch_op.add_column(sa.Column("tariff", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("heat_factor_ppm", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("heat_price_micro", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("hosting_terms", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("hosting_terms")
        batch_op.drop_column("heat_price_micro")
        batch_op.drop_column("heat_factor_ppm")
        batch_op.drop_column("tariff")
        batch_op.drop_column("currency")

    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payout_items_site_id_sites"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("uq_payout_items_payout_id_tenant_id_site_id"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_payout_items_payout_id_tenant_id"), ["payout_id", "tenant_id"]
        )
        batch_op.drop_column("site_id")

    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_credits_site_id_sites"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("uq_credits_block_id_tenant_id_site_id_kind"), type_="unique"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_credits_accrual_id_tenant_id_site_id"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_credits_block_id_tenant_id_kind"), ["block_id", "tenant_id", "kind"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_credits_accrual_id_tenant_id"), ["accrual_id", "tenant_id"]
        )
        batch_op.drop_column("site_id")

    with op.batch_alter_table("site_hours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_hours_site_id_local_month"))

    op.drop_table("site_hours")
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_readings_site_id_tenant_id_period_start"))

    op.drop_table("meter_readings")
    with op.batch_alter_table("energy_hours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_energy_hours_site_id_local_month"))

    op.drop_table("energy_hours")
    op.drop_table("contracts")
