"""Which agents an organization may use. Admins grant and revoke; everyone lists.

An agent the organization cannot see (another organization's private or hidden agent) is
`AgentNotFound`, exactly like one that does not exist.
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.errors import AgentNotFound
from app.agents.models import Agent, OrganizationAgent
from app.agents.schemas import AgentGrant, AgentSummary
from app.auth.principal import OrganizationPrincipal


async def list_granted_agents(
    session: AsyncSession, principal: OrganizationPrincipal
) -> list[AgentGrant]:
    return [
        _grant_view(agent, grant)
        for agent, grant in await repository.list_granted(session, principal.organization_id)
    ]


async def grant_agent_access(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> tuple[AgentGrant, bool]:
    """Idempotent; the flag says whether the grant is new."""
    agent = await repository.get_grantable(session, principal.organization_id, agent_id)
    if agent is None:
        raise AgentNotFound()
    created = await repository.insert_grant(
        session, principal.organization_id, agent_id, principal.user_id
    )
    grant = await repository.get_grant(session, principal.organization_id, agent_id)
    assert grant is not None
    return _grant_view(agent, grant), created


async def revoke_agent_access(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> None:
    if not await repository.delete_grant(session, principal.organization_id, agent_id):
        raise AgentNotFound()


def _grant_view(agent: Agent, grant: OrganizationAgent) -> AgentGrant:
    return AgentGrant(
        agent=AgentSummary.model_validate(agent),
        granted_at=grant.created_at,
        granted_by_user_id=grant.granted_by_user_id,
    )
