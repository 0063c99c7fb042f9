import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import insert_or_get_id, upsert_if_newer
from app.organizations.schemas import OrganizationMembershipView
from app.users.models import User
from app.users.schemas import UserView

_WITH_MEMBERSHIPS = (
    "SELECT u.id, u.clerk_id, u.email, u.first_name, u.last_name, u.image_url, "
    "o.id AS organization_id, o.clerk_id AS organization_clerk_id, o.name, o.slug, m.role "
    "FROM users u "
    "LEFT JOIN (memberships m JOIN organizations o ON o.id = m.organization_id) "
    "ON m.user_id = u.id "
    "WHERE u.id = $1 ORDER BY o.name, o.id"
)


async def get_with_memberships(
    connection: asyncpg.Connection, user_id: uuid.UUID
) -> tuple[UserView, list[OrganizationMembershipView]] | None:
    """The user and every organization they belong to (row-level security lets a user read
    their own memberships in all organizations), in one round trip: a row per membership,
    or one without an organization."""
    rows = await connection.fetch(_WITH_MEMBERSHIPS, user_id)
    if not rows:
        return None
    user = UserView.model_validate(dict(rows[0]))
    memberships = [
        OrganizationMembershipView(
            id=row["organization_id"],
            clerk_id=row["organization_clerk_id"],
            name=row["name"],
            slug=row["slug"],
            role=row["role"],
        )
        for row in rows
        if row["organization_id"] is not None
    ]
    return user, memberships


async def get_id_by_clerk_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    user_id: uuid.UUID | None = await session.scalar(
        select(User.id).where(User.clerk_id == clerk_id)
    )
    return user_id


async def insert_stub(session: AsyncSession, clerk_id: str, **fields: Any) -> uuid.UUID:
    return await insert_or_get_id(session, User, ["clerk_id"], {"clerk_id": clerk_id, **fields})


async def upsert_from_clerk(
    session: AsyncSession, clerk_id: str, fields: dict[str, Any], clerk_updated_at: datetime
) -> uuid.UUID | None:
    return await upsert_if_newer(
        session,
        User,
        ["clerk_id"],
        {"clerk_id": clerk_id, "clerk_updated_at": clerk_updated_at, **fields},
    )


async def delete_by_clerk_id(session: AsyncSession, clerk_id: str) -> uuid.UUID | None:
    deleted: uuid.UUID | None = await session.scalar(
        delete(User).where(User.clerk_id == clerk_id).returning(User.id)
    )
    return deleted
