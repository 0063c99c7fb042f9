import uuid

from pydantic import BaseModel

from app.organizations.schemas import OrganizationMembershipView


class UserView(BaseModel):
    id: uuid.UUID
    clerk_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    image_url: str | None


class Me(BaseModel):
    user: UserView
    organization: OrganizationMembershipView | None
    organizations: list[OrganizationMembershipView]
