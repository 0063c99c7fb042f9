import uuid

from fastapi import APIRouter, Request, status

from app.agents import quick_tasks, service
from app.agents.schemas import (
    AgentCreate,
    AgentRead,
    AgentUpdate,
    QuickTaskCreate,
    QuickTaskRead,
    QuickTaskUpdate,
)
from app.auth.principal import AdminDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute

router = APIRouter(prefix="/agents", tags=["agents"], route_class=TransactionalRoute)


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
async def delete_agent(
    agent_id: uuid.UUID, request: Request, session: SessionDep, principal: AdminDep
) -> None:
    """Delete an agent the caller's organization owns, with everything under it (admins)."""
    await service.delete_agent(session, principal, agent_id, request.app.state.storage)


@router.get("/{agent_id}/quick-tasks")
async def list_quick_tasks(
    agent_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> list[QuickTaskRead]:
    tasks = await quick_tasks.list_quick_tasks(session, principal, agent_id)
    return [QuickTaskRead.model_validate(task) for task in tasks]


@router.post("/{agent_id}/quick-tasks", status_code=status.HTTP_201_CREATED)
async def create_quick_task(
    agent_id: uuid.UUID, data: QuickTaskCreate, session: SessionDep, principal: AdminDep
) -> QuickTaskRead:
    """A named prompt for the agent, optionally on a cron schedule (admins)."""
    task = await quick_tasks.create_quick_task(session, principal, agent_id, data)
    return QuickTaskRead.model_validate(task)


@router.patch("/{agent_id}/quick-tasks/{task_id}")
async def update_quick_task(
    agent_id: uuid.UUID,
    task_id: uuid.UUID,
    data: QuickTaskUpdate,
    session: SessionDep,
    principal: AdminDep,
) -> QuickTaskRead:
    task = await quick_tasks.update_quick_task(session, principal, agent_id, task_id, data)
    return QuickTaskRead.model_validate(task)


@router.delete("/{agent_id}/quick-tasks/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_quick_task(
    agent_id: uuid.UUID, task_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> None:
    await quick_tasks.delete_quick_task(session, principal, agent_id, task_id)
