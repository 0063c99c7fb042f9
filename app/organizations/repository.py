import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import insert_or_get_id, upsert_if_newer
from app.organizations.models import Membership, MembershipRole, Organization


async def get_id_by_clerk_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    organization_id: uuid.UUID | None = await session.scalar(
        select(Organization.id).where(Organization.clerk_id == clerk_id)
    )
    return organization_id


async def insert_stub(session: AsyncSession, clerk_id: str, **fields: Any) -> uuid.UUID:
    return await insert_or_get_id(
        session, Organization, ["clerk_id"], {"clerk_id": clerk_id, **fields}
    )


async def upsert_from_clerk(
    session: AsyncSession, clerk_id: str, fields: dict[str, Any], clerk_updated_at: datetime
) -> uuid.UUID | None:
    return await upsert_if_newer(
        session,
        Organization,
        ["clerk_id"],
        {"clerk_id": clerk_id, "clerk_updated_at": clerk_updated_at, **fields},
    )


async def delete_by_clerk_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    deleted: uuid.UUID | None = await session.scalar(
        delete(Organization).where(Organization.clerk_id == clerk_id).returning(Organization.id)
    )
    return deleted


async def get_membership_role(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> MembershipRole | None:
    role: MembershipRole | None = await session.scalar(
        select(Membership.role).where(
            Membership.organization_id == organization_id, Membership.user_id == user_id
        )
    )
    return role


async def set_membership_role(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, role: MembershipRole
) -> None:
    statement = insert(Membership).values(
        organization_id=organization_id, user_id=user_id, role=role
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "user_id"], set_={"role": role}
        )
    )


async def upsert_membership_from_clerk(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    clerk_id: str,
    role: MembershipRole,
    clerk_updated_at: datetime,
) -> None:
    await upsert_if_newer(
        session,
        Membership,
        ["organization_id", "user_id"],
        {
            "organization_id": organization_id,
            "user_id": user_id,
            "clerk_id": clerk_id,
            "role": role,
            "clerk_updated_at": clerk_updated_at,
        },
    )


async def delete_membership(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await session.execute(
        delete(Membership).where(
            Membership.organization_id == organization_id, Membership.user_id == user_id
        )
    )


async def list_ids(session: AsyncSession) -> list[uuid.UUID]:
    ids = await session.scalars(select(Organization.id).order_by(Organization.id))
    return list(ids)


async def get(session: AsyncSession, organization_id: uuid.UUID) -> Organization | None:
    return await session.get(Organization, organization_id)


async def get_time_zone(session: AsyncSession, organization_id: uuid.UUID) -> str | None:
    time_zone: str | None = await session.scalar(
        select(Organization.time_zone).where(Organization.id == organization_id)
    )
    return time_zone
