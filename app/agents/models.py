import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin, TenantMixin, one_of


class AgentVisibility(StrEnum):
    public = "public"  # any organization's admin may grant it
    private = "private"  # only the owner organization may use it
    hidden = "hidden"  # usable where granted, never listed in catalogues


class Agent(RecordMixin, Base):
    """An agent: persona, knowledge settings and capabilities.

    `owner_organization_id` is NULL for the platform's own agents (loaded by `ajc seed`), so
    this is not a plain tenant table: its row-level security shows an organization the agents
    it owns, the platform's, and public ones, and lets it write only its own.
    """

    __tablename__ = "agents"
    __table_args__ = (
        # NULLS NOT DISTINCT: two platform agents cannot share a slug either.
        UniqueConstraint("owner_organization_id", "slug", postgresql_nulls_not_distinct=True),
        one_of("visibility", AgentVisibility),
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]*$'", name="slug_format"),
        # Instructions from a template of the agent's own organization; RESTRICT: a
        # template in use is not deleted from under its agents (409).
        ForeignKeyConstraint(
            ["owner_organization_id", "instructions_template_id"],
            ["prompt_templates.organization_id", "prompt_templates.id"],
            ondelete="RESTRICT",
            name="fk_agents_instructions_template_prompt_templates",  # the convention's: too long
        ),
        Index(None, "instructions_template_id"),
    )

    owner_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Or instructions rendered from a prompt template (app/prompts/) at each run:
    # `{"template_id", "name", "label", "variables"}`, and the template's id for the key.
    instructions_template: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    instructions_template_id: Mapped[uuid.UUID | None]
    # The registry's chat model (app/llm/); NULL: the platform's default, the environment's.
    # RESTRICT: a model in use is not deleted from under its agents (409 on DELETE /models).
    chat_model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    # Parameters (temperature, max_tokens, ...); `model`, a name, asks the environment's
    # endpoint for another of its models when `chat_model_id` is NULL.
    model_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    embedding_model: Mapped[str] = mapped_column(
        Text, default="all-MiniLM-L6-v2", server_default="all-MiniLM-L6-v2"
    )
    retrieval_settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default="{}"
    )
    capabilities: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    visibility: Mapped[AgentVisibility] = mapped_column(
        String(16), default=AgentVisibility.private, server_default=AgentVisibility.private
    )
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class OrganizationAgent(TenantMixin, Base):
    """A grant: the organization may use the agent. Admins grant and revoke."""

    __tablename__ = "organization_agents"
    __table_args__ = (UniqueConstraint("organization_id", "agent_id"), Index(None, "agent_id"))

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    granted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class KnowledgeSourceKind(StrEnum):
    file = "file"
    url = "url"
    text = "text"


class KnowledgeSourceStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    ready = "ready"
    failed = "failed"


class AgentKnowledgeSource(TenantMixin, Base):
    """Something an organization gave an agent to know. Sources belong to the organization
    that added them, even on a platform agent: one organization's knowledge is never
    another's."""

    __tablename__ = "agent_knowledge_sources"
    __table_args__ = (
        # The path begins with the organization's id: unique across organizations as well.
        UniqueConstraint("organization_id", "storage_path"),
        Index(None, "organization_id", "agent_id"),
        Index(None, "agent_id"),
        one_of("kind", KnowledgeSourceKind),
        one_of("status", KnowledgeSourceStatus),
        CheckConstraint("chunk_count >= 0", name="chunk_count_not_negative"),
        CheckConstraint("size_bytes IS NULL OR size_bytes >= 0", name="size_not_negative"),
        CheckConstraint("sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'", name="sha256_format"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    kind: Mapped[KnowledgeSourceKind] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    # Raw text sources keep their text; file sources their bytes under WORKSPACES_DIR.
    text_content: Mapped[str | None] = mapped_column(Text)
    storage_path: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[KnowledgeSourceStatus] = mapped_column(
        String(16), default=KnowledgeSourceStatus.pending, server_default="pending"
    )
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ingested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class AgentQuickTask(TenantMixin, Base):
    """A named, pre-written prompt for an agent, optionally run on a cron schedule for the
    user who scheduled it."""

    __tablename__ = "agent_quick_tasks"
    __table_args__ = (
        UniqueConstraint("organization_id", "agent_id", "name"),
        Index(None, "agent_id"),
        # The scheduler scans due tasks across organizations, one organization at a time.
        Index(None, "organization_id", "next_run_at", postgresql_where="schedule IS NOT NULL"),
        CheckConstraint(
            "schedule IS NULL OR scheduled_by_user_id IS NOT NULL", name="schedule_has_user"
        ),
        # Its prompt from a template of the organization; RESTRICT as for agents.
        ForeignKeyConstraint(
            ["organization_id", "prompt_template_id"],
            ["prompt_templates.organization_id", "prompt_templates.id"],
            ondelete="RESTRICT",
            name="fk_agent_quick_tasks_prompt_template",  # the convention's: too long
        ),
        Index(None, "prompt_template_id"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    # Or its prompt rendered from a prompt template at each run (the run's parameters as
    # its variables, over the fixed ones): `{"template_id", "name", "label", "variables"}`.
    prompt_template: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    prompt_template_id: Mapped[uuid.UUID | None]
    # JSON Schema of the prompt's parameters, if any.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    schedule: Mapped[str | None] = mapped_column(Text)
    schedule_timezone: Mapped[str] = mapped_column(Text, default="UTC", server_default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    scheduled_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
