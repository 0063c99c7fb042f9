import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, RecordMixin, TenantMixin, one_of


class Organization(RecordMixin, Base):
    """An organization mirrored from Clerk.

    Not a tenant table itself: it is the directory a verified token is resolved against
    before any tenant is known, so it has no row-level security. A deleted organization's row is
    deleted (its tenant rows cascade); `webhook_events` remembers the deletion, so a late
    `organization.updated` cannot bring it back.
    """

    __tablename__ = "organizations"

    clerk_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text, default="", server_default="")
    slug: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    clerk_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Ours, not Clerk's (its sync never writes it): the IANA zone whose days, weeks and
    # months usage is reported in and budgets reset at.
    time_zone: Mapped[str] = mapped_column(Text, default="UTC", server_default="UTC")


class MembershipRole(StrEnum):
    """Clerk's `org:admin` and `org:member`; custom Clerk roles map to member."""

    admin = "admin"
    member = "member"


class Membership(TenantMixin, Base):
    """A user's role in an organization. Row-level security lets a user also read their own
    memberships in other organizations (the organization switcher needs them)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        # Clerk's membership ids are unique in Clerk; organization_id is in the key for
        # distribution (docs/scale-out.md).
        UniqueConstraint("organization_id", "clerk_id"),
        Index(None, "user_id"),
        one_of("role", MembershipRole),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MembershipRole] = mapped_column(String(16), default=MembershipRole.member)
    clerk_id: Mapped[str | None] = mapped_column(String(64))
    clerk_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
