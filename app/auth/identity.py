"""Who is calling, as plain values: what a verified token says (`Identity`, in Clerk's ids)
and who that is here (`Principal`, our ids). Every domain takes these; none of them needs
the dependencies that produce them (`app.auth.principal`), so identity resolution depends on
the domains (users, organizations), never the reverse.
"""

import uuid
from dataclasses import dataclass

from app.organizations.models import MembershipRole


@dataclass(frozen=True)
class Identity:
    """What a verified token says, in Clerk's ids."""

    clerk_user_id: str
    clerk_organization_id: str | None
    role: MembershipRole | None
    organization_slug: str | None


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    clerk_user_id: str
    organization_id: uuid.UUID | None
    clerk_organization_id: str | None
    role: MembershipRole | None

    @property
    def is_admin(self) -> bool:
        return self.role == MembershipRole.admin


@dataclass(frozen=True)
class OrganizationPrincipal(Principal):
    organization_id: uuid.UUID
    clerk_organization_id: str
    role: MembershipRole
