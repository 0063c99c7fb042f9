import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from app.auth.principal import OrganizationPrincipalDep
from app.core.db import SessionDep
from app.core.errors import BadRequest
from app.runs import state_service
from app.runs.schemas import AgentStateRead, AgentStateWrite

router = APIRouter(prefix="/agents/{agent_id}", tags=["runs"])

IfMatch = Annotated[
    str | None,
    Header(description="The version you read (the ETag); a stale one is refused with 409."),
]
JsonPatch = Annotated[
    list[dict[str, Any]],
    Body(
        media_type="application/json-patch+json",
        examples=[[{"op": "replace", "path": "/step", "value": 2}]],
    ),
]


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise BadRequest("If-Match must be the state's version, as its ETag gives it.")
    return int(value)


def _with_etag(response: Response, state: AgentStateRead) -> AgentStateRead:
    response.headers["ETag"] = f'"{state.version}"'
    return state


@router.get("/state")
async def read_agent_state(
    agent_id: uuid.UUID,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    response: Response,
) -> AgentStateRead:
    """The caller's state with this agent (`{}` and version 0 before the first write)."""
    return _with_etag(response, await state_service.read_state(session, principal, agent_id))


@router.put("/state")
async def replace_agent_state(
    agent_id: uuid.UUID,
    data: AgentStateWrite,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> AgentStateRead:
    state = await state_service.replace_state(
        session, principal, agent_id, data.state, _expected_version(if_match)
    )
    return _with_etag(response, state)


@router.patch("/state")
async def patch_agent_state(
    agent_id: uuid.UUID,
    operations: JsonPatch,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> AgentStateRead:
    """Apply a JSON Patch (RFC 6902) to the caller's state."""
    state = await state_service.patch_state(
        session, principal, agent_id, operations, _expected_version(if_match)
    )
    return _with_etag(response, state)
