import uuid

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation, ConversationVisibility, Message
from app.core.pagination import Position


async def insert(session: AsyncSession, conversation: Conversation) -> Conversation:
    session.add(conversation)
    await session.flush()
    await session.refresh(conversation)
    return conversation


async def get_readable(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> Conversation | None:
    """The user's own conversation, or one shared with their organization."""
    conversation: Conversation | None = await session.scalar(
        select(Conversation).where(
            Conversation.organization_id == organization_id,
            Conversation.id == conversation_id,
            (Conversation.user_id == user_id)
            | (Conversation.visibility == ConversationVisibility.organization),
        )
    )
    return conversation


async def list_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    shared: bool,
    after: Position | None,
    limit: int,
) -> list[Conversation]:
    """Newest activity first: the user's own, or (shared) others' shared with the org."""
    statement = select(Conversation).where(Conversation.organization_id == organization_id)
    if shared:
        statement = statement.where(
            Conversation.visibility == ConversationVisibility.organization,
            Conversation.user_id != user_id,
        )
    else:
        statement = statement.where(Conversation.user_id == user_id)
    if after is not None:
        statement = statement.where(
            tuple_(Conversation.last_activity_at, Conversation.id) < tuple_(*after)
        )
    conversations = await session.scalars(
        statement.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(
            limit
        )
    )
    return list(conversations)


async def delete_conversation(session: AsyncSession, conversation: Conversation) -> None:
    await session.execute(
        delete(Conversation).where(
            Conversation.organization_id == conversation.organization_id,
            Conversation.id == conversation.id,
        )
    )


async def list_messages(
    session: AsyncSession,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
    after: Position | None,
    limit: int,
) -> list[Message]:
    """Oldest first, as a thread reads."""
    statement = select(Message).where(
        Message.organization_id == organization_id, Message.conversation_id == conversation_id
    )
    if after is not None:
        statement = statement.where(tuple_(Message.created_at, Message.id) > tuple_(*after))
    messages = await session.scalars(
        statement.order_by(Message.created_at, Message.id).limit(limit)
    )
    return list(messages)
