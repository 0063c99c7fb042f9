"""Conversations: one thread between a user and an agent, in one organization.

Private conversations are their owner's alone. Shared ones (`visibility: organization`) can
be read by every member of the organization, and changed or deleted by the owner only. A
conversation the caller cannot read is `ConversationNotFound`.
"""

import uuid
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents_service
from app.auth.identity import OrganizationPrincipal
from app.conversations import repository
from app.conversations.errors import (
    ConversationNotFound,
    ConversationReadOnly,
    ThreadOfAnotherAgent,
)
from app.conversations.messages import file_parts, to_ag_ui
from app.conversations.models import (
    Conversation,
    ConversationVisibility,
    FinishedMessage,
    Message,
)
from app.conversations.schemas import (
    ConversationCreate,
    ConversationPage,
    ConversationRead,
    ConversationUpdate,
    MessagePage,
)
from app.core.pagination import decode_cursor, page_of
from app.files import storage as file_storage
from app.files.storage import Storage


async def create_conversation(
    session: AsyncSession, principal: OrganizationPrincipal, data: ConversationCreate
) -> Conversation:
    await agents_service.get_usable_agent(session, principal, data.agent_id)
    return await repository.insert(
        session,
        Conversation(
            organization_id=principal.organization_id,
            user_id=principal.user_id,
            agent_id=data.agent_id,
            title=data.title,
            visibility=data.visibility,
        ),
    )


async def list_conversations(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    shared: bool,
    cursor: str | None,
    limit: int,
) -> ConversationPage:
    conversations = await repository.list_page(
        session,
        principal.organization_id,
        principal.user_id,
        shared,
        decode_cursor(cursor),
        limit + 1,
    )
    page, next_cursor = page_of(conversations, limit, lambda item: (item.last_activity_at, item.id))
    return ConversationPage(
        items=[ConversationRead.model_validate(item) for item in page], next_cursor=next_cursor
    )


async def get_readable_conversation(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await repository.get_readable(
        session, principal.organization_id, principal.user_id, conversation_id
    )
    if conversation is None:
        raise ConversationNotFound()
    return conversation


async def get_own_conversation(
    session: AsyncSession, principal: OrganizationPrincipal, conversation_id: uuid.UUID
) -> Conversation:
    """For writes: the owner's only; readable-but-shared is 403, anything else 404."""
    conversation = await get_readable_conversation(session, principal, conversation_id)
    if conversation.user_id != principal.user_id:
        raise ConversationReadOnly("Only the conversation's owner may change it.")
    return conversation


async def update_conversation(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    data: ConversationUpdate,
) -> Conversation:
    conversation = await get_own_conversation(session, principal, conversation_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(conversation, field, value)
    await session.flush()
    await session.refresh(conversation)
    return conversation


async def delete_conversation(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    storage: Storage,
) -> None:
    """Its messages, files' rows, embeddings and thread state go by cascade, in this
    transaction; its files on disk once it commits."""
    conversation = await get_own_conversation(session, principal, conversation_id)
    await repository.delete_conversation(session, conversation)
    file_storage.remove_conversation_files_after_commit(
        session, storage, conversation.organization_id, conversation.user_id, conversation.id
    )


async def list_messages(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> MessagePage:
    conversation = await get_readable_conversation(session, principal, conversation_id)
    messages = await repository.list_messages(
        session, principal.organization_id, conversation.id, decode_cursor(cursor), limit + 1
    )
    page, next_cursor = page_of(messages, limit, lambda item: (item.created_at, item.id))
    return MessagePage(items=[to_ag_ui(message) for message in page], next_cursor=next_cursor)


async def open_thread(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID,
    title: str,
) -> tuple[Conversation, bool]:
    """The conversation a run writes to (AG-UI's threadId), and whether it is new: created
    on first use, and on every later use checked to be the caller's own and this agent's.

    Thread ids are unique per organization (migration f4fa07f03acc says why): an id that
    another organization uses is new here, and becomes the caller's own thread, which that
    organization never sees."""
    conversation = await repository.get_any_in_organization(
        session, principal.organization_id, conversation_id
    )
    if conversation is None:
        new = Conversation(
            id=conversation_id,
            organization_id=principal.organization_id,
            user_id=principal.user_id,
            agent_id=agent_id,
            title=title[:120],
        )
        if await repository.insert_with_id(session, new):
            return new, True
        # Another request created it in between (a first run sent twice): from here on it
        # is an existing thread, checked like any.
        conversation = await repository.get_any_in_organization(
            session, principal.organization_id, conversation_id
        )
        if conversation is None:
            raise ConversationNotFound()  # and it is gone again
    if conversation.user_id != principal.user_id:
        if conversation.visibility != ConversationVisibility.organization:
            raise ConversationNotFound()
        raise ConversationReadOnly("Only the conversation's owner may run it.")
    if conversation.agent_id != agent_id:
        raise ThreadOfAnotherAgent("This thread belongs to another agent.")
    conversation.last_activity_at = datetime.now(UTC)
    return conversation, False


async def readable_thread(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID,
) -> Conversation | None:
    """The agent's conversation the caller may read, or None for an id the organization
    does not use yet (a thread its first run will create, whatever other organizations use);
    another member's private one is `ConversationNotFound`."""
    conversation = await repository.get_any_in_organization(
        session, principal.organization_id, conversation_id
    )
    if conversation is None:
        return None
    if (
        conversation.user_id != principal.user_id
        and conversation.visibility != ConversationVisibility.organization
    ):
        raise ConversationNotFound()  # another member's private thread
    if conversation.agent_id != agent_id:
        raise ThreadOfAnotherAgent("This thread belongs to another agent.")
    return conversation


async def list_readable(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Conversation], str | None]:
    """The caller's conversations and those shared with the organization, newest activity
    first, one page, and the cursor of the next."""
    conversations = await repository.list_readable_page(
        session,
        principal.organization_id,
        principal.user_id,
        agent_id,
        decode_cursor(cursor),
        limit + 1,
    )
    return page_of(conversations, limit, lambda item: (item.last_activity_at, item.id))


async def delete_own_conversations(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID | None,
    storage: Storage,
) -> int:
    """Every conversation of the caller's own (optionally with one agent), as
    `delete_conversation` deletes one; shared ones of others stay. How many went."""
    deleted = await repository.delete_owned(
        session, principal.organization_id, principal.user_id, agent_id
    )
    for conversation_id in deleted:
        file_storage.remove_conversation_files_after_commit(
            session, storage, principal.organization_id, principal.user_id, conversation_id
        )
    return len(deleted)


async def streaming_run_ids(session: AsyncSession, conversation: Conversation) -> list[str]:
    return await repository.streaming_run_ids(
        session, conversation.organization_id, conversation.id
    )


async def get_in_organization(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """For work without a caller (jobs): the conversation, whoever owns it."""
    return await repository.get_any_in_organization(session, organization_id, conversation_id)


async def thread_messages(session: AsyncSession, conversation: Conversation) -> list[Message]:
    return await repository.all_messages(session, conversation.organization_id, conversation.id)


async def add_messages(session: AsyncSession, messages: list[Message]) -> None:
    """Store the messages, and link the files their parts name (`{"type": "file",
    "file_id"}`) through message_files."""
    await repository.add_messages(session, messages)
    links = [
        (message.id, uuid.UUID(part["file_id"]))
        for message in messages
        for part in file_parts(message)
    ]
    if links:
        await repository.link_files(session, messages[0].organization_id, links)


async def save_assistant_message(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    message_id: uuid.UUID,
    answer: FinishedMessage,
) -> None:
    """A run's answer (in full, or up to a server-side tool call), and the thread's
    activity, on a driver connection of the run's own (`Database.transaction`)."""
    await repository.finish_message(connection, organization_id, message_id, answer)
