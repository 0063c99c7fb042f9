"""Notifications: what the service tells an organization (a budget's threshold crossed), one
row each, read at `GET /notifications`.

A notification addressed to a member (`user_id`: a threshold of their own budget) is theirs
and their admins'; one without is the admins'.
"""

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin


class Notification(TenantMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (Index(None, "organization_id", "created_at"),)

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)  # `budget.warning`
    message: Mapped[str] = mapped_column(Text)  # for people
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)  # for code: the kind's fields
