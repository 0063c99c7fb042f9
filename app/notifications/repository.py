import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Position
from app.notifications.models import Notification

_INSERT = """
INSERT INTO notifications (organization_id, user_id, kind, message, data)
VALUES ($1, $2, $3, $4, $5::jsonb)
"""


async def insert(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    notices: Sequence[tuple[uuid.UUID | None, str, str, dict[str, Any]]],
) -> None:
    """(user, kind, message, data) each, in the connection's transaction (the work's)."""
    await connection.executemany(
        _INSERT,
        [
            (organization_id, user_id, kind, message, orjson.dumps(data).decode())
            for user_id, kind, message, data in notices
        ],
    )


async def list_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID | None,
    after: Position | None,
    limit: int,
) -> list[Notification]:
    """Newest first: all of the organization's (`user_id` None), or those addressed to the
    user."""
    statement = select(Notification).where(Notification.organization_id == organization_id)
    if user_id is not None:
        statement = statement.where(Notification.user_id == user_id)
    if after is not None:
        statement = statement.where(
            tuple_(Notification.created_at, Notification.id) < tuple_(*after)
        )
    result = await session.scalars(
        statement.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    )
    return list(result)
