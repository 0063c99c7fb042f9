"""Queries on agents and grants. Row-level security already limits what a session sees; the
explicit organization filters say the same thing where a reader can see it."""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentQuickTask, AgentVisibility, OrganizationAgent
from app.agents.schemas import AgentGrant, AgentSummary
from app.core.db import driver_connection
from app.core.repository import add_unless_duplicate, column_list, detached, flush_unless_duplicate

_USABLE = (
    f"SELECT {column_list(Agent, 'a')} FROM organization_agents g JOIN agents a "
    "ON a.id = g.agent_id WHERE g.organization_id = $1 AND a.id = $2"
)


async def get_usable(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    """An agent granted to the organization (its own agents are granted when created), to
    read: every route under an agent and every run looks it up, on the driver connection
    (`detached`); changes go through `get_owned`."""
    connection = await driver_connection(session)
    row = await connection.fetchrow(_USABLE, organization_id, agent_id)
    return None if row is None else detached(Agent, row)


async def list_usable(session: AsyncSession, organization_id: uuid.UUID) -> list[Agent]:
    """Granted agents, hidden ones left out (they are used where granted, never listed)."""
    agents = await session.scalars(
        select(Agent)
        .join(OrganizationAgent, OrganizationAgent.agent_id == Agent.id)
        .where(
            OrganizationAgent.organization_id == organization_id,
            Agent.visibility != AgentVisibility.hidden,
        )
        .order_by(Agent.name, Agent.id)
    )
    return list(agents)


async def get_owned(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    agent: Agent | None = await session.scalar(
        select(Agent).where(Agent.id == agent_id, Agent.owner_organization_id == organization_id)
    )
    return agent


async def owner_of(session: AsyncSession, agent_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await session.scalar(
        select(Agent.owner_organization_id).where(Agent.id == agent_id)
    )
    return owner


async def insert_agent(session: AsyncSession, agent: Agent) -> bool:
    """False if the owner already has an agent with this slug."""
    return await add_unless_duplicate(session, agent)


async def upsert_platform_agent(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(Agent).values(owner_organization_id=None, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["owner_organization_id", "slug"],
            set_={name: statement.excluded[name] for name in values if name != "slug"},
        )
    )


async def delete_agent(session: AsyncSession, agent: Agent) -> None:
    await session.delete(agent)
    await session.flush()


async def get_grantable(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    """An agent the organization may be granted: its own, the platform's, or a public one."""
    agent: Agent | None = await session.scalar(
        select(Agent).where(Agent.id == agent_id, _grantable_to(organization_id))
    )
    return agent


async def list_catalog(
    session: AsyncSession, organization_id: uuid.UUID
) -> list[tuple[Agent, datetime | None]]:
    """Every agent the organization may be granted (its own, the platform's, public ones),
    hidden ones left out, each with when it was granted (None: not granted)."""
    rows = await session.execute(
        select(Agent, OrganizationAgent.created_at)
        .outerjoin(
            OrganizationAgent,
            (OrganizationAgent.agent_id == Agent.id)
            & (OrganizationAgent.organization_id == organization_id),
        )
        .where(
            _grantable_to(organization_id),
            Agent.visibility != AgentVisibility.hidden,
        )
        .order_by(Agent.name, Agent.id)
    )
    return [(agent, granted_at) for agent, granted_at in rows]


def _grantable_to(organization_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(
        Agent.owner_organization_id == organization_id,
        Agent.owner_organization_id.is_(None),
        Agent.visibility == AgentVisibility.public,
    )


_GRANTED = (
    "SELECT a.id, a.slug, a.name, a.description, a.visibility, a.owner_organization_id, "
    "g.created_at, g.granted_by_user_id "
    "FROM organization_agents g JOIN agents a ON a.id = g.agent_id "
    "WHERE g.organization_id = $1 ORDER BY a.name, a.id"
)


async def list_granted(
    connection: asyncpg.Connection, organization_id: uuid.UUID
) -> list[AgentGrant]:
    """On page loads: one query on the driver connection (`RequestUnitOfWork`), the agents'
    summary columns only."""
    return [
        AgentGrant(
            agent=AgentSummary.model_validate(dict(row)),
            granted_at=row["created_at"],
            granted_by_user_id=row["granted_by_user_id"],
        )
        for row in await connection.fetch(_GRANTED, organization_id)
    ]


async def get_grant(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> OrganizationAgent | None:
    grant: OrganizationAgent | None = await session.scalar(
        select(OrganizationAgent).where(
            OrganizationAgent.organization_id == organization_id,
            OrganizationAgent.agent_id == agent_id,
        )
    )
    return grant


async def insert_grant(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """True if the grant is new."""
    inserted = await session.scalar(
        insert(OrganizationAgent)
        .values(organization_id=organization_id, agent_id=agent_id, granted_by_user_id=user_id)
        .on_conflict_do_nothing(index_elements=["organization_id", "agent_id"])
        .returning(OrganizationAgent.id)
    )
    return inserted is not None


async def delete_grant(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> bool:
    deleted = await session.scalar(
        delete(OrganizationAgent)
        .where(
            OrganizationAgent.organization_id == organization_id,
            OrganizationAgent.agent_id == agent_id,
        )
        .returning(OrganizationAgent.id)
    )
    return deleted is not None


async def list_quick_tasks(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> list[AgentQuickTask]:
    tasks = await session.scalars(
        select(AgentQuickTask)
        .where(
            AgentQuickTask.organization_id == organization_id,
            AgentQuickTask.agent_id == agent_id,
        )
        .order_by(AgentQuickTask.name)
    )
    return list(tasks)


async def get_quick_task(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID, task_id: uuid.UUID
) -> AgentQuickTask | None:
    task: AgentQuickTask | None = await session.scalar(
        select(AgentQuickTask).where(
            AgentQuickTask.organization_id == organization_id,
            AgentQuickTask.agent_id == agent_id,
            AgentQuickTask.id == task_id,
        )
    )
    return task


async def save_quick_task(
    session: AsyncSession, task: AgentQuickTask, change: Callable[[], None] | None = None
) -> bool:
    """Add the task, or make `change` to it; False if the agent already has a quick task of
    this name in the organization."""
    saved = await flush_unless_duplicate(session, change or (lambda: session.add(task)))
    if saved:
        await session.refresh(task)
    return saved


async def delete_quick_task(session: AsyncSession, task: AgentQuickTask) -> None:
    await session.delete(task)
    await session.flush()


async def claim_due_quick_tasks(
    session: AsyncSession, organization_id: uuid.UUID, now: datetime
) -> list[AgentQuickTask]:
    """Scheduled tasks whose time has come, locked so that two schedulers cannot both take
    one (SKIP LOCKED: the other passes over it)."""
    tasks = await session.scalars(
        select(AgentQuickTask)
        .where(
            AgentQuickTask.organization_id == organization_id,
            AgentQuickTask.schedule.is_not(None),
            AgentQuickTask.enabled.is_(True),
            AgentQuickTask.next_run_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    return list(tasks)


async def get_quick_task_by_id(
    session: AsyncSession, organization_id: uuid.UUID, task_id: uuid.UUID
) -> AgentQuickTask | None:
    task: AgentQuickTask | None = await session.scalar(
        select(AgentQuickTask).where(
            AgentQuickTask.organization_id == organization_id, AgentQuickTask.id == task_id
        )
    )
    return task
