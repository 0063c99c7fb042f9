"""Quick tasks' prompts from a prompt template of their organization
(`agent_quick_tasks.prompt_template`, with the template's id under a foreign key that keeps
a template in use from being deleted).

Revision ID: 1e91c41388d3
Revises: 4eb7547dc56a
Create Date: 2026-12-02 17:35:44.287159
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "1e91c41388d3"
down_revision: str | None = "4eb7547dc56a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agent_quick_tasks",
        sa.Column("prompt_template", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("agent_quick_tasks", sa.Column("prompt_template_id", sa.Uuid(), nullable=True))
    op.create_index(
        op.f("ix_agent_quick_tasks_prompt_template_id"),
        "agent_quick_tasks",
        ["prompt_template_id"],
        unique=False,
    )
    op.create_foreign_key(
        "fk_agent_quick_tasks_prompt_template",
        "agent_quick_tasks",
        "prompt_templates",
        ["organization_id", "prompt_template_id"],
        ["organization_id", "id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(
        "fk_agent_quick_tasks_prompt_template", "agent_quick_tasks", type_="foreignkey"
    )
    op.drop_index(op.f("ix_agent_quick_tasks_prompt_template_id"), table_name="agent_quick_tasks")
    op.drop_column("agent_quick_tasks", "prompt_template_id")
    op.drop_column("agent_quick_tasks", "prompt_template")
