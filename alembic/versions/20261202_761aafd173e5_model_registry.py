"""The model registry (app/llm/models.py): models of the platform and of organizations, their
versioned prices in micro-USD per million tokens, their keys as secrets.

`owner_or_platform` row-level security on both tables (an organization reads its own and
the platform's, writes its own); reference tables on Citus, like secrets
(docs/scale-out.md).

Revision ID: 761aafd173e5
Revises: 7ece6501986b
Create Date: 2026-12-02 06:39:05.116631
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op
from app.core.rls import grant_table_access, owner_or_platform

revision: str = "761aafd173e5"
down_revision: str | None = "7ece6501986b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_organization_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_model", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("azure_deployment", sa.Text(), nullable=True),
        sa.Column("azure_api_version", sa.Text(), nullable=True),
        sa.Column("api_key_secret_id", sa.Uuid(), nullable=True),
        sa.Column("context_window", sa.Integer(), nullable=True),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("embedding_dimensions", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("from_environment", sa.Boolean(), server_default="false", nullable=False),
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
        sa.CheckConstraint(
            "(capabilities ? 'embeddings') = (embedding_dimensions IS NOT NULL)",
            name=op.f("ck_models_embedding_dimensions_with_embeddings"),
        ),
        sa.CheckConstraint(
            "provider IN ('openai', 'azure-openai', 'openai-compatible', 'local')",
            name=op.f("ck_models_provider"),
        ),
        sa.CheckConstraint(
            "NOT from_environment OR owner_organization_id IS NULL",
            name=op.f("ck_models_environment_model_is_the_platforms"),
        ),
        sa.ForeignKeyConstraint(
            ["api_key_secret_id"], ["secrets.id"], name=op.f("fk_models_api_key_secret_id_secrets")
        ),
        sa.ForeignKeyConstraint(
            ["owner_organization_id"],
            ["organizations.id"],
            name=op.f("fk_models_owner_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint(
            "owner_organization_id",
            "name",
            name=op.f("uq_models_owner_organization_id_name"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_models_from_environment"),
        "models",
        ["from_environment"],
        unique=True,
        postgresql_where=sa.text("from_environment"),
    )
    op.create_table(
        "model_prices",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("owner_organization_id", sa.Uuid(), nullable=True),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("output_micro_usd", sa.BigInteger(), nullable=False),
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
        sa.CheckConstraint(
            "input_micro_usd >= 0 AND cached_input_micro_usd >= 0 AND output_micro_usd >= 0",
            name=op.f("ck_model_prices_prices_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_prices_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_prices_owner_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
        sa.UniqueConstraint(
            "model_id", "effective_from", name=op.f("uq_model_prices_model_id_effective_from")
        ),
    )
    op.create_index(
        op.f("ix_model_prices_owner_organization_id"), "model_prices", ["owner_organization_id"]
    )
    app_role = context.config.attributes["app_role"]
    for table in ("models", "model_prices"):
        for statement in owner_or_platform(table):
            op.execute(statement)
        op.execute(grant_table_access(table, app_role))


def downgrade() -> None:
    op.drop_index(op.f("ix_model_prices_owner_organization_id"), table_name="model_prices")
    op.drop_table("model_prices")
    op.drop_index(
        op.f("ix_models_from_environment"),
        table_name="models",
        postgresql_where=sa.text("from_environment"),
    )
    op.drop_table("models")
