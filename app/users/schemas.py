import uuid

from pydantic import BaseModel

from app.organizations.models import MembershipRole


class UserView(BaseModel):
    id: uuid.UUID
    clerk_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    image_url: str | None


class OrganizationMembershipView(BaseModel):
    id: uuid.UUID
    clerk_id: str
    name: str
    slug: str | None
    role: MembershipRole


class Me(BaseModel):
    user: UserView
    organization: OrganizationMembershipView | None
    organizations: list[OrganizationMembershipView]
