import uuid

from fastapi import APIRouter, Response, status

from app.agents import service as agents_service
from app.agents.schemas import AgentGrant, CatalogEntry
from app.auth.principal import AdminDep, CallerConnectionDep, OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.organizations import service
from app.organizations.schemas import OrganizationUpdate, OrganizationView

router = APIRouter(
    prefix="/organizations/current", tags=["organizations"], route_class=TransactionalRoute
)


@router.get("")
async def read_organization(
    session: SessionDep, principal: OrganizationPrincipalDep
) -> OrganizationView:
    """The organization the token acts for, with its settings."""
    organization = await service.get_current(session, principal.organization_id)
    return OrganizationView.model_validate(organization)


@router.patch("")
async def update_organization(
    update: OrganizationUpdate, session: SessionDep, principal: AdminDep
) -> OrganizationView:
    """Change the organization's own settings (admins): its time zone, whose days, weeks
    and months usage is reported in."""
    organization = await service.update_current(session, principal.organization_id, update)
    return OrganizationView.model_validate(organization)


@router.get("/agents")
async def list_organization_agents(
    principal: OrganizationPrincipalDep, connection: CallerConnectionDep
) -> list[AgentGrant]:
    """The agents the caller's organization may use."""
    return await agents_service.list_granted_agents(connection, principal)


@router.get("/agent-catalog")
async def list_agent_catalog(session: SessionDep, principal: AdminDep) -> list[CatalogEntry]:
    """Every agent the organization may use once granted: its own, the platform's and other
    organizations' public ones (hidden agents are not listed), and whether each is granted
    (admins). Grant one with `PUT /organizations/current/agents/{agent_id}`."""
    return await agents_service.list_agent_catalog(session, principal)


@router.put(
    "/agents/{agent_id}",
    responses={201: {"model": AgentGrant, "description": "Granted now"}},
)
async def grant_organization_agent(
    agent_id: uuid.UUID, session: SessionDep, principal: AdminDep, response: Response
) -> AgentGrant:
    """Let the organization use the agent (admins). Idempotent: 201 when granted now, 200 if
    it already was."""
    grant, created = await agents_service.grant_agent_access(session, principal, agent_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return grant


@router.delete("/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_organization_agent(
    agent_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> None:
    """Stop the organization from using the agent (admins)."""
    await agents_service.revoke_agent_access(session, principal, agent_id)
