import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, one_of, tenant_reference


class ConversationVisibility(StrEnum):
    private = "private"  # the owner only
    organization = "organization"  # readable by the organization's members, written by the owner


class Conversation(TenantMixin, Base):
    """One thread between a user and an agent (AG-UI's threadId is its id).

    Deleting the user or the agent deletes the conversation: it cannot run without its agent,
    and what a departed user wrote is theirs (the webhooks issue writes the full rule down).
    """

    __tablename__ = "conversations"
    __table_args__ = (
        # Listing newest first, per user, with a (last_activity_at, id) cursor.
        Index(None, "organization_id", "user_id", "last_activity_at", "id"),
        # Retention scans one organization at a time for inactive threads.
        Index(None, "organization_id", "last_activity_at"),
        Index(None, "user_id"),
        Index(None, "agent_id"),
        one_of("visibility", ConversationVisibility),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text, default="", server_default="")
    visibility: Mapped[ConversationVisibility] = mapped_column(
        String(16),
        default=ConversationVisibility.private,
        server_default=ConversationVisibility.private,
    )
    last_activity_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class MessageRole(StrEnum):
    system = "system"
    developer = "developer"
    user = "user"
    assistant = "assistant"
    tool = "tool"


class MessageStatus(StrEnum):
    streaming = "streaming"
    complete = "complete"
    error = "error"
    cancelled = "cancelled"


class Message(TenantMixin, Base):
    """One message of a conversation. `parts` holds the rich content as JSON (text, images,
    file references, charts, tool calls and their results); `content` the plain text."""

    __tablename__ = "messages"
    __table_args__ = (
        tenant_reference("conversation_id", "conversations"),
        # AG-UI clients resend the messages they hold; their ids make the store idempotent.
        UniqueConstraint("organization_id", "conversation_id", "external_id"),
        Index(None, "organization_id", "conversation_id", "created_at", "id"),
        Index(None, "organization_id", "run_id"),
        one_of("role", MessageRole),
        one_of("status", MessageStatus),
        CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0", name="token_counts_not_negative"
        ),
    )

    # clock_timestamp(), not now(): a run stores several messages in one transaction, and
    # a thread is read in created_at order.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), sort_order=10
    )
    conversation_id: Mapped[uuid.UUID]
    external_id: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(Text)
    role: Mapped[MessageRole] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="", server_default="")
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    status: Mapped[MessageStatus] = mapped_column(
        String(16), default=MessageStatus.complete, server_default=MessageStatus.complete
    )
    tool_call_id: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class FinishedMessage:
    """What a run saves of its answer (`finish_message`)."""

    content: str
    parts: list[dict[str, Any]]
    status: MessageStatus
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int | None = None
    error: str | None = None


class MessageFile(TenantMixin, Base):
    """A file attached to a message."""

    __tablename__ = "message_files"
    __table_args__ = (
        UniqueConstraint("organization_id", "message_id", "file_id"),
        tenant_reference("message_id", "messages"),
        tenant_reference("file_id", "files"),
        Index(None, "organization_id", "file_id"),
    )

    message_id: Mapped[uuid.UUID]
    file_id: Mapped[uuid.UUID]
