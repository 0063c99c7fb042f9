import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.webhooks.models import WebhookEvent, WebhookOutcome


async def record(
    session: AsyncSession,
    svix_id: str,
    event_type: str,
    clerk_object_id: str | None,
    payload: dict[str, Any],
) -> uuid.UUID | None:
    """Record a delivery; None if this `svix-id` was already recorded (a redelivery)."""
    event_id: uuid.UUID | None = await session.scalar(
        insert(WebhookEvent)
        .values(
            svix_id=svix_id,
            event_type=event_type,
            clerk_object_id=clerk_object_id,
            payload=payload,
        )
        .on_conflict_do_nothing(index_elements=["svix_id"])
        .returning(WebhookEvent.id)
    )
    return event_id


async def mark(
    session: AsyncSession,
    event_id: uuid.UUID,
    outcome: WebhookOutcome,
    processed_at: datetime,
    error: str | None = None,
) -> None:
    await session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id)
        .values(outcome=outcome, processed_at=processed_at, error=error)
    )


async def was_deleted(session: AsyncSession, clerk_object_id: str, event_type: str) -> bool:
    """A tombstone: Clerk told us this object was deleted."""
    deleted: bool | None = await session.scalar(
        select(
            exists().where(
                WebhookEvent.clerk_object_id == clerk_object_id,
                WebhookEvent.event_type == event_type,
                WebhookEvent.outcome == WebhookOutcome.processed,
            )
        )
    )
    return bool(deleted)
