"""Budgets (app/budgets/models.py): monthly limits in cost or tokens per organization or
member, their windows (one per calendar month, made when first needed) and the reservations
of the model calls in progress; and notifications (app/notifications/models.py), which a
budget's crossed threshold writes.

Row-level security: `tenant_isolation` on all four.

Revision ID: ca1d0a427768
Revises: 1bdda0b72d12
Create Date: 2026-12-02 16:01:19.617503
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op
from app.core.rls import grant_table_access, tenant_isolation

revision: str = "ca1d0a427768"
down_revision: str | None = "1bdda0b72d12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("limit_amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "thresholds", sa.ARRAY(sa.Integer()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("metric IN ('cost', 'tokens')", name=op.f("ck_budgets_metric")),
        sa.CheckConstraint(
            "1 <= ALL(thresholds) AND 100 >= ALL(thresholds)", name=op.f("ck_budgets_thresholds")
        ),
        sa.CheckConstraint("limit_amount > 0", name=op.f("ck_budgets_limit_amount")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_budgets_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_budgets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_budgets")),
        sa.UniqueConstraint(
            "organization_id",
            "user_id",
            "metric",
            name=op.f("uq_budgets_organization_id_user_id_metric"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notifications_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_notifications")),
    )
    op.create_index(
        op.f("ix_notifications_organization_id_created_at"),
        "notifications",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "budget_windows",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("budget_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "notified", sa.ARRAY(sa.Integer()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("spent >= 0 AND reserved >= 0", name=op.f("ck_budget_windows_amounts")),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_budget_windows_period")),
        sa.ForeignKeyConstraint(
            ["organization_id", "budget_id"],
            ["budgets.organization_id", "budgets.id"],
            name=op.f("fk_budget_windows_organization_id_budget_id_budgets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_budget_windows_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_budget_windows")),
        sa.UniqueConstraint(
            "organization_id",
            "budget_id",
            "starts_at",
            name=op.f("uq_budget_windows_organization_id_budget_id_starts_at"),
        ),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("window_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_budget_reservations_amount")),
        sa.ForeignKeyConstraint(
            ["organization_id", "window_id"],
            ["budget_windows.organization_id", "budget_windows.id"],
            name=op.f("fk_budget_reservations_organization_id_window_id_budget_windows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_budget_reservations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_budget_reservations")),
        sa.UniqueConstraint(
            "organization_id",
            "request_id",
            "window_id",
            name=op.f("uq_budget_reservations_organization_id_request_id_window_id"),
        ),
    )
    op.create_index(
        op.f("ix_budget_reservations_organization_id_expires_at"),
        "budget_reservations",
        ["organization_id", "expires_at"],
        unique=False,
    )
    app_role = context.config.attributes["app_role"]
    for table in ("budgets", "budget_windows", "budget_reservations", "notifications"):
        for statement in tenant_isolation(table):
            op.execute(statement)
        op.execute(grant_table_access(table, app_role))


def downgrade() -> None:
    op.drop_index(
        op.f("ix_budget_reservations_organization_id_expires_at"), table_name="budget_reservations"
    )
    op.drop_table("budget_reservations")
    op.drop_table("budget_windows")
    op.drop_index(op.f("ix_notifications_organization_id_created_at"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("budgets")
