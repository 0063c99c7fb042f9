import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.repository import insert_or_get_id, upsert_if_newer
from app.users.models import User


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


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
