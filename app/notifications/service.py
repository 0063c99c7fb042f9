"""Notifications: written by the work that has something to tell (in its own transaction),
listed newest first. Admins read every notification of the organization; a member reads
those addressed to them."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.identity import OrganizationPrincipal
from app.core.pagination import decode_cursor, page_of
from app.notifications import repository
from app.notifications.schemas import NotificationPage, NotificationRead


@dataclass(frozen=True)
class Notice:
    user_id: uuid.UUID | None  # addressed to this member; None: to the admins
    kind: str
    message: str
    data: dict[str, Any]


async def notify(
    connection: asyncpg.Connection, organization_id: uuid.UUID, notices: Sequence[Notice]
) -> None:
    if notices:
        await repository.insert(
            connection,
            organization_id,
            [(notice.user_id, notice.kind, notice.message, notice.data) for notice in notices],
        )


async def list_notifications(
    session: AsyncSession, principal: OrganizationPrincipal, cursor: str | None, limit: int
) -> NotificationPage:
    rows = await repository.list_page(
        session,
        principal.organization_id,
        None if principal.is_admin else principal.user_id,
        decode_cursor(cursor),
        limit + 1,
    )
    page, next_cursor = page_of(rows, limit, lambda row: (row.created_at, row.id))
    return NotificationPage(
        items=[NotificationRead.model_validate(row) for row in page], next_cursor=next_cursor
    )
