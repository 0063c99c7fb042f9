"""Agents' instructions from a prompt template of their own organization
(`agents.instructions_template`, with the template's id under a foreign key that keeps a
template in use from being deleted), and the template version each usage event's call was
instructed by (`usage_events.prompt_template_version_id`).

Revision ID: 4eb7547dc56a
Revises: b176220cec95
Create Date: 2026-12-02 17:24:04.833139
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "4eb7547dc56a"
down_revision: str | None = "b176220cec95"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column("instructions_template", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("agents", sa.Column("instructions_template_id", sa.Uuid(), nullable=True))
    op.create_index(
        op.f("ix_agents_instructions_template_id"),
        "agents",
        ["instructions_template_id"],
        unique=False,
    )
    op.create_foreign_key(
        "fk_agents_instructions_template_prompt_templates",
        "agents",
        "prompt_templates",
        ["owner_organization_id", "instructions_template_id"],
        ["organization_id", "id"],
        ondelete="RESTRICT",
    )
    op.add_column("usage_events", sa.Column("prompt_template_version_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_events", "prompt_template_version_id")
    op.drop_constraint(
        "fk_agents_instructions_template_prompt_templates", "agents", type_="foreignkey"
    )
    op.drop_index(op.f("ix_agents_instructions_template_id"), table_name="agents")
    op.drop_column("agents", "instructions_template_id")
    op.drop_column("agents", "instructions_template")
