import uuid
from typing import Annotated, Any

from ag_ui.core import RunAgentInput
from fastapi import APIRouter, Body, Header, Request, Response, status
from fastapi.responses import StreamingResponse

from app.auth.principal import OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.core.errors import BadRequest
from app.limits.dependencies import RunRateLimitDep
from app.runs import service as run_service
from app.runs import state_service
from app.runs.admission import Admitted
from app.runs.schemas import AgentStateRead, AgentStateWrite, QuickTaskRunRequest
from app.runs.streaming import stream_run

router = APIRouter(prefix="/agents/{agent_id}", tags=["runs"], route_class=TransactionalRoute)

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


@router.post(
    "/runs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "AG-UI events"}},
)
async def run_agent(
    admission: Admitted,
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    rate_limit: RunRateLimitDep,
) -> StreamingResponse:
    """One turn of the agent, streamed as AG-UI events over SSE (threadId = conversation id).

    What the client sends is checked and saved before the stream starts; the answer is saved
    as it streams and completes even if the client goes away.
    """
    return await stream_run(request, session, principal, admission, agent_id, run_input)


@router.post(
    "/quick-tasks/{task_id}/runs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "AG-UI events"}},
)
async def run_quick_task(
    admission: Admitted,
    agent_id: uuid.UUID,
    task_id: uuid.UUID,
    data: QuickTaskRunRequest,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    rate_limit: RunRateLimitDep,
) -> StreamingResponse:
    """Run a quick task: a run whose user message is the task's prompt, filled in."""
    run_input, version_id = await run_service.quick_task_input(
        session, principal, agent_id, task_id, data
    )
    return await stream_run(request, session, principal, admission, agent_id, run_input, version_id)


cancel_router = APIRouter(prefix="/runs", tags=["runs"], route_class=TransactionalRoute)


@cancel_router.post("/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_run(
    run_id: str, request: Request, session: SessionDep, principal: OrganizationPrincipalDep
) -> dict[str, str]:
    """Stop a run of the caller's, whichever process streams it; its partial answer is kept
    with status `cancelled`."""
    await run_service.cancel_run(session, principal, run_id, request.app.state.run_registry)
    return {"run_id": run_id, "status": "cancelling"}
