"""Money-path fixes from the audit: shares loaded late are paid by PPS by a flag, not by id;
each share and hourly aggregate keeps its network target (PPLNS scores by it); a payout
records the replacement transaction that paid it (a fee bump, a malleated copy).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pool.accounting import views

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite rebuilds some of these tables, which the report views read: the views are
    # dropped first and made again at the end (the same text).
    _drop_views()
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bits", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=True))
        batch_op.create_index(
            "ix_shares_late_unpaid",
            ["node_id", "id"],
            unique=False,
            postgresql_where=sa.text("late"),
            sqlite_where=sa.text("late = 1"),
        )

    # The aggregates' key gains the network target: a difficulty change inside an hour
    # gives that hour two rows per worker and site.
    with op.batch_alter_table("share_hours", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bits", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_share_hours_worker_id_site_id_hour", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_share_hours_worker_id_site_id_hour_bits"),
            ["worker_id", "site_id", "hour", "bits"],
        )

    with op.batch_alter_table("pps_accruals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid_by_txid", sa.String(length=64), nullable=True))
    _create_views()


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_column("paid_by_txid")

    with op.batch_alter_table("pps_accruals", schema=None) as batch_op:
        batch_op.drop_column("late")

    # Rows that differ only by bits become one again (sums exact, the best share the best).
    _merge_hours_by_bits()
    with op.batch_alter_table("share_hours", schema=None) as batch_op:
        batch_op.drop_constraint("uq_share_hours_worker_id_site_id_hour_bits", type_="unique")
        batch_op.create_unique_constraint(
            "uq_share_hours_worker_id_site_id_hour", ["worker_id", "site_id", "hour"]
        )
        batch_op.drop_column("bits")

    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_shares_late_unpaid",
            postgresql_where=sa.text("late"),
            sqlite_where=sa.text("late = 1"),
        )
        batch_op.drop_column("late")
        batch_op.drop_column("bits")
    _create_views()


def _merge_hours_by_bits() -> None:
    """Fold the rows of one (worker, site, hour) into the one with the lowest id."""
    conn = op.get_bind()
    groups = conn.execute(
        sa.text(
            "SELECT worker_id, site_id, hour, MIN(id), SUM(shares), SUM(work),"
            " MAX(best_share_difficulty) FROM share_hours GROUP BY worker_id, site_id, hour"
            " HAVING COUNT(*) > 1"
        )
    ).all()
    for worker_id, site_id, hour, keep, shares, work, best in groups:
        where = {"w": worker_id, "s": site_id, "h": hour, "k": keep}
        conn.execute(
            sa.text(
                "DELETE FROM share_hours WHERE worker_id = :w AND site_id = :s AND hour = :h"
                " AND id <> :k"
            ),
            where,
        )
        conn.execute(
            sa.text(
                "UPDATE share_hours SET shares = :n, work = :wk, best_share_difficulty = :b"
                " WHERE id = :k"
            ),
            {"n": shares, "wk": work, "b": best, "k": keep},
        )


def _drop_views() -> None:
    for statement in views.drop_statements():
        op.execute(statement)


def _create_views() -> None:
    for statement in views.create_statements(op.get_bind().dialect.name):
        op.execute(statement)
