import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.auth.principal import OrganizationPrincipalDep
from app.conversations import service
from app.conversations.schemas import (
    ConversationCreate,
    ConversationPage,
    ConversationRead,
    ConversationUpdate,
    MessagePage,
)
from app.core.db import SessionDep, TransactionalRoute

router = APIRouter(prefix="/conversations", tags=["conversations"], route_class=TransactionalRoute)

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    data: ConversationCreate, session: SessionDep, principal: OrganizationPrincipalDep
) -> ConversationRead:
    conversation = await service.create_conversation(session, principal, data)
    return ConversationRead.model_validate(conversation)


@router.get("")
async def list_conversations(
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    shared: Annotated[
        bool, Query(description="Others' conversations shared with the organization.")
    ] = False,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ConversationPage:
    """The caller's conversations, newest activity first (or, with `shared`, the ones others
    shared with the organization)."""
    return await service.list_conversations(session, principal, shared, cursor, limit)


@router.get("/{conversation_id}")
async def read_conversation(
    conversation_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> ConversationRead:
    conversation = await service.get_readable_conversation(session, principal, conversation_id)
    return ConversationRead.model_validate(conversation)


@router.patch("/{conversation_id}")
async def update_conversation(
    conversation_id: uuid.UUID,
    data: ConversationUpdate,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> ConversationRead:
    """Rename or share (owner only)."""
    conversation = await service.update_conversation(session, principal, conversation_id, data)
    return ConversationRead.model_validate(conversation)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> None:
    """Delete with its messages and files (owner only)."""
    await service.delete_conversation(
        session, principal, conversation_id, request.app.state.storage
    )


@router.get("/{conversation_id}/messages")
async def list_messages(
    conversation_id: uuid.UUID,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MessagePage:
    """The thread in AG-UI's message format, oldest first."""
    return await service.list_messages(session, principal, conversation_id, cursor, limit)
