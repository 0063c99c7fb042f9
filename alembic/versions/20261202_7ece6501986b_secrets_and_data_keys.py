"""Secrets and their data keys (app/secrets/): the one place for provider keys, connection
strings and credentials, sealed by envelope encryption.

Both tables belong to an organization or, with no owner, to the platform: the
`owner_or_platform` policy (app/core/rls.py) lets a request read its organization's rows and
the platform's, and write only its own. They are not distributed by organization on Citus:
small, read on every model call, reference tables (docs/scale-out.md).

Revision ID: 7ece6501986b
Revises: f4fa07f03acc
Create Date: 2026-12-02 06:32:19.156825
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op
from app.core.rls import grant_table_access, owner_or_platform

revision: str = "7ece6501986b"
down_revision: str | None = "f4fa07f03acc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_organization_id", sa.Uuid(), nullable=True),
        sa.Column("master_key_id", sa.Text(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("current", sa.Boolean(), server_default="true", nullable=False),
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
            ["owner_organization_id"],
            ["organizations.id"],
            name=op.f("fk_data_keys_owner_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    op.create_index(
        op.f("ix_data_keys_owner_organization_id"),
        "data_keys",
        ["owner_organization_id"],
        unique=True,
        postgresql_where=sa.text("current"),
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_organization_id", sa.Uuid(), nullable=True),
        sa.Column("data_key_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("hint", sa.Text(), server_default="", nullable=False),
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
            ["data_key_id"], ["data_keys.id"], name=op.f("fk_secrets_data_key_id_data_keys")
        ),
        sa.ForeignKeyConstraint(
            ["owner_organization_id"],
            ["organizations.id"],
            name=op.f("fk_secrets_owner_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
    )
    op.create_index(op.f("ix_secrets_data_key_id"), "secrets", ["data_key_id"], unique=False)
    op.create_index(
        op.f("ix_secrets_owner_organization_id"), "secrets", ["owner_organization_id"], unique=False
    )
    app_role = context.config.attributes["app_role"]
    for table in ("data_keys", "secrets"):
        for statement in owner_or_platform(table):
            op.execute(statement)
        op.execute(grant_table_access(table, app_role))


def downgrade() -> None:
    op.drop_index(op.f("ix_secrets_owner_organization_id"), table_name="secrets")
    op.drop_index(op.f("ix_secrets_data_key_id"), table_name="secrets")
    op.drop_table("secrets")
    op.drop_index(
        op.f("ix_data_keys_owner_organization_id"),
        table_name="data_keys",
        postgresql_where=sa.text("current"),
        postgresql_nulls_not_distinct=True,
    )
    op.drop_table("data_keys")
