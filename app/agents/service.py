"""Agents, and which of them an organization may use.

An organization uses the agents granted to it; its own agents are granted when created.
Admins create and edit their organization's agents and grant or revoke others (the
platform's, or another organization's public ones). An agent the organization cannot see is
`AgentNotFound`, exactly like one that does not exist; one it can see but does not own is
read-only.
"""

import uuid
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents.errors import AgentNotFound, AgentSlugTaken, PlatformAgentReadOnly
from app.agents.models import Agent, AgentVisibility, OrganizationAgent
from app.agents.schemas import (
    AgentCreate,
    AgentGrant,
    AgentRead,
    AgentSummary,
    AgentUpdate,
    CatalogEntry,
    CatalogSource,
)
from app.auth.identity import OrganizationPrincipal
from app.files import storage as file_storage
from app.files.storage import Storage
from app.llm import service as llm_service
from app.prompts import service as prompts_service
from app.prompts.schemas import TemplateReference


async def list_agents(session: AsyncSession, principal: OrganizationPrincipal) -> list[AgentRead]:
    agents = await repository.list_usable(session, principal.organization_id)
    return [AgentRead.model_validate(agent) for agent in agents]


async def get_usable_agent(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> Agent:
    """The agent, if the caller's organization may use it; for every route under an agent."""
    agent = await repository.get_usable(session, principal.organization_id, agent_id)
    if agent is None:
        raise AgentNotFound()
    return agent


async def get_agent_of_organization(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    """For work without a caller (jobs): the agent, if the organization may use it."""
    return await repository.get_usable(session, organization_id, agent_id)


async def owner_of(session: AsyncSession, agent_id: uuid.UUID) -> uuid.UUID | None:
    """The organization that owns the agent (None: the platform's, or no such agent)."""
    return await repository.owner_of(session, agent_id)


async def create_agent(
    session: AsyncSession, principal: OrganizationPrincipal, data: AgentCreate
) -> Agent:
    await llm_service.check_chat_model(
        session, principal.organization_id, data.chat_model_id, data.visibility
    )
    fields = data.model_dump(mode="json")
    fields.update(
        await _instructions_template(
            session, principal, fields.pop("instructions_template"), data.visibility
        )
    )
    agent = Agent(
        owner_organization_id=principal.organization_id,
        created_by_user_id=principal.user_id,
        **fields,
    )
    if not await repository.insert_agent(session, agent):
        raise AgentSlugTaken(f"Your organization already has an agent named {data.slug!r}.")
    await repository.insert_grant(session, principal.organization_id, agent.id, principal.user_id)
    return agent


async def update_agent(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID, data: AgentUpdate
) -> Agent:
    agent = await _get_editable(session, principal, agent_id)
    changes = data.model_dump(mode="json", exclude_unset=True)
    if {"chat_model_id", "visibility"} & changes.keys():
        await llm_service.check_chat_model(
            session,
            principal.organization_id,
            _as_uuid(changes.get("chat_model_id", agent.chat_model_id)),
            AgentVisibility(changes.get("visibility", agent.visibility)),
        )
    if {"instructions_template", "visibility"} & changes.keys():
        reference = changes.pop("instructions_template", agent.instructions_template)
        changes.update(
            await _instructions_template(
                session,
                principal,
                reference,
                AgentVisibility(changes.get("visibility", agent.visibility)),
            )
        )
    for field, value in changes.items():
        setattr(agent, field, value)
    await session.flush()
    await session.refresh(agent)
    return agent


async def delete_agent(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    storage: Storage,
) -> None:
    """The agent and what its rows cascade to now; its knowledge files once that commits."""
    agent = await _get_editable(session, principal, agent_id)
    await repository.delete_agent(session, agent)
    file_storage.remove_agent_files_after_commit(session, storage, agent.id)


async def _instructions_template(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    reference: dict[str, Any] | None,
    visibility: AgentVisibility,
) -> dict[str, Any]:
    """The agent's columns for its instructions template (checked), or for none."""
    if reference is None:
        return {"instructions_template": None, "instructions_template_id": None}
    stored = await prompts_service.check_reference(
        session,
        principal.organization_id,
        TemplateReference.model_validate(
            {key: reference[key] for key in ("name", "label", "variables")}
        ),
        visibility,
    )
    return {
        "instructions_template": stored,
        "instructions_template_id": uuid.UUID(stored["template_id"]),
    }


def _as_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if isinstance(value, str) else value


async def _get_editable(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> Agent:
    agent = await repository.get_owned(session, principal.organization_id, agent_id)
    if agent is not None:
        return agent
    if await repository.get_usable(session, principal.organization_id, agent_id) is not None:
        raise PlatformAgentReadOnly("Only the organization that owns an agent may change it.")
    raise AgentNotFound()


async def seed_platform_agents(session: AsyncSession, definitions: list[AgentCreate]) -> int:
    """Create or update the platform's own agents (no owner), by slug. Needs a session that
    may write agents without an organization: the owner role (`ajc seed`)."""
    for definition in definitions:
        await repository.upsert_platform_agent(session, definition.model_dump(mode="json"))
    return len(definitions)


async def list_agent_catalog(
    session: AsyncSession, principal: OrganizationPrincipal
) -> list[CatalogEntry]:
    """What an admin may grant: own, platform and public agents (hidden ones are granted by
    id only), each saying whether it already is."""
    entries = []
    for agent, granted_at in await repository.list_catalog(session, principal.organization_id):
        if agent.owner_organization_id == principal.organization_id:
            source = CatalogSource.own
        elif agent.owner_organization_id is None:
            source = CatalogSource.platform
        else:
            source = CatalogSource.public
        entries.append(
            CatalogEntry(
                agent=AgentSummary.model_validate(agent),
                source=source,
                granted=granted_at is not None,
                granted_at=granted_at,
            )
        )
    return entries


async def list_granted_agents(
    connection: asyncpg.Connection, principal: OrganizationPrincipal
) -> list[AgentGrant]:
    return await repository.list_granted(connection, principal.organization_id)


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
