"""Queries on agents and grants. Row-level security already limits what a session sees; the
explicit organization filters say the same thing where a reader can see it."""

import uuid

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent, AgentVisibility, OrganizationAgent


async def get_grantable(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    """An agent the organization may be granted: its own, the platform's, or a public one."""
    agent: Agent | None = await session.scalar(
        select(Agent).where(
            Agent.id == agent_id,
            or_(
                Agent.owner_organization_id == organization_id,
                Agent.owner_organization_id.is_(None),
                Agent.visibility == AgentVisibility.public,
            ),
        )
    )
    return agent


async def list_granted(
    session: AsyncSession, organization_id: uuid.UUID
) -> list[tuple[Agent, OrganizationAgent]]:
    rows = await session.execute(
        select(Agent, OrganizationAgent)
        .join(OrganizationAgent, OrganizationAgent.agent_id == Agent.id)
        .where(OrganizationAgent.organization_id == organization_id)
        .order_by(Agent.name, Agent.id)
    )
    return [(agent, grant) for agent, grant in rows.all()]


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
