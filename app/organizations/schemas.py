import uuid
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import MISSING, AfterValidator, BaseModel, ConfigDict, Field

from app.organizations.models import MembershipRole


class OrganizationMembershipView(BaseModel):
    id: uuid.UUID
    clerk_id: str
    name: str
    slug: str | None
    role: MembershipRole


def _known_time_zone(name: str) -> str:
    if name not in available_timezones():
        raise ValueError(f"{name!r} is not an IANA time zone (such as Europe/Paris or UTC).")
    return name


TimeZone = Annotated[
    str,
    AfterValidator(_known_time_zone),
    Field(description="An IANA time zone: `Europe/Paris`, `America/New_York`, `UTC`."),
]


class OrganizationView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    clerk_id: str
    name: str
    slug: str | None
    image_url: str | None
    time_zone: str = Field(
        description="The zone of the organization's calendar: usage's days, weeks and months."
    )


class OrganizationUpdate(BaseModel):
    """A partial update: the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    time_zone: TimeZone | MISSING = MISSING
