import uuid
from datetime import datetime

import asyncpg
import orjson
from sqlalchemy import ColumnElement, Select, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import (
    Conversation,
    ConversationVisibility,
    FinishedMessage,
    Message,
    MessageFile,
    MessageStatus,
)
from app.core.db import driver_connection
from app.core.pagination import Position
from app.core.repository import column_list, detached


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
            _readable_by(user_id),
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
    return await _newest_first(session, statement, after, limit)


async def list_readable_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    after: Position | None,
    limit: int,
) -> list[Conversation]:
    """Newest activity first: the user's own and those shared with the org, one list
    (optionally one agent's)."""
    statement = select(Conversation).where(
        Conversation.organization_id == organization_id, _readable_by(user_id)
    )
    if agent_id is not None:
        statement = statement.where(Conversation.agent_id == agent_id)
    return await _newest_first(session, statement, after, limit)


def _readable_by(user_id: uuid.UUID) -> ColumnElement[bool]:
    """The user's own conversations and those shared with their organization."""
    return (Conversation.user_id == user_id) | (
        Conversation.visibility == ConversationVisibility.organization
    )


async def _newest_first(
    session: AsyncSession,
    statement: Select[Conversation],
    after: Position | None,
    limit: int,
) -> list[Conversation]:
    """One page of the conversations `statement` selects, newest activity first, after the
    cursor's position."""
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


async def delete_owned(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Delete the user's own conversations (optionally one agent's); the ids deleted."""
    statement = delete(Conversation).where(
        Conversation.organization_id == organization_id, Conversation.user_id == user_id
    )
    if agent_id is not None:
        statement = statement.where(Conversation.agent_id == agent_id)
    return list(await session.scalars(statement.returning(Conversation.id)))


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


_ANY_IN_ORGANIZATION = (
    f"SELECT {column_list(Conversation, 'c')} FROM conversations c "
    "WHERE c.organization_id = $1 AND c.id = $2"
)


async def get_any_in_organization(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The conversation whoever owns it, to read (every run looks its thread up: on the
    driver connection, `detached`)."""
    connection = await driver_connection(session)
    row = await connection.fetchrow(_ANY_IN_ORGANIZATION, organization_id, conversation_id)
    return None if row is None else detached(Conversation, row)


_INSERT_WITH_ID = (
    "INSERT INTO conversations (id, organization_id, user_id, agent_id, title) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, id) DO NOTHING RETURNING id"
)


async def insert_with_id(session: AsyncSession, conversation: Conversation) -> bool:
    """False if the organization has a conversation with the id already (another request
    created it since it was looked for). One statement, no savepoint: a new thread's first
    run waits for it before its first token. Ids are unique per organization only (migration
    f4fa07f03acc): another organization's conversation with the same id does not conflict."""
    connection = await driver_connection(session)
    inserted = await connection.fetchval(
        _INSERT_WITH_ID,
        conversation.id,
        conversation.organization_id,
        conversation.user_id,
        conversation.agent_id,
        conversation.title,
    )
    return inserted is not None


async def streaming_run_ids(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[str]:
    """The runs whose answer is still being written in the conversation, in any process."""
    run_ids = await session.scalars(
        select(Message.run_id)
        .where(
            Message.organization_id == organization_id,
            Message.conversation_id == conversation_id,
            Message.status == MessageStatus.streaming,
            Message.run_id.is_not(None),
        )
        .distinct()
    )
    return [run_id for run_id in run_ids if run_id is not None]


_ALL_MESSAGES = (
    f"SELECT {column_list(Message, 'm')} FROM messages m "
    "WHERE m.organization_id = $1 AND m.conversation_id = $2 ORDER BY m.created_at, m.id"
)


async def all_messages(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[Message]:
    """The thread in order, to read (a run's history: on the driver connection,
    `detached`)."""
    connection = await driver_connection(session)
    rows = await connection.fetch(_ALL_MESSAGES, organization_id, conversation_id)
    return [detached(Message, row) for row in rows]


_ADD_MESSAGE = (
    "INSERT INTO messages (id, organization_id, conversation_id, external_id, run_id, role, "
    "content, parts, status, tool_call_id, model) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, $11)"
)


async def add_messages(session: AsyncSession, messages: list[Message]) -> None:
    """The messages in one round trip on the driver connection (a run stores its question
    and its answer's row before the first token), each with the id and defaults it is given
    here: the session does not know them."""
    for message in messages:
        message.id = message.id or uuid.uuid4()
        message.content = message.content or ""
        message.parts = message.parts or []
        message.status = message.status or MessageStatus.complete
    connection = await driver_connection(session)
    await connection.executemany(
        _ADD_MESSAGE,
        [
            (
                message.id,
                message.organization_id,
                message.conversation_id,
                message.external_id,
                message.run_id,
                message.role,
                message.content,
                orjson.dumps(message.parts).decode(),
                message.status,
                message.tool_call_id,
                message.model,
            )
            for message in messages
        ],
    )


_FINISH_MESSAGE = """
WITH saved AS (
    UPDATE messages SET content = $3, parts = $4::text::jsonb, status = $5, model = $6,
        input_tokens = $7, output_tokens = $8, latency_ms = $9, error = $10, updated_at = now()
    WHERE organization_id = $1 AND id = $2
    RETURNING conversation_id
)
UPDATE conversations SET last_activity_at = now(), updated_at = now()
WHERE organization_id = $1 AND id IN (SELECT conversation_id FROM saved)
"""


async def finish_message(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    message_id: uuid.UUID,
    answer: FinishedMessage,
) -> None:
    """The answer, and its thread's activity, in one statement."""
    await connection.execute(
        _FINISH_MESSAGE,
        organization_id,
        message_id,
        answer.content,
        orjson.dumps(answer.parts).decode(),
        answer.status,
        answer.model,
        answer.input_tokens,
        answer.output_tokens,
        answer.latency_ms,
        answer.error,
    )


async def link_files(
    session: AsyncSession, organization_id: uuid.UUID, links: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """(message id, file id) pairs into message_files."""
    session.add_all(
        MessageFile(organization_id=organization_id, message_id=message_id, file_id=file_id)
        for message_id, file_id in links
    )
    await session.flush()


InactiveCursor = tuple[datetime, uuid.UUID]


async def inactive_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    before: datetime,
    limit: int,
    after: InactiveCursor | None = None,
) -> list[tuple[uuid.UUID, datetime]]:
    """Conversations inactive since `before`, oldest first, after the cursor (the last
    activity and id of the previous page's last row)."""
    statement = select(Conversation.id, Conversation.last_activity_at).where(
        Conversation.organization_id == organization_id,
        Conversation.last_activity_at < before,
    )
    if after is not None:
        statement = statement.where(
            tuple_(Conversation.last_activity_at, Conversation.id) > tuple_(*after)
        )
    rows = await session.execute(
        statement.order_by(Conversation.last_activity_at, Conversation.id).limit(limit)
    )
    return [(conversation_id, last_activity_at) for conversation_id, last_activity_at in rows]


async def count_owned(
    session: AsyncSession, organization_id: uuid.UUID, conversation_ids: list[uuid.UUID]
) -> dict[str, int]:
    """What deleting the conversations takes with it (their rows cascade), for reports."""
    row = (
        await session.execute(
            text(
                """
                SELECT
                    (SELECT count(*) FROM messages WHERE organization_id = :org
                        AND conversation_id = ANY(:ids)) AS messages,
                    (SELECT count(*) FROM files WHERE organization_id = :org
                        AND conversation_id = ANY(:ids)) AS files,
                    (SELECT count(*) FROM embeddings WHERE organization_id = :org
                        AND conversation_id = ANY(:ids)) AS embeddings,
                    (SELECT count(*) FROM agent_states WHERE organization_id = :org
                        AND conversation_id = ANY(:ids)) AS agent_states
                """
            ),
            {"org": organization_id, "ids": conversation_ids},
        )
    ).one()
    return dict(row._mapping)


async def delete_inactive(
    session: AsyncSession,
    organization_id: uuid.UUID,
    conversation_ids: list[uuid.UUID],
    before: datetime,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Delete those still inactive since `before` (one may have come back to life since it
    was listed); (user id, conversation id) of each deleted: where their files live."""
    rows = await session.execute(
        delete(Conversation)
        .where(
            Conversation.organization_id == organization_id,
            Conversation.id.in_(conversation_ids),
            Conversation.last_activity_at < before,
        )
        .returning(Conversation.user_id, Conversation.id)
    )
    return [(user_id, conversation_id) for user_id, conversation_id in rows]


async def existing_ids(
    session: AsyncSession, organization_id: uuid.UUID, conversation_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    ids = await session.scalars(
        select(Conversation.id).where(
            Conversation.organization_id == organization_id, Conversation.id.in_(conversation_ids)
        )
    )
    return set(ids)
