from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin, one_of


class WebhookOutcome(StrEnum):
    pending = "pending"
    processed = "processed"
    ignored = "ignored"
    failed = "failed"


class WebhookEvent(RecordMixin, Base):
    """Every webhook delivery we accepted, for idempotency (`svix_id`) and for audit and replay.
    Spans organizations, so it has no `organization_id` and no row-level security."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index(None, "event_type", "received_at"),
        # "Was this Clerk object deleted?": the tombstone lookup of late or replayed events.
        Index(None, "clerk_object_id", "event_type"),
        one_of("outcome", WebhookOutcome),
    )

    svix_id: Mapped[str] = mapped_column(Text, unique=True)
    event_type: Mapped[str] = mapped_column(Text)
    clerk_object_id: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[WebhookOutcome] = mapped_column(
        String(16), default=WebhookOutcome.pending, server_default=WebhookOutcome.pending
    )
    error: Mapped[str | None] = mapped_column(Text)
