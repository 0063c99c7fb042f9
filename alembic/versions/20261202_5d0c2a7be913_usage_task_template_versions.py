"""Usage events name both template versions a run may use: the agent's instructions'
(`instructions_template_version_id`, renamed from `prompt_template_version_id`) and the
quick task's prompt's (`task_template_version_id`).

Revision ID: 5d0c2a7be913
Revises: 1e91c41388d3
Create Date: 2026-12-02 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5d0c2a7be913"
down_revision: str | None = "1e91c41388d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "usage_events",
        "prompt_template_version_id",
        new_column_name="instructions_template_version_id",
    )
    op.add_column("usage_events", sa.Column("task_template_version_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_events", "task_template_version_id")
    op.alter_column(
        "usage_events",
        "instructions_template_version_id",
        new_column_name="prompt_template_version_id",
    )
