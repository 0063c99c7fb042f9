import uuid

from pydantic import BaseModel

from app.organizations.models import MembershipRole


class OrganizationMembershipView(BaseModel):
    id: uuid.UUID
    clerk_id: str
    name: str
    slug: str | None
    role: MembershipRole
