import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.files.models import FileCategory


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    category: FileCategory
    name: str = Field(validation_alias="original_name", description="As the client named it.")
    media_type: str = Field(description="Decided from the bytes, not from the name.")
    size_bytes: int
    sha256: str
    created_at: datetime
