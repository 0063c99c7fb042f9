import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID | None = Field(
        description="The member it is addressed to; none: the organization's admins."
    )
    kind: str = Field(description="`budget.warning`: a budget's soft threshold was crossed.")
    message: str = Field(description="For people.")
    data: dict[str, Any] = Field(description="The kind's fields, for code.")
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
