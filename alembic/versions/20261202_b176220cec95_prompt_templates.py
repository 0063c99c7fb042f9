"""Prompt templates (app/prompts/models.py): templates named per organization, their
immutable versions (numbered from the template's counter, unique by content hash) and the
labels that point at them.

Row-level security: `tenant_isolation` on all three.

Revision ID: b176220cec95
Revises: ca1d0a427768
Create Date: 2026-12-02 17:17:11.891241
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op
from app.core.rls import grant_table_access, tenant_isolation

revision: str = "b176220cec95"
down_revision: str | None = "ca1d0a427768"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("engine", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("latest_version", sa.Integer(), server_default="0", nullable=False),
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
        sa.CheckConstraint("engine IN ('plain', 'jinja')", name=op.f("ck_prompt_templates_engine")),
        sa.CheckConstraint(
            "kind IN ('system', 'user', 'quick_task')", name=op.f("ck_prompt_templates_kind")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_prompt_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_prompt_templates")),
        sa.UniqueConstraint(
            "organization_id", "name", name=op.f("uq_prompt_templates_organization_id_name")
        ),
    )
    op.create_table(
        "prompt_template_versions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("variables", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
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
            ["organization_id", "template_id"],
            ["prompt_templates.organization_id", "prompt_templates.id"],
            name=op.f("fk_prompt_template_versions_organization_id_template_id_prompt_templates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_prompt_template_versions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_prompt_template_versions")),
        sa.UniqueConstraint(
            "organization_id",
            "template_id",
            "content_hash",
            name=op.f("uq_prompt_template_versions_organization_id_template_id_content_hash"),
        ),
        sa.UniqueConstraint(
            "organization_id",
            "template_id",
            "id",
            name=op.f("uq_prompt_template_versions_organization_id_template_id_id"),
        ),
        sa.UniqueConstraint(
            "organization_id",
            "template_id",
            "version",
            name=op.f("uq_prompt_template_versions_organization_id_template_id_version"),
        ),
    )
    op.create_table(
        "prompt_template_labels",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
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
            ["organization_id", "template_id", "version_id"],
            [
                "prompt_template_versions.organization_id",
                "prompt_template_versions.template_id",
                "prompt_template_versions.id",
            ],
            name=op.f(
                "fk_prompt_template_labels_organization_id_template_id_version_id_prompt_template_versions"
            ),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "template_id"],
            ["prompt_templates.organization_id", "prompt_templates.id"],
            name=op.f("fk_prompt_template_labels_organization_id_template_id_prompt_templates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_prompt_template_labels_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_prompt_template_labels")),
        sa.UniqueConstraint(
            "organization_id",
            "template_id",
            "name",
            name=op.f("uq_prompt_template_labels_organization_id_template_id_name"),
        ),
    )
    app_role = context.config.attributes["app_role"]
    for table in ("prompt_templates", "prompt_template_versions", "prompt_template_labels"):
        for statement in tenant_isolation(table):
            op.execute(statement)
        op.execute(grant_table_access(table, app_role))


def downgrade() -> None:
    op.drop_table("prompt_template_labels")
    op.drop_table("prompt_template_versions")
    op.drop_table("prompt_templates")
