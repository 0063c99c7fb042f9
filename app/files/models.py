import uuid
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, one_of, tenant_reference


class FileCategory(StrEnum):
    uploads = "uploads"
    generated = "generated"
    attachments = "attachments"


class File(TenantMixin, Base):
    """A file of a conversation. The bytes live at `storage_path` (relative to WORKSPACES_DIR,
    chosen by the service, never by the client); `original_name` is metadata only."""

    __tablename__ = "files"
    __table_args__ = (
        tenant_reference("conversation_id", "conversations"),
        # The same bytes twice in one conversation are stored once.
        UniqueConstraint("organization_id", "conversation_id", "sha256"),
        # The path begins with the organization's id: unique across organizations as well.
        UniqueConstraint("organization_id", "storage_path"),
        Index(None, "user_id"),
        one_of("category", FileCategory),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_format"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID]
    category: Mapped[FileCategory] = mapped_column(String(16))
    original_name: Mapped[str] = mapped_column(Text)
    storage_path: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
