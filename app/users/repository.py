import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import driver_connection
from app.core.repository import insert_or_get_id, upsert_if_newer
from app.users.models import User
from app.users.schemas import UserView


async def get_view(session: AsyncSession, user_id: uuid.UUID) -> UserView | None:
    """On every page load (`/me`): straight to the driver (see `driver_connection`)."""
    connection = await driver_connection(session)
    row = await connection.fetchrow(
        "SELECT id, clerk_id, email, first_name, last_name, image_url FROM users WHERE id = $1",
        user_id,
    )
    return UserView.model_validate(dict(row)) if row is not None else None


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
