import uuid

from fastapi import APIRouter, status

from app.agents import service
from app.agents.schemas import AgentCreate, AgentRead, AgentUpdate
from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("")
async def list_agents(session: SessionDep, principal: OrganizationPrincipalDep) -> list[AgentRead]:
    """The agents the caller's organization may use (hidden agents are not listed)."""
    return await service.list_agents(session, principal)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_agent(data: AgentCreate, session: SessionDep, principal: AdminDep) -> AgentRead:
    """Create an agent owned by the caller's organization, which may use it at once (admins)."""
    return AgentRead.model_validate(await service.create_agent(session, principal, data))


@router.get("/{agent_id}")
async def read_agent(
    agent_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> AgentRead:
    return AgentRead.model_validate(await service.get_usable_agent(session, principal, agent_id))


@router.patch("/{agent_id}")
async def update_agent(
    agent_id: uuid.UUID, data: AgentUpdate, session: SessionDep, principal: AdminDep
) -> AgentRead:
    """Change an agent the caller's organization owns (admins); others' are read-only."""
    return AgentRead.model_validate(await service.update_agent(session, principal, agent_id, data))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> None:
    """Delete an agent the caller's organization owns, with everything under it (admins)."""
    await service.delete_agent(session, principal, agent_id)
