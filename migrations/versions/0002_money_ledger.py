"""The money ledger: block tracking, credits, PPS accruals, payouts; tenant overrides.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:07:23.646624
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("raw_hex", sa.Text(), nullable=False),
        sa.Column("total_sat", sa.BigInteger(), nullable=False),
        sa.Column("fee_sat", sa.BigInteger(), nullable=False),
        sa.Column("outputs", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("txid", name=op.f("uq_payouts_txid")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_status"), ["status"], unique=False)

    op.create_table(
        "payout_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payout_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("amount_sat", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_payout_items_payout_id_payouts")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_payout_items_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_items")),
        sa.UniqueConstraint(
            "payout_id", "tenant_id", name=op.f("uq_payout_items_payout_id_tenant_id")
        ),
    )
    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payout_items_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "pps_accruals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("first_share_id", sa.BigInteger(), nullable=False),
        sa.Column("last_share_id", sa.BigInteger(), nullable=False),
        sa.Column("shares", sa.BigInteger(), nullable=False),
        sa.Column("work", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_pps_accruals_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pps_accruals")),
        sa.UniqueConstraint(
            "node_id", "first_share_id", name=op.f("uq_pps_accruals_node_id_first_share_id")
        ),
    )
    op.create_table(
        "credits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("block_id", sa.Integer(), nullable=True),
        sa.Column("accrual_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("work", sa.BigInteger(), nullable=False),
        sa.Column("amount_sat", sa.BigInteger(), nullable=False),
        sa.Column("fee_sat", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["accrual_id"], ["pps_accruals.id"], name=op.f("fk_credits_accrual_id_pps_accruals")
        ),
        sa.ForeignKeyConstraint(
            ["block_id"], ["blocks.id"], name=op.f("fk_credits_block_id_blocks")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_credits_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credits")),
        sa.UniqueConstraint(
            "accrual_id", "tenant_id", name=op.f("uq_credits_accrual_id_tenant_id")
        ),
        sa.UniqueConstraint(
            "block_id", "tenant_id", "kind", name=op.f("uq_credits_block_id_tenant_id_kind")
        ),
    )
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credits_tenant_id_status"), ["tenant_id", "status"], unique=False
        )

    with op.batch_alter_table("blocks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("confirmations", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("bits", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("scheme", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("credited_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("matured_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_blocks_status"), ["status"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_ppm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payout_threshold_sat", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("solo", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("solo")
        batch_op.drop_column("payout_threshold_sat")
        batch_op.drop_column("fee_ppm")

    with op.batch_alter_table("blocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blocks_status"))
        batch_op.drop_column("matured_at")
        batch_op.drop_column("credited_at")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("scheme")
        batch_op.drop_column("bits")
        batch_op.drop_column("confirmations")
        batch_op.drop_column("share_id")

    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credits_tenant_id_status"))

    op.drop_table("credits")
    op.drop_table("pps_accruals")
    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_items_tenant_id"))

    op.drop_table("payout_items")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_status"))

    op.drop_table("payouts")
