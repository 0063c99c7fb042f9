import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.agents.models import AgentVisibility


class AgentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    description: str
    visibility: AgentVisibility
    owner_organization_id: uuid.UUID | None


class AgentGrant(BaseModel):
    agent: AgentSummary
    granted_at: datetime
    granted_by_user_id: uuid.UUID | None
