import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from ag_ui.core import RunAgentInput, RunErrorEvent
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.auth.errors import InvalidToken, OrganizationRequired
from app.auth.principal import OrganizationPrincipalDep
from app.copilotkit import service
from app.copilotkit.schemas import (
    RuntimeInfo,
    StopRequest,
    StopResult,
    ThreadEvents,
    ThreadMessages,
    ThreadPage,
    ThreadState,
)
from app.core.db import SessionDep, TransactionalRoute
from app.limits.dependencies import RunRateLimitDep
from app.runs.admission import Admitted
from app.runs.streaming import event_stream, stream_run

# What a refused session is called in the stream (`RUN_ERROR.code`), for the front end.
REFUSAL_CODES: dict[type[Exception], str] = {
    InvalidToken: "unauthenticated",
    OrganizationRequired: "organization-required",
}


class SessionRefusalsInStreamRoute(TransactionalRoute):
    """`run` and `connect` answer a session token that was sent but refused (expired, badly
    signed, for no organization) in AG-UI's own terms: a stream of one `RUN_ERROR` with a
    stable `code` (`REFUSAL_CODES`) and the problem's title as its message, which CopilotKit
    hands to the app's `onError` (an HTTP 401 would reach it as `HTTP 401: …` text). A
    request with no token at all is still a 401."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (InvalidToken, OrganizationRequired) as refused:
                code = REFUSAL_CODES[type(refused)]
                return event_stream([RunErrorEvent(message=refused.title, code=code)])

        return handle


router = APIRouter(prefix="/copilotkit", tags=["copilotkit"], route_class=TransactionalRoute)
streams = APIRouter(
    prefix="/copilotkit", tags=["copilotkit"], route_class=SessionRefusalsInStreamRoute
)

AG_UI_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "AG-UI events"}
}
ThreadLimit = Annotated[int, Query(ge=1, le=100)]


@router.get("/info")
async def copilotkit_info(session: SessionDep, principal: OrganizationPrincipalDep) -> RuntimeInfo:
    """What CopilotKit's client asks its runtime first: the agents the caller's organization
    may use (by id) and what this runtime serves."""
    return await service.runtime_info(session, principal)


@streams.post("/agent/{agent_id}/run", response_class=StreamingResponse, responses=AG_UI_STREAM)
async def copilotkit_run(
    admission: Admitted,
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    rate_limit: RunRateLimitDep,
) -> StreamingResponse:
    """`POST /agents/{agent_id}/runs`, at the path CopilotKit's client calls. A refused
    session token is one `RUN_ERROR` (`code` `unauthenticated` or `organization-required`)."""
    return await stream_run(request, session, principal, admission, agent_id, run_input)


@streams.post("/agent/{agent_id}/connect", response_class=StreamingResponse, responses=AG_UI_STREAM)
async def copilotkit_connect(
    agent_id: uuid.UUID,
    run_input: RunAgentInput,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
) -> StreamingResponse:
    """The stored thread, replayed before the first run: `RUN_STARTED`, `MESSAGES_SNAPSHOT`
    (oldest first), `STATE_SNAPSHOT`, `RUN_FINISHED`; nothing for a new thread. A refused
    session token is one `RUN_ERROR`, as for `run`."""
    return event_stream(await service.replay(session, principal, agent_id, run_input))


@router.post("/agent/{agent_id}/stop/{thread_id}")
async def copilotkit_stop(
    agent_id: uuid.UUID,
    thread_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    data: StopRequest | None = None,
) -> StopResult:
    """CopilotKit's Stop: the thread's streaming run is cancelled wherever it streams; its
    answer so far is kept (`cancelled`) and its stream ends with `RUN_ERROR` `cancelled`."""
    registry = request.app.state.run_registry
    return await service.stop(
        session, principal, agent_id, thread_id, data or StopRequest(), registry
    )


@router.get("/threads")
async def copilotkit_threads(
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    agent_id: Annotated[uuid.UUID | None, Query(alias="agentId")] = None,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page.")] = None,
    limit: ThreadLimit = 20,
    include_archived: Annotated[
        bool, Query(alias="includeArchived", description="Accepted; nothing is archived.")
    ] = False,
) -> ThreadPage:
    """The caller's conversations (with the agent, if named) and those shared with the
    organization, newest activity first."""
    return await service.list_threads(session, principal, agent_id, cursor, limit)


@router.get("/threads/{thread_id}/messages")
async def copilotkit_thread_messages(
    thread_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> ThreadMessages:
    messages = await service.thread_messages(session, principal, thread_id)
    return ThreadMessages(messages=messages)


@router.get("/threads/{thread_id}/state")
async def copilotkit_thread_state(
    thread_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> ThreadState:
    return ThreadState(state=await service.thread_state(session, principal, thread_id))


@router.get("/threads/{thread_id}/events")
async def copilotkit_thread_events(
    thread_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> ThreadEvents:
    """What `connect` replays for the thread."""
    events = await service.thread_events(session, principal, thread_id)
    return ThreadEvents(
        events=[event.model_dump(by_alias=True, exclude_none=True, mode="json") for event in events]
    )


@router.post("/threads/clear", status_code=status.HTTP_204_NO_CONTENT)
async def copilotkit_clear_threads(
    request: Request,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    agent_id: Annotated[uuid.UUID | None, Query(alias="agentId")] = None,
) -> None:
    """Delete the caller's own conversations (with the agent, if named), with their messages
    and files; others' shared ones stay."""
    await service.clear_threads(session, principal, agent_id, request.app.state.storage)
