import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.models import Conversation, Message, MessageStatus
from app.core.db import driver_connection
from app.runs.models import AgentState


def _own_state(organization_id: uuid.UUID, user_id: uuid.UUID, agent_id: uuid.UUID) -> Any:
    """The user's own state with the agent (not a conversation's)."""
    return (
        (AgentState.organization_id == organization_id)
        & (AgentState.user_id == user_id)
        & (AgentState.agent_id == agent_id)
        & AgentState.conversation_id.is_(None)
    )


async def get_user_state(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    for_update: bool = False,
) -> AgentState | None:
    statement = select(AgentState).where(_own_state(organization_id, user_id, agent_id))
    if for_update:
        statement = statement.with_for_update()
    state: AgentState | None = await session.scalar(statement)
    return state


_USER_STATE = (
    "SELECT state FROM agent_states WHERE organization_id = $1 AND user_id = $2 "
    "AND agent_id = $3 AND conversation_id IS NULL"
)


async def user_state(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, agent_id: uuid.UUID
) -> dict[str, Any]:
    """The user's own state with the agent, `{}` before any: what a run starts from, read on
    the driver connection (`app.core.repository.detached` says why)."""
    connection = await driver_connection(session)
    state: dict[str, Any] | None = await connection.fetchval(
        _USER_STATE, organization_id, user_id, agent_id
    )
    return state or {}


async def insert_user_state(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    state: dict[str, Any],
) -> int | None:
    """Version 1, unless a state already exists (then None)."""
    version: int | None = await session.scalar(
        insert(AgentState)
        .values(
            organization_id=organization_id,
            user_id=user_id,
            agent_id=agent_id,
            conversation_id=None,
            state=state,
            version=1,
        )
        .on_conflict_do_nothing()
        .returning(AgentState.version)
    )
    return version


async def replace_user_state(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    state: dict[str, Any],
    expected_version: int | None,
) -> int | None:
    """Write and bump the version, if the stored version is `expected_version` (any, if
    None). The new version, or None when the condition failed."""
    condition = _own_state(organization_id, user_id, agent_id)
    if expected_version is not None:
        condition = condition & (AgentState.version == expected_version)
    version: int | None = await session.scalar(
        update(AgentState)
        .where(condition)
        .values(state=state, version=AgentState.version + 1)
        .returning(AgentState.version)
        .execution_options(synchronize_session=False)
    )
    return version


async def is_in_progress(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, run_id: str
) -> bool:
    """Whether the user has the run streaming, in any process: its answer is still being
    written."""
    statement = (
        select(Message.id)
        .join(
            Conversation,
            (Conversation.organization_id == Message.organization_id)
            & (Conversation.id == Message.conversation_id),
        )
        .where(
            Message.organization_id == organization_id,
            Message.run_id == run_id,
            Message.status == MessageStatus.streaming,
            Conversation.user_id == user_id,
        )
        .limit(1)
    )
    return await session.scalar(statement) is not None
