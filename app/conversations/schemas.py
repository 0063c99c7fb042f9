import uuid
from datetime import datetime
from typing import Any

from pydantic import MISSING, BaseModel, ConfigDict, Field

from app.conversations.models import ConversationVisibility


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID
    title: str = Field(default="", max_length=500)
    visibility: ConversationVisibility = ConversationVisibility.private


class ConversationUpdate(BaseModel):
    """A partial update: only the fields sent change; neither may be null (422)."""

    model_config = ConfigDict(extra="forbid")

    title: str | MISSING = Field(default=MISSING, max_length=500)
    visibility: ConversationVisibility | MISSING = MISSING


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID
    user_id: uuid.UUID
    title: str
    visibility: ConversationVisibility
    last_activity_at: datetime
    created_at: datetime


class ConversationPage(BaseModel):
    items: list[ConversationRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class MessagePage(BaseModel):
    """Messages in AG-UI's format (what `MESSAGES_SNAPSHOT` carries), oldest first."""

    items: list[dict[str, Any]]
    next_cursor: str | None
