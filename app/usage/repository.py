import uuid
from datetime import date
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation, Message, MessageRole


async def daily_usage(
    session: AsyncSession, organization_id: uuid.UUID, start: date, end: date
) -> list[Any]:
    """Answers and tokens per (day, agent, user, model); days in UTC, `end` included."""
    day = cast(func.timezone("UTC", Message.created_at), Date).label("day")
    rows = await session.execute(
        select(
            day,
            Conversation.agent_id,
            Conversation.user_id,
            Message.model,
            func.count().label("answers"),
            func.sum(Message.input_tokens).label("input_tokens"),
            func.sum(Message.output_tokens).label("output_tokens"),
        )
        .join(
            Conversation,
            (Conversation.organization_id == Message.organization_id)
            & (Conversation.id == Message.conversation_id),
        )
        .where(
            Message.organization_id == organization_id,
            Message.role == MessageRole.assistant,
            day >= start,
            day <= end,
        )
        .group_by(day, Conversation.agent_id, Conversation.user_id, Message.model)
        .order_by(day.desc(), Conversation.agent_id, Conversation.user_id)
    )
    return list(rows.all())
