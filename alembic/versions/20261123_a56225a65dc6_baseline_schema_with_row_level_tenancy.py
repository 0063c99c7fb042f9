"""Baseline: every table of the design, with row-level tenancy.

Tables with `organization_id` get the `tenant_isolation` policy. Two tables read a little
wider, each for a stated reason: `memberships` (a user lists their own organizations) and
`agents` (platform agents have no owner; public agents are visible to every organization).
`organizations`, `users` and `webhook_events` are directories, not tenant data (see their
models). The pgvector extension is left in place on downgrade: it may predate us and be owned
by a superuser.

Revision ID: a56225a65dc6
Revises:
Create Date: 2026-11-23 14:41:03.327249
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from alembic import context, op
from app.core.rls import (
    CURRENT_ORGANIZATION,
    CURRENT_USER_ID,
    force_row_level_security,
    grant_app_access,
    tenant_isolation,
)

revision: str = "a56225a65dc6"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TENANT_TABLES = (
    "memberships",
    "organization_agents",
    "agent_knowledge_sources",
    "agent_quick_tasks",
    "conversations",
    "messages",
    "files",
    "message_files",
    "agent_states",
    "embeddings",
)

OWNER_IS_CURRENT = f"owner_organization_id = {CURRENT_ORGANIZATION}"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("clerk_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("slug", sa.Text(), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("clerk_updated_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("clerk_id", name=op.f("uq_organizations_clerk_id")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("clerk_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("clerk_updated_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("clerk_id", name=op.f("uq_users_clerk_id")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("svix_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("clerk_object_id", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
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
            "outcome IN ('pending', 'processed', 'ignored', 'failed')",
            name=op.f("ck_webhook_events_outcome"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("svix_id", name=op.f("uq_webhook_events_svix_id")),
    )
    op.create_index(
        op.f("ix_webhook_events_clerk_object_id_event_type"),
        "webhook_events",
        ["clerk_object_id", "event_type"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_events_event_type_received_at"),
        "webhook_events",
        ["event_type", "received_at"],
        unique=False,
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_organization_id", sa.Uuid(), nullable=True),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("instructions", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "model_settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "embedding_model",
            sa.Text(),
            server_default="all-MiniLM-L6-v2",
            nullable=False,
        ),
        sa.Column(
            "retrieval_settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("visibility", sa.String(length=16), server_default="private", nullable=False),
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
        sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]*$'", name=op.f("ck_agents_slug_format")),
        sa.CheckConstraint(
            "visibility IN ('public', 'private', 'hidden')",
            name=op.f("ck_agents_visibility"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_agents_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_organization_id"],
            ["organizations.id"],
            name=op.f("fk_agents_owner_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint(
            "owner_organization_id",
            "slug",
            name=op.f("uq_agents_owner_organization_id_slug"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("clerk_id", sa.String(length=64), nullable=True),
        sa.Column("clerk_updated_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("role IN ('admin', 'member')", name=op.f("ck_memberships_role")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_memberships_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("clerk_id", name=op.f("uq_memberships_clerk_id")),
        sa.UniqueConstraint(
            "organization_id",
            "user_id",
            name=op.f("uq_memberships_organization_id_user_id"),
        ),
    )
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False)
    op.create_table(
        "agent_knowledge_sources",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("text_content", sa.Text(), nullable=True),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column("media_type", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "kind IN ('file', 'url', 'text')",
            name=op.f("ck_agent_knowledge_sources_kind"),
        ),
        sa.CheckConstraint(
            "sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'",
            name=op.f("ck_agent_knowledge_sources_sha256_format"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'ready', 'failed')",
            name=op.f("ck_agent_knowledge_sources_status"),
        ),
        sa.CheckConstraint(
            "chunk_count >= 0",
            name=op.f("ck_agent_knowledge_sources_chunk_count_not_negative"),
        ),
        sa.CheckConstraint(
            "size_bytes IS NULL OR size_bytes >= 0",
            name=op.f("ck_agent_knowledge_sources_size_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_knowledge_sources_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_agent_knowledge_sources_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_agent_knowledge_sources_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_knowledge_sources")),
        sa.UniqueConstraint(
            "organization_id",
            "id",
            name=op.f("uq_agent_knowledge_sources_organization_id_id"),
        ),
        sa.UniqueConstraint("storage_path", name=op.f("uq_agent_knowledge_sources_storage_path")),
    )
    op.create_index(
        op.f("ix_agent_knowledge_sources_agent_id"),
        "agent_knowledge_sources",
        ["agent_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_knowledge_sources_organization_id_agent_id"),
        "agent_knowledge_sources",
        ["organization_id", "agent_id"],
        unique=False,
    )
    op.create_table(
        "agent_quick_tasks",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("schedule_timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("scheduled_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "schedule IS NULL OR scheduled_by_user_id IS NOT NULL",
            name=op.f("ck_agent_quick_tasks_schedule_has_user"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_quick_tasks_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_agent_quick_tasks_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_agent_quick_tasks_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_by_user_id"],
            ["users.id"],
            name=op.f("fk_agent_quick_tasks_scheduled_by_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_quick_tasks")),
        sa.UniqueConstraint(
            "organization_id",
            "agent_id",
            "name",
            name=op.f("uq_agent_quick_tasks_organization_id_agent_id_name"),
        ),
    )
    op.create_index(
        op.f("ix_agent_quick_tasks_agent_id"),
        "agent_quick_tasks",
        ["agent_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_quick_tasks_organization_id_next_run_at"),
        "agent_quick_tasks",
        ["organization_id", "next_run_at"],
        unique=False,
        postgresql_where="schedule IS NOT NULL",
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("visibility", sa.String(length=16), server_default="private", nullable=False),
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
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
        sa.CheckConstraint(
            "visibility IN ('private', 'organization')",
            name=op.f("ck_conversations_visibility"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_conversations_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_conversations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_conversations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "organization_id", "id", name=op.f("uq_conversations_organization_id_id")
        ),
    )
    op.create_index(op.f("ix_conversations_agent_id"), "conversations", ["agent_id"], unique=False)
    op.create_index(
        op.f("ix_conversations_organization_id_last_activity_at"),
        "conversations",
        ["organization_id", "last_activity_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversations_organization_id_user_id_last_activity_at_id"),
        "conversations",
        ["organization_id", "user_id", "last_activity_at", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_conversations_user_id"), "conversations", ["user_id"], unique=False)
    op.create_table(
        "organization_agents",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("granted_by_user_id", sa.Uuid(), nullable=True),
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
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_organization_agents_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["granted_by_user_id"],
            ["users.id"],
            name=op.f("fk_organization_agents_granted_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_agents_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_agents")),
        sa.UniqueConstraint(
            "organization_id",
            "agent_id",
            name=op.f("uq_organization_agents_organization_id_agent_id"),
        ),
    )
    op.create_index(
        op.f("ix_organization_agents_agent_id"),
        "organization_agents",
        ["agent_id"],
        unique=False,
    )
    op.create_table(
        "agent_states",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column(
            "state",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
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
        sa.CheckConstraint("version > 0", name=op.f("ck_agent_states_version_positive")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_states_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name=op.f("fk_agent_states_organization_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_agent_states_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agent_states_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_states")),
        sa.UniqueConstraint(
            "organization_id",
            "user_id",
            "agent_id",
            "conversation_id",
            name=op.f("uq_agent_states_organization_id_user_id_agent_id_conversation_id"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(op.f("ix_agent_states_agent_id"), "agent_states", ["agent_id"], unique=False)
    op.create_index(op.f("ix_agent_states_user_id"), "agent_states", ["user_id"], unique=False)
    op.create_table(
        "files",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("storage_path", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
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
            "category IN ('uploads', 'generated', 'attachments')",
            name=op.f("ck_files_category"),
        ),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_files_sha256_format")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_files_size_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name=op.f("fk_files_organization_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_files_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_files_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint(
            "organization_id",
            "conversation_id",
            "sha256",
            name=op.f("uq_files_organization_id_conversation_id_sha256"),
        ),
        sa.UniqueConstraint("organization_id", "id", name=op.f("uq_files_organization_id_id")),
        sa.UniqueConstraint("storage_path", name=op.f("uq_files_storage_path")),
    )
    op.create_index(op.f("ix_files_user_id"), "files", ["user_id"], unique=False)
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "parts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="complete", nullable=False),
        sa.Column("tool_call_id", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('system', 'developer', 'user', 'assistant', 'tool')",
            name=op.f("ck_messages_role"),
        ),
        sa.CheckConstraint(
            "status IN ('streaming', 'complete', 'error', 'cancelled')",
            name=op.f("ck_messages_status"),
        ),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0",
            name=op.f("ck_messages_token_counts_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name=op.f("fk_messages_organization_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_messages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "organization_id",
            "conversation_id",
            "external_id",
            name=op.f("uq_messages_organization_id_conversation_id_external_id"),
        ),
        sa.UniqueConstraint("organization_id", "id", name=op.f("uq_messages_organization_id_id")),
    )
    op.create_index(
        op.f("ix_messages_organization_id_conversation_id_created_at_id"),
        "messages",
        ["organization_id", "conversation_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_messages_organization_id_run_id"),
        "messages",
        ["organization_id", "run_id"],
        unique=False,
    )
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("knowledge_source_id", sa.Uuid(), nullable=True),
        sa.Column("file_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.SmallInteger(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "content_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
            nullable=False,
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
        sa.CheckConstraint("chunk_index >= 0", name=op.f("ck_embeddings_chunk_index_not_negative")),
        sa.CheckConstraint(
            "file_id IS NULL OR conversation_id IS NOT NULL",
            name=op.f("ck_embeddings_file_has_conversation"),
        ),
        sa.CheckConstraint(
            "knowledge_source_id IS NULL OR agent_id IS NOT NULL",
            name=op.f("ck_embeddings_knowledge_has_agent"),
        ),
        sa.CheckConstraint(
            "num_nonnulls(knowledge_source_id, file_id) = 1",
            name=op.f("ck_embeddings_exactly_one_source"),
        ),
        sa.CheckConstraint(
            "vector_dims(embedding) = dimensions",
            name=op.f("ck_embeddings_dimensions_match"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_embeddings_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name=op.f("fk_embeddings_organization_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "file_id"],
            ["files.organization_id", "files.id"],
            name=op.f("fk_embeddings_organization_id_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "knowledge_source_id"],
            ["agent_knowledge_sources.organization_id", "agent_knowledge_sources.id"],
            name=op.f("fk_embeddings_organization_id_knowledge_source_id_agent_knowledge_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_embeddings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
    )
    op.create_index(op.f("ix_embeddings_agent_id"), "embeddings", ["agent_id"], unique=False)
    op.create_index(
        op.f("ix_embeddings_content_tsv"),
        "embeddings",
        ["content_tsv"],
        unique=False,
        postgresql_using="gin",
    )
    op.execute(
        "CREATE INDEX ix_embeddings_hnsw_all_minilm_l6_v2 ON embeddings USING hnsw "
        "((embedding::vector(384)) vector_cosine_ops) "
        "WHERE embedding_model = 'all-MiniLM-L6-v2'"
    )
    op.execute(
        "CREATE INDEX ix_embeddings_hnsw_text_embedding_3_small ON embeddings USING hnsw "
        "((embedding::vector(1536)) vector_cosine_ops) "
        "WHERE embedding_model = 'text-embedding-3-small'"
    )
    op.create_index(
        op.f("ix_embeddings_organization_id_agent_id"),
        "embeddings",
        ["organization_id", "agent_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_embeddings_organization_id_conversation_id"),
        "embeddings",
        ["organization_id", "conversation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_embeddings_organization_id_file_id_chunk_index"),
        "embeddings",
        ["organization_id", "file_id", "chunk_index"],
        unique=False,
    )
    op.create_index(
        op.f("ix_embeddings_organization_id_knowledge_source_id_chunk_index"),
        "embeddings",
        ["organization_id", "knowledge_source_id", "chunk_index"],
        unique=False,
    )
    op.create_table(
        "message_files",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
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
            ["organization_id", "file_id"],
            ["files.organization_id", "files.id"],
            name=op.f("fk_message_files_organization_id_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "message_id"],
            ["messages.organization_id", "messages.id"],
            name=op.f("fk_message_files_organization_id_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_message_files_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_files")),
        sa.UniqueConstraint(
            "organization_id",
            "message_id",
            "file_id",
            name=op.f("uq_message_files_organization_id_message_id_file_id"),
        ),
    )
    op.create_index(
        op.f("ix_message_files_organization_id_file_id"),
        "message_files",
        ["organization_id", "file_id"],
        unique=False,
    )
    for table in TENANT_TABLES:
        for statement in tenant_isolation(table):
            op.execute(statement)
    op.execute(
        "CREATE POLICY own_memberships ON memberships FOR SELECT "
        f"USING (user_id = {CURRENT_USER_ID})"
    )
    for statement in force_row_level_security("agents"):
        op.execute(statement)
    op.execute(
        "CREATE POLICY agents_visible ON agents FOR SELECT USING ("
        f"owner_organization_id IS NULL OR visibility = 'public' OR {OWNER_IS_CURRENT})"
    )
    op.execute(f"CREATE POLICY agents_insert ON agents FOR INSERT WITH CHECK ({OWNER_IS_CURRENT})")
    op.execute(
        "CREATE POLICY agents_update ON agents FOR UPDATE "
        f"USING ({OWNER_IS_CURRENT}) WITH CHECK ({OWNER_IS_CURRENT})"
    )
    op.execute(f"CREATE POLICY agents_delete ON agents FOR DELETE USING ({OWNER_IS_CURRENT})")
    for statement in grant_app_access(context.config.attributes["app_role"]):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_message_files_organization_id_file_id"), table_name="message_files")
    op.drop_table("message_files")
    op.drop_index(
        op.f("ix_embeddings_organization_id_knowledge_source_id_chunk_index"),
        table_name="embeddings",
    )
    op.drop_index(
        op.f("ix_embeddings_organization_id_file_id_chunk_index"),
        table_name="embeddings",
    )
    op.drop_index(op.f("ix_embeddings_organization_id_conversation_id"), table_name="embeddings")
    op.drop_index(op.f("ix_embeddings_organization_id_agent_id"), table_name="embeddings")
    op.drop_index("ix_embeddings_hnsw_text_embedding_3_small", table_name="embeddings")
    op.drop_index("ix_embeddings_hnsw_all_minilm_l6_v2", table_name="embeddings")
    op.drop_index(
        op.f("ix_embeddings_content_tsv"),
        table_name="embeddings",
        postgresql_using="gin",
    )
    op.drop_index(op.f("ix_embeddings_agent_id"), table_name="embeddings")
    op.drop_table("embeddings")
    op.drop_index(op.f("ix_messages_organization_id_run_id"), table_name="messages")
    op.drop_index(
        op.f("ix_messages_organization_id_conversation_id_created_at_id"),
        table_name="messages",
    )
    op.drop_table("messages")
    op.drop_index(op.f("ix_files_user_id"), table_name="files")
    op.drop_table("files")
    op.drop_index(op.f("ix_agent_states_user_id"), table_name="agent_states")
    op.drop_index(op.f("ix_agent_states_agent_id"), table_name="agent_states")
    op.drop_table("agent_states")
    op.drop_index(op.f("ix_organization_agents_agent_id"), table_name="organization_agents")
    op.drop_table("organization_agents")
    op.drop_index(op.f("ix_conversations_user_id"), table_name="conversations")
    op.drop_index(
        op.f("ix_conversations_organization_id_user_id_last_activity_at_id"),
        table_name="conversations",
    )
    op.drop_index(
        op.f("ix_conversations_organization_id_last_activity_at"),
        table_name="conversations",
    )
    op.drop_index(op.f("ix_conversations_agent_id"), table_name="conversations")
    op.drop_table("conversations")
    op.drop_index(
        op.f("ix_agent_quick_tasks_organization_id_next_run_at"),
        table_name="agent_quick_tasks",
        postgresql_where="schedule IS NOT NULL",
    )
    op.drop_index(op.f("ix_agent_quick_tasks_agent_id"), table_name="agent_quick_tasks")
    op.drop_table("agent_quick_tasks")
    op.drop_index(
        op.f("ix_agent_knowledge_sources_organization_id_agent_id"),
        table_name="agent_knowledge_sources",
    )
    op.drop_index(
        op.f("ix_agent_knowledge_sources_agent_id"),
        table_name="agent_knowledge_sources",
    )
    op.drop_table("agent_knowledge_sources")
    op.drop_index(op.f("ix_memberships_user_id"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("agents")
    op.drop_index(op.f("ix_webhook_events_event_type_received_at"), table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("users")
    op.drop_table("organizations")
