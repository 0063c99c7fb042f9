import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, TenantMixin, tenant_reference


class AgentState(TenantMixin, Base):
    """Shared state between a user and an agent (AG-UI STATE_SNAPSHOT / STATE_DELTA).

    `conversation_id` NULL is the user's state for the agent across threads; a non-NULL one is
    a thread's own state, deleted with its conversation. `version` is for optimistic
    concurrency: a write names the version it read.
    """

    __tablename__ = "agent_states"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "user_id",
            "agent_id",
            "conversation_id",
            postgresql_nulls_not_distinct=True,
        ),
        tenant_reference("conversation_id", "conversations"),
        Index(None, "user_id"),
        Index(None, "agent_id"),
        CheckConstraint("version > 0", name="version_positive"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID | None]
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
