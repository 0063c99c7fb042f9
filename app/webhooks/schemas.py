"""The parts of Clerk's webhook payloads we mirror (pydantic ignores the rest)."""

from datetime import UTC, datetime

from pydantic import BaseModel, Field


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class ClerkEvent(BaseModel):
    type: str
    timestamp: int | None = None
    data: dict[str, object] = Field(default_factory=dict)


class EmailAddress(BaseModel):
    id: str
    email_address: str


class ClerkUser(BaseModel):
    id: str
    first_name: str | None = None
    last_name: str | None = None
    image_url: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list)
    primary_email_address_id: str | None = None
    updated_at: int

    @property
    def primary_email(self) -> str | None:
        for address in self.email_addresses:
            if address.id == self.primary_email_address_id:
                return address.email_address
        return None


class ClerkOrganization(BaseModel):
    id: str
    name: str = ""
    slug: str | None = None
    image_url: str | None = None
    updated_at: int


class ClerkPublicUserData(BaseModel):
    user_id: str
    first_name: str | None = None
    last_name: str | None = None
    image_url: str | None = None


class ClerkMembership(BaseModel):
    id: str
    role: str
    organization: ClerkOrganization
    public_user_data: ClerkPublicUserData
    updated_at: int


class ClerkDeletedObject(BaseModel):
    id: str
    deleted: bool = True


class WebhookReceipt(BaseModel):
    svix_id: str
    outcome: str
    duplicate: bool = False
