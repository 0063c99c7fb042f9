"""Organizations and memberships mirrored from Clerk.

Deletion rule (Clerk `organization.deleted`): the organization's row goes, and with it, by the
foreign keys' cascades and in the same transaction, every tenant row it owns (memberships,
agents it owns, grants, knowledge, conversations, messages, files' rows, agent states,
embeddings). Users stay: they may belong to other organizations. Its files on disk are removed
once the deletion commits.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import set_tenant
from app.files import storage as file_storage
from app.files.storage import Storage
from app.organizations import repository
from app.organizations.errors import OrganizationNotFound
from app.organizations.models import MembershipRole, Organization
from app.organizations.schemas import OrganizationUpdate


async def find_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    return await repository.get_id_by_clerk_id(session, clerk_id)


async def get_current(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    organization = await repository.get(session, organization_id)
    if organization is None:  # deleted since the token was resolved
        raise OrganizationNotFound()
    return organization


async def update_current(
    session: AsyncSession, organization_id: uuid.UUID, update: OrganizationUpdate
) -> Organization:
    """Our own settings of the organization (admins); Clerk's fields are Clerk's."""
    organization = await get_current(session, organization_id)
    for field, value in update.model_dump(exclude_unset=True).items():
        setattr(organization, field, value)
    await session.flush()
    return organization


async def get_time_zone(session: AsyncSession, organization_id: uuid.UUID) -> str:
    """The zone of the organization's calendar (UTC unless its admins set one)."""
    time_zone = await repository.get_time_zone(session, organization_id)
    if time_zone is None:
        raise OrganizationNotFound()
    return time_zone


async def provision(session: AsyncSession, clerk_id: str, **fields: Any) -> uuid.UUID:
    return await repository.insert_stub(session, clerk_id, **fields)


async def sync_from_clerk(
    session: AsyncSession, clerk_id: str, fields: dict[str, Any], clerk_updated_at: datetime
) -> bool:
    applied = await repository.upsert_from_clerk(session, clerk_id, fields, clerk_updated_at)
    return applied is not None


async def delete(session: AsyncSession, clerk_id: str, storage: Storage) -> bool:
    organization_id = await repository.delete_by_clerk_id(session, clerk_id)
    if organization_id is None:
        return False
    file_storage.remove_organization_files_after_commit(session, storage, organization_id)
    return True


async def ensure_membership_role(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, role: MembershipRole
) -> None:
    """Mirror the role a fresh session token states (Clerk's current word on it). The session
    must act for the organization."""
    if await repository.get_membership_role(session, organization_id, user_id) != role:
        await repository.set_membership_role(session, organization_id, user_id, role)


async def sync_membership_from_clerk(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    clerk_id: str,
    role: MembershipRole,
    clerk_updated_at: datetime,
) -> None:
    await set_tenant(session, organization_id, user_id)
    await repository.upsert_membership_from_clerk(
        session, organization_id, user_id, clerk_id, role, clerk_updated_at
    )


async def delete_membership(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await set_tenant(session, organization_id, user_id)
    await repository.delete_membership(session, organization_id, user_id)


async def list_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every organization, for work that visits them one at a time (the directory has no
    row-level security; the work then sets the tenant per organization)."""
    return await repository.list_ids(session)


async def is_member(session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return await repository.get_membership_role(session, organization_id, user_id) is not None
