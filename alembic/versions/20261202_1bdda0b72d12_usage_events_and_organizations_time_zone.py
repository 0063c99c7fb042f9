"""Usage events (app/usage/models.py): one row per model call, with its cost at the price
in force; and the organization's time zone (`organizations.time_zone`, UTC until an admin
sets it), whose calendar usage is reported in.

The application role may read and add events, never change or remove them: the ledger is
written once. (An organization's deletion still removes its events: the foreign key's
cascade runs as the table's owner.) Row-level security: `tenant_isolation`.

The answers already stored become events (`chat`, `request_id` `chat:<message id>`, the
tokens the provider reported), so `GET /usage` keeps its history across the upgrade; they
have no cost, as before: their model's prices, if any, were a setting, not a version.

Revision ID: 1bdda0b72d12
Revises: 334584b9ccae
Create Date: 2026-12-02 13:09:03.207150
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op
from app.core.rls import grant_table_access, tenant_isolation

revision: str = "1bdda0b72d12"
down_revision: str | None = "334584b9ccae"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("price_id", sa.Uuid(), nullable=True),
        sa.Column("cost_micro_usd", sa.BigInteger(), nullable=True),
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
            "purpose IN ('chat', 'embedding_ingest', 'embedding_search', 'model_test')",
            name=op.f("ck_usage_events_purpose"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_usage_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint(
            "organization_id", "request_id", name=op.f("uq_usage_events_organization_id_request_id")
        ),
    )
    op.create_index(
        op.f("ix_usage_events_organization_id_occurred_at"),
        "usage_events",
        ["organization_id", "occurred_at"],
        unique=False,
    )
    op.add_column(
        "organizations", sa.Column("time_zone", sa.Text(), server_default="UTC", nullable=False)
    )
    for statement in tenant_isolation("usage_events"):
        op.execute(statement)
    op.execute(
        grant_table_access("usage_events", context.config.attributes["app_role"], "SELECT, INSERT")
    )
    op.execute(_ANSWERS_AS_EVENTS)


_ANSWERS_AS_EVENTS = """
INSERT INTO usage_events (
    organization_id, occurred_at, request_id, purpose, user_id, agent_id, conversation_id,
    run_id, model_name, input_tokens, cached_input_tokens, output_tokens, tokens_estimated,
    latency_ms
)
SELECT m.organization_id, m.created_at, 'chat:' || m.id, 'chat', c.user_id, c.agent_id,
       c.id, m.run_id, m.model, coalesce(m.input_tokens, 0), 0, coalesce(m.output_tokens, 0),
       false, m.latency_ms
FROM messages AS m
JOIN conversations AS c ON c.organization_id = m.organization_id AND c.id = m.conversation_id
WHERE m.role = 'assistant' AND m.model IS NOT NULL AND m.model <> 'no-llm'
"""


def downgrade() -> None:
    op.drop_column("organizations", "time_zone")
    op.drop_index(op.f("ix_usage_events_organization_id_occurred_at"), table_name="usage_events")
    op.drop_table("usage_events")
