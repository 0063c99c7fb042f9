from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin


class User(RecordMixin, Base):
    """A person mirrored from Clerk. Users belong to several organizations (see memberships),
    so this directory has no `organization_id` and no row-level security; tenant data that a
    user owns lives in tenant tables."""

    __tablename__ = "users"

    clerk_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    clerk_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
