"""Agents name their chat model in the registry (`agents.chat_model_id`); NULL, as every
existing agent, is the platform's default: the environment's model. RESTRICT: a model in
use is not deleted from under its agents. The column is NULL for every row, so adding it
rewrites nothing; the index is built on a table of a few rows per organization.

Revision ID: 334584b9ccae
Revises: 761aafd173e5
Create Date: 2026-12-02 06:57:20.691410
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "334584b9ccae"
down_revision: str | None = "761aafd173e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("chat_model_id", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_agents_chat_model_id"), "agents", ["chat_model_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_agents_chat_model_id_models"),
        "agents",
        "models",
        ["chat_model_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_agents_chat_model_id_models"), "agents", type_="foreignkey")
    op.drop_index(op.f("ix_agents_chat_model_id"), table_name="agents")
    op.drop_column("agents", "chat_model_id")
