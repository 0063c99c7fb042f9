"""Per-user agent state: one JSON document per (organization, user, agent), versioned.

Writes are conditional when the client names the version it read (`If-Match`): a write
based on a stale read is a 409 and changes nothing. Without `If-Match` the write is
unconditional (last write wins), for clients that do not track versions.
"""

import uuid
from typing import Any

import jsonpatch
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents_service
from app.auth.identity import OrganizationPrincipal
from app.runs import repository
from app.runs.errors import InvalidStatePatch, StaleAgentState
from app.runs.schemas import AgentStateRead


async def read_state(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> AgentStateRead:
    await agents_service.get_usable_agent(session, principal, agent_id)
    stored = await repository.get_user_state(
        session, principal.organization_id, principal.user_id, agent_id
    )
    if stored is None:
        return AgentStateRead(state={}, version=0)
    return AgentStateRead(state=stored.state, version=stored.version)


async def replace_state(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    state: dict[str, Any],
    expected_version: int | None,
) -> AgentStateRead:
    await agents_service.get_usable_agent(session, principal, agent_id)
    ids = (principal.organization_id, principal.user_id, agent_id)
    return await _write(session, ids, state, expected_version)


async def patch_state(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    operations: list[dict[str, Any]],
    expected_version: int | None,
) -> AgentStateRead:
    """Apply an RFC 6902 JSON Patch to the stored state."""
    await agents_service.get_usable_agent(session, principal, agent_id)
    return await apply_patch(
        session,
        principal.organization_id,
        principal.user_id,
        agent_id,
        operations,
        expected_version,
    )


async def apply_patch(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    agent_id: uuid.UUID,
    operations: list[dict[str, Any]],
    expected_version: int | None,
) -> AgentStateRead:
    """The patch itself, for a caller whose right to the agent is already checked (a route
    above, or a run's `update_state` tool)."""
    stored = await repository.get_user_state(
        session, organization_id, user_id, agent_id, for_update=True
    )
    current, version = (stored.state, stored.version) if stored else ({}, 0)
    if expected_version is not None and expected_version != version:
        raise _stale(version)
    try:
        patched = jsonpatch.apply_patch(current, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise InvalidStatePatch(f"The patch cannot be applied: {exc}") from exc
    if not isinstance(patched, dict):
        raise InvalidStatePatch("The state must stay a JSON object.")
    return await _write(session, (organization_id, user_id, agent_id), patched, version)


async def _write(
    session: AsyncSession,
    ids: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    state: dict[str, Any],
    expected_version: int | None,
) -> AgentStateRead:
    if expected_version == 0:
        version = await repository.insert_user_state(session, *ids, state)
    else:
        version = await repository.replace_user_state(session, *ids, state, expected_version)
        if version is None and expected_version is None:
            version = await repository.insert_user_state(session, *ids, state)
    if version is None:
        stored = await repository.get_user_state(session, *ids)
        raise _stale(stored.version if stored else 0)
    return AgentStateRead(state=state, version=version)


def _stale(current_version: int) -> StaleAgentState:
    return StaleAgentState(
        "The state changed since you read it: read it again and reapply your change.",
        current_version=current_version,
    )
